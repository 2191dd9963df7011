//! The container image a Kong version runs from on drivers whose hosts are containers.

use std::path::Path;

use super::binary::VersionSpec;
use super::meta;
use super::settings::KongSettings;
use crate::{Error, Result};

/// Kong's nightly image, used for `git:` versions when asked (Kong's framework's
/// `use_daily_image`); it is a moving tag, so it is pulled before every lab.
pub(crate) const DAILY_IMAGE: &str = "kong/kong:master-nightly-ubuntu";

/// The image of a Kong release on Docker Hub: official `kong:<release>`, except pre-releases
/// (`rc`, `beta`), which are only published as `kong/kong:<release>`.
pub(crate) fn release_image(release: &str) -> String {
    if release.contains("rc") || release.contains("beta") {
        format!("kong/kong:{release}")
    } else {
        format!("kong:{release}")
    }
}

/// The image a Kong version runs from on the docker driver: a release's image; for a `git:`
/// ref the release its `kong/meta.lua` is based on (the ref's Lua is copied in and run on top),
/// or the nightly image with `use_daily_image`; `current` uses the lab's image.
/// `daily_env` is the value of `PERFLAB_USE_DAILY_IMAGE` or Kong's `PERF_TEST_USE_DAILY_IMAGE`
/// (any non-empty value turns it on).
pub(crate) fn image_for(
    version: &str,
    version_dir: Option<&Path>,
    settings: &KongSettings,
    daily_env: Option<&str>,
) -> Result<Option<crate::driver::GatewayImage>> {
    let daily = settings.use_daily_image || daily_env.is_some_and(|v| !v.is_empty());
    match VersionSpec::parse(version)? {
        VersionSpec::Current => Ok(None),
        VersionSpec::Release(r) => Ok(Some(crate::driver::GatewayImage::new(release_image(&r)))),
        VersionSpec::Git(_) if daily => Ok(Some(crate::driver::GatewayImage {
            reference: DAILY_IMAGE.to_string(),
            always_pull: true,
        })),
        VersionSpec::Git(r) => {
            let dir = version_dir.ok_or_else(|| {
                Error::Usage(format!(
                    "kong git:{r}: no worktree was prepared for this version"
                ))
            })?;
            let path = dir.join("kong/meta.lua");
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let v = meta::parse_meta_lua(&text).map_err(|e| Error::Lab(format!("git:{r}: {e}")))?;
            Ok(Some(crate::driver::GatewayImage::new(release_image(
                &meta::release_for(&v, settings.base_version.as_deref()),
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::role::gateway::GatewayAdapter;
    use crate::role::gateway::kong::test_support::*;
    use crate::role::gateway::kong::*;

    #[test]
    fn kong_versions_pick_their_images_on_the_docker_driver() {
        use crate::role::gateway::kong::KongSettings;
        let plain = KongSettings::from_table(&toml::Table::new()).unwrap();
        assert_eq!(release_image("3.9.1"), "kong:3.9.1");
        assert_eq!(release_image("3.10.0-rc.1"), "kong/kong:3.10.0-rc.1");
        assert_eq!(release_image("3.4.0-beta.2"), "kong/kong:3.4.0-beta.2");
        let image = |v: &str, dir: Option<&Path>, s: &KongSettings, env: Option<&str>| {
            image_for(v, dir, s, env)
                .unwrap()
                .map(|i| (i.reference, i.always_pull))
        };
        assert_eq!(image("current", None, &plain, None), None);
        assert_eq!(
            image("3.9.1", None, &plain, None),
            Some(("kong:3.9.1".to_string(), false))
        );
        // git: the release the ref's kong/meta.lua is based on, or the nightly image on request.
        let tmp = tempfile::tempdir().unwrap();
        let wt = tmp.path().join("wt");
        std::fs::create_dir_all(wt.join("kong")).unwrap();
        std::fs::copy(
            repo("tests/fixtures/kong/meta.lua"),
            wt.join("kong/meta.lua"),
        )
        .unwrap();
        let text = std::fs::read_to_string(wt.join("kong/meta.lua")).unwrap();
        // The fixture is Kong's master (3.10.0-alpha), which has no release: the version map
        // (Kong's git.lua `version_map_table`) runs it on 3.9.1, unless a base_version says else.
        let v = meta::parse_meta_lua(&text).unwrap();
        assert_eq!(v.base_version(), "3.10.0");
        assert_eq!(meta::release_for(&v, None), "3.9.1");
        assert_eq!(
            image("git:main", Some(&wt), &plain, None),
            Some(("kong:3.9.1".to_string(), false))
        );
        let pinned = KongSettings::from_table(&settings(r#"base_version = "3.9.0""#)).unwrap();
        assert_eq!(
            image("git:main", Some(&wt), &pinned, None),
            Some(("kong:3.9.0".to_string(), false))
        );
        assert!(KongSettings::from_table(&settings(r#"base_version = "master""#)).is_err());
        // The docker driver's adapter takes PERFLAB_KONG_BASE_VERSION from its environment.
        let a = KongAdapter::with_env(env(&[("PERFLAB_KONG_BASE_VERSION", "3.8.1")]));
        assert_eq!(
            a.container_image("git:main", Some(&wt), &toml::Table::new())
                .unwrap()
                .map(|i| i.reference),
            Some("kong:3.8.1".to_string())
        );
        let mut t = toml::Table::new();
        t.insert("use_daily_image".into(), toml::Value::Boolean(true));
        let daily = KongSettings::from_table(&t).unwrap();
        assert_eq!(
            image("git:main", Some(&wt), &daily, None),
            Some((DAILY_IMAGE.to_string(), true))
        );
        assert_eq!(
            image("git:main", Some(&wt), &plain, Some("1")),
            Some((DAILY_IMAGE.to_string(), true))
        );
        // The daily image is never used for releases, as in Kong's framework.
        assert_eq!(
            image("3.9.1", None, &daily, None),
            Some(("kong:3.9.1".to_string(), false))
        );
        assert!(image_for("git:main", None, &plain, None).is_err());
    }
}
