//! The container image a Kong version runs from on drivers whose hosts are containers.

use std::path::Path;

use super::binary::VersionSpec;
use super::meta;
use super::settings::KongSettings;
use crate::{Error, Result};

/// Kong's nightly image, used for `git:` versions when asked (Kong's framework's
/// `use_daily_image`); it is a moving tag, so it is pulled before every lab.
pub const DAILY_IMAGE: &str = "kong/kong:master-nightly-ubuntu";

/// The image of a Kong release on Docker Hub: official `kong:<release>`, except pre-releases
/// (`rc`, `beta`), which are only published as `kong/kong:<release>`.
pub fn release_image(release: &str) -> String {
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
pub fn image_for(
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
