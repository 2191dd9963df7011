//! Kong versions: the base version of a git ref from its `kong/meta.lua`, and the version an
//! installed `kong` reports.
//!
//! Kong's framework benchmarked a `git:<ref>` by overlaying the ref's Lua sources on a released
//! build whose version it derived from `kong.meta` (`get_kong_version`, reference §5.3): the
//! `_VERSION` with a `-alpha…` suffix stripped. perflab reads the same file as text — no Lua
//! needed — so it can name the base install a ref needs before anything runs.
//!
//! `kong/meta.lua` builds its version from a table passed to `setmetatable`:
//! `major`, `minor`, `patch` and an optional `suffix` (in 0.x releases `pre_release`), usually
//! left commented out (`--suffix = "-rc.1"`) between releases.

use std::fmt;

/// A Kong version as `kong/meta.lua` declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KongVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
    /// Suffix such as `-rc.1` or `-alpha.2` (with its leading `-`), when not commented out.
    pub suffix: Option<String>,
}

impl fmt::Display for KongVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}{}",
            self.major,
            self.minor,
            self.patch,
            self.suffix.as_deref().unwrap_or("")
        )
    }
}

impl KongVersion {
    /// The release whose build a ref at this version is overlaid on: the version without an
    /// `-alpha…` suffix (Kong's rule since 3.0.0); other suffixes (`-rc.1`, `-beta.1`) are kept.
    pub fn base_version(&self) -> String {
        match self.suffix.as_deref() {
            Some(s) if s.starts_with("-alpha") => {
                format!("{}.{}.{}", self.major, self.minor, self.patch)
            }
            _ => self.to_string(),
        }
    }
}

/// Versions a development branch names in its `kong/meta.lua` before they are released, and
/// the release whose build (package, image) a ref at that version runs on instead. Kong's
/// framework kept the same table (`version_map_table` in spec/helpers/perf/git.lua: "fallback
/// to previous version of artifact if current version is not released yet", with
/// `3.1.0 → 3.0.0`). Kong's master names 3.10.0, which has no open-source package or image;
/// 3.9.1 is the newest release with both. Add a line when master moves on, or override per run
/// ([`release_for`]).
pub const UNRELEASED: &[(&str, &str)] = &[("3.1.0", "3.0.0"), ("3.10.0", "3.9.1")];

/// The release a `git:` ref at version `v` runs on: `override_` when given (the case's
/// `base_version` setting or `PERFLAB_KONG_BASE_VERSION`), else [`KongVersion::base_version`]
/// mapped through [`UNRELEASED`].
pub fn release_for(v: &KongVersion, override_: Option<&str>) -> String {
    if let Some(o) = override_.filter(|o| !o.is_empty()) {
        return o.to_string();
    }
    let base = v.base_version();
    UNRELEASED
        .iter()
        .find(|(unreleased, _)| *unreleased == base)
        .map(|(_, release)| release.to_string())
        .unwrap_or(base)
}

/// `major.minor` of a version string (`3.9.3`, `3.4.3.12`, `3.10.0-rc.1`).
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Removes Lua line comments (`-- …`) outside string literals.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut quote: Option<char> = None;
        let bytes: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) if c == '\\' => {
                    out.push(c);
                    i += 1;
                    if i < bytes.len() {
                        out.push(bytes[i]);
                    }
                    i += 1;
                    continue;
                }
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == '-' && bytes.get(i + 1) == Some(&'-') => break,
                None => {}
            }
            out.push(c);
            i += 1;
        }
        out.push('\n');
    }
    out
}

/// Parses the version out of a `kong/meta.lua` text.
pub fn parse_meta_lua(text: &str) -> Result<KongVersion, String> {
    let code = strip_comments(text);
    let start = code
        .find("setmetatable")
        .and_then(|i| code[i..].find('{').map(|j| i + j + 1))
        .ok_or("kong/meta.lua: no `setmetatable({` version table")?;
    let end = code[start..]
        .find('}')
        .map(|j| start + j)
        .ok_or("kong/meta.lua: unterminated version table")?;
    let mut major = None;
    let mut minor = None;
    let mut patch = None;
    let mut suffix = None;
    for field in code[start..end].split([',', '\n']) {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let num = || {
            v.parse::<u32>()
                .map_err(|_| format!("kong/meta.lua: `{k}` is not a number: {v}"))
        };
        match k {
            "major" => major = Some(num()?),
            "minor" => minor = Some(num()?),
            "patch" => patch = Some(num()?),
            "suffix" | "pre_release" => {
                let s = v.trim_matches(|c| c == '"' || c == '\'').to_string();
                suffix = Some(if k == "pre_release" && !s.starts_with('-') {
                    format!("-{s}")
                } else {
                    s
                });
            }
            _ => {}
        }
    }
    Ok(KongVersion {
        major: major.ok_or("kong/meta.lua: no `major`")?,
        minor: minor.ok_or("kong/meta.lua: no `minor`")?,
        patch: patch.ok_or("kong/meta.lua: no `patch`")?,
        suffix: suffix.filter(|s| !s.is_empty()),
    })
}

/// The version in `kong version` output (`3.9.1`, `Kong 3.9.1`, `Kong Enterprise 3.4.3.12`):
/// the first word that starts with a digit and contains a dot.
pub fn parse_version_output(out: &str) -> Option<String> {
    out.split_whitespace()
        .map(|w| w.trim_end_matches([',', ';']))
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(str::to_string)
}

/// True when an installed version satisfies a requested release: equal, or the installed one
/// extends it with more components (`3.4.3` is satisfied by Enterprise's `3.4.3.12`).
pub fn release_matches(wanted: &str, installed: &str) -> bool {
    installed == wanted
        || installed
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// True when a string looks like a release version (`3.9.1`, `2.8.1.1`, `3.0.0-rc.1`).
pub fn is_release(version: &str) -> bool {
    let core = version.split('-').next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::role::gateway::kong::test_support::*;
    use crate::role::gateway::kong::*;

    #[test]
    fn meta_lua_gives_the_base_version() {
        let text = std::fs::read_to_string(repo("tests/fixtures/kong/meta.lua")).unwrap();
        let v = meta::parse_meta_lua(&text).unwrap();
        assert_eq!(
            (v.major, v.minor, v.patch, v.suffix.clone()),
            (3, 10, 0, None),
            "the commented-out suffix is ignored"
        );
        assert_eq!(v.to_string(), "3.10.0");
        assert_eq!(v.base_version(), "3.10.0");

        let alpha = text.replace("--suffix = \"-rc.1\"", "suffix = \"-alpha.2\"");
        let v = meta::parse_meta_lua(&alpha).unwrap();
        assert_eq!(v.to_string(), "3.10.0-alpha.2");
        assert_eq!(v.base_version(), "3.10.0", "-alpha is stripped");
        let rc = text.replace("--suffix = \"-rc.1\"", "suffix = \"-rc.1\",");
        assert_eq!(
            meta::parse_meta_lua(&rc).unwrap().base_version(),
            "3.10.0-rc.1"
        );

        // The 0.x shape with `pre_release`.
        let old = "local version = setmetatable({\n  major = 0,\n  minor = 8,\n  patch = 3,\n  pre_release = \"alpha\"\n}, {})\n";
        assert_eq!(
            meta::parse_meta_lua(old).unwrap().to_string(),
            "0.8.3-alpha"
        );
        assert!(meta::parse_meta_lua("return {}").is_err());
        assert!(
            meta::parse_meta_lua("setmetatable({ major = x, minor = 1, patch = 0 }, {})").is_err()
        );
    }

    #[test]
    fn unreleased_versions_map_to_a_release_unless_overridden() {
        let v = |major, minor| KongVersion {
            major,
            minor,
            patch: 0,
            suffix: Some("-alpha.1".into()),
        };
        assert_eq!(release_for(&v(3, 10), None), "3.9.1");
        assert_eq!(release_for(&v(3, 1), None), "3.0.0");
        assert_eq!(release_for(&v(3, 8), None), "3.8.0");
        assert_eq!(release_for(&v(3, 10), Some("3.9.3")), "3.9.3");
        assert_eq!(major_minor("3.10.0-rc.1"), Some((3, 10)));
        assert_eq!(major_minor("2.8.1.1"), Some((2, 8)));
    }

    #[test]
    fn strips_comments_outside_strings() {
        assert_eq!(strip_comments("a = \"x--y\" -- c"), "a = \"x--y\" \n");
    }
}
