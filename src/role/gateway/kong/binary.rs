//! Which `kong` program runs a version label: the installed Kong (`current`), a release
//! (installed from Kong's package on provisioned hosts), or a `git:` worktree's `bin/kong` on
//! top of an installed base release ([`super::meta::release_for`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::prefix::{self, KongPrefix};
use super::{meta, package};
use crate::host::{Cmd, Host};
use crate::{Error, Result};

/// Where docs/kong.md tells how to install Kong for perflab.
const INSTALL_HINT: &str = "install Kong Gateway (a distro package from Kong's download site, a Kong built from \
     source with PERFLAB_KONG_PREFIX=<its prefix> (docs/kong-from-source.md), or use the docker \
     driver with a kong image); see docs/kong.md";

/// Which Kong a version label asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VersionSpec {
    /// `kong` on the host's PATH (also `image:…`: the driver picked the image).
    Current,
    /// A release the installed `kong` must report.
    Release(String),
    /// A git ref checked out in `GatewayContext::version_dir`.
    Git(String),
}

impl VersionSpec {
    /// Parses `current`, `image:…`, `git:<ref>` or a release like `3.9.1`.
    /// The label's syntax is [`crate::version::Label`]'s; a release must also be a Kong
    /// release number ([`meta::is_release`]).
    pub fn parse(label: &str) -> Result<Self> {
        use crate::version::Label;
        match Label::classify(label)? {
            Label::Current | Label::Image(_) => Ok(VersionSpec::Current),
            Label::Git(r) => Ok(VersionSpec::Git(r.to_string())),
            Label::Release(n) if meta::is_release(n) => Ok(VersionSpec::Release(n.to_string())),
            Label::Release(_) => Err(Error::Usage(format!(
                "kong version `{label}`: expected current, git:<ref>, a release like 3.9.1, or image:<ref>"
            ))),
        }
    }
}

/// How to run the chosen Kong on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KongBinary {
    /// The `kong` program.
    pub program: String,
    /// The directory to run it from (a git worktree), if any.
    pub cwd: Option<PathBuf>,
    /// `lua_package_path` to set (the worktree first), if any.
    pub lua_package_path: Option<String>,
    /// Environment every `kong` command gets (a built prefix's, see [`prefix`]); empty for a
    /// Kong installed system-wide.
    pub env: Vec<(String, String)>,
    /// What the version resolved to, for results.
    pub detail: String,
    /// The Kong version it is (`kong version`, or a `git:` ref's `kong/meta.lua`).
    pub version: String,
}

/// Where `kong` is looked for: a built prefix (`PERFLAB_KONG_PREFIX`) with the environment it
/// needs, or the host's `PATH`.
#[derive(Debug, Clone, Default)]
pub struct KongLocation {
    /// The prefix, when `PERFLAB_KONG_PREFIX` names one.
    pub prefix: Option<KongPrefix>,
    /// The environment of the prefix's commands (empty without a prefix).
    pub env: Vec<(String, String)>,
    /// The release `git:` versions run on, when `PERFLAB_KONG_BASE_VERSION` names one
    /// (see [`meta::release_for`]).
    pub base_version: Option<String>,
}

impl KongLocation {
    /// `kong` on the host's `PATH`.
    pub fn path() -> Self {
        KongLocation::default()
    }

    /// From perflab's environment `env`: the prefix `PERFLAB_KONG_PREFIX` names, if any.
    /// `base_path` is the `PATH` its directories go in front of (perflab's own on a host that
    /// shares this machine's files; `None`: the usual system directories).
    pub fn from_env(env: &[(String, String)], base_path: Option<&str>) -> Self {
        let base_version = env_value(env, BASE_VERSION_VAR).map(str::to_string);
        match KongPrefix::from_env(env) {
            Some(p) => KongLocation {
                env: p.env(base_path),
                prefix: Some(p),
                base_version,
            },
            None => KongLocation {
                base_version,
                ..KongLocation::path()
            },
        }
    }

    /// The installed `kong` program on `host`: the prefix's `bin/kong` when a prefix is set
    /// (never the one on `PATH` then), else `kong` on `PATH`.
    fn find(&self, host: &dyn Host) -> Option<String> {
        match &self.prefix {
            Some(p) => {
                let program = p.program();
                let ok = host
                    .run(
                        &Cmd::new("test").args(["-x", &program]),
                        Duration::from_secs(10),
                    )
                    .is_ok_and(|o| o.success());
                ok.then_some(program)
            }
            None => host.which("kong"),
        }
    }

    fn missing(&self, host: &dyn Host) -> Error {
        match &self.prefix {
            Some(p) => Error::MissingTool {
                program: p.program(),
                where_: format!(" on host {} ({}={})", host.name(), prefix::PREFIX_VAR, p.root.display()),
                hint: "build Kong into that prefix (docs/kong-from-source.md) or unset PERFLAB_KONG_PREFIX"
                    .to_string(),
            },
            None => missing_kong(host, "kong"),
        }
    }

    fn cmd(&self, program: &str) -> Cmd {
        self.env
            .iter()
            .fold(Cmd::new(program), |c, (k, v)| c.env(k, v))
    }
}

/// The variable that names the release `git:` versions run on (over [`meta::UNRELEASED`]).
pub(crate) const BASE_VERSION_VAR: &str = "PERFLAB_KONG_BASE_VERSION";

/// The non-empty value of `key` in `env`.
pub(crate) fn env_value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn missing_kong(host: &dyn Host, program: &str) -> Error {
    Error::MissingTool {
        program: program.to_string(),
        where_: format!(" on host {}", host.name()),
        hint: INSTALL_HINT.to_string(),
    }
}

fn kong_version(
    host: &dyn Host,
    loc: &KongLocation,
    program: &str,
    cwd: Option<&Path>,
) -> Result<String> {
    let mut cmd = loc.cmd(program).arg("version");
    if let Some(d) = cwd {
        cmd = cmd.cwd(d);
    }
    let out = host.run(&cmd, Duration::from_secs(60))?;
    if !out.success() {
        return Err(Error::Lab(format!(
            "`{} version` failed on {}: {}",
            program,
            host.name(),
            out.combined_text()
        )));
    }
    meta::parse_version_output(&out.stdout_text()).ok_or_else(|| {
        Error::Lab(format!(
            "`{program} version` printed no version: {}",
            out.combined_text()
        ))
    })
}

/// Finds the Kong a version label asks for on `host`.
///
/// With `install_packages` (hosts the terraform driver provisioned), a release that is not
/// installed is installed from Kong's distribution package first ([`package`]) — unless `loc`
/// names a built prefix, which is used as it is.
pub fn resolve_binary(
    host: &dyn Host,
    version: &str,
    version_dir: Option<&Path>,
    install_packages: bool,
    loc: &KongLocation,
) -> Result<KongBinary> {
    let install_packages = install_packages && loc.prefix.is_none();
    let detail_of = |v: &str| match &loc.prefix {
        Some(p) => format!("kong {v} (built, {})", p.root.display()),
        None => format!("kong {v}"),
    };
    match VersionSpec::parse(version)? {
        VersionSpec::Current => {
            let program = loc.find(host).ok_or_else(|| loc.missing(host))?;
            let v = kong_version(host, loc, &program, None)?;
            Ok(KongBinary {
                program,
                cwd: None,
                lua_package_path: None,
                env: loc.env.clone(),
                detail: detail_of(&v),
                version: v,
            })
        }
        VersionSpec::Release(wanted) => {
            let installed = match loc.find(host) {
                Some(p) => Some((kong_version(host, loc, &p, None)?, p)),
                None => None,
            };
            let (v, program) = match installed {
                Some((v, p)) if meta::release_matches(&wanted, &v) => (v, p),
                _ if install_packages => {
                    install_release(host, &wanted)?;
                    let p = loc.find(host).ok_or_else(|| loc.missing(host))?;
                    (kong_version(host, loc, &p, None)?, p)
                }
                Some((v, p)) => (v, p),
                None => return Err(loc.missing(host)),
            };
            if !meta::release_matches(&wanted, &v) {
                return Err(Error::Usage(format!(
                    "kong {wanted} was asked for, but `{program}` on {} is {v}: install {wanted} \
                     there, use the docker driver (image kong:{wanted}), or ask for `current`",
                    host.name()
                )));
            }
            Ok(KongBinary {
                program,
                cwd: None,
                lua_package_path: None,
                env: loc.env.clone(),
                detail: detail_of(&v),
                version: v,
            })
        }
        VersionSpec::Git(r) => {
            let dir = version_dir.ok_or_else(|| {
                Error::Usage(format!(
                    "kong git:{r}: no worktree was prepared for this version"
                ))
            })?;
            let meta_text = host.read_file(&dir.join("kong/meta.lua"))?;
            let ref_version = meta::parse_meta_lua(&String::from_utf8_lossy(&meta_text))
                .map_err(|e| Error::Lab(format!("git:{r}: {e}")))?;
            let base = meta::release_for(&ref_version, loc.base_version.as_deref());
            let bin = dir.join("bin/kong");
            let bin_s = bin.display().to_string();
            let exec = host.run(
                &Cmd::new("test").args(["-x", &bin_s]),
                Duration::from_secs(10),
            )?;
            if !exec.success() {
                return Err(missing_kong(host, &bin_s));
            }
            // The ref's Lua runs on an installed Kong's OpenResty and Lua dependencies; on a
            // provisioned machine the base release is installed when another one (or none) is.
            if install_packages {
                let current = match loc.find(host) {
                    Some(p) => Some(kong_version(host, loc, &p, None)?),
                    None => None,
                };
                if !current.is_some_and(|v| meta::release_matches(&base, &v)) {
                    install_release(host, &base)?;
                }
            }
            let installed = loc.find(host).ok_or_else(|| Error::MissingTool {
                program: format!("kong {base} (the base install git:{r} runs on)"),
                where_: format!(" on host {}", host.name()),
                hint: INSTALL_HINT.to_string(),
            })?;
            let installed_v = kong_version(host, loc, &installed, None)?;
            if !installed_v.starts_with(&format!("{}.{}.", ref_version.major, ref_version.minor)) {
                tracing::warn!(
                    "git:{r} is Kong {ref_version} (base {base}) but the installed Kong is \
                     {installed_v}; the ref's Lua may need other dependencies"
                );
            }
            let d = dir.display();
            Ok(KongBinary {
                program: bin_s,
                cwd: Some(dir.to_path_buf()),
                lua_package_path: Some(format!("{d}/?.lua;{d}/?/init.lua;;")),
                // The worktree-first `lua_package_path` above must win: a prefix's
                // KONG_LUA_PACKAGE_PATH would override it (Kong reads KONG_* over kong.conf);
                // its `;;` still reaches the prefix's trees through LUA_PATH.
                env: loc
                    .env
                    .iter()
                    .filter(|(k, _)| k != "KONG_LUA_PACKAGE_PATH")
                    .cloned()
                    .collect(),
                detail: format!(
                    "git:{r} (kong/meta.lua {ref_version}, base {base}, on installed kong {installed_v})"
                ),
                version: ref_version.to_string(),
            })
        }
    }
}

/// Installs Kong `release` on `host` from its distribution package.
fn install_release(host: &dyn Host, release: &str) -> Result<()> {
    tracing::info!(
        "installing Kong {release} on {} from Kong's packages",
        host.name()
    );
    let script = package::install_script(release)?;
    let out = host.run(
        &Cmd::new("sh").arg("-c").arg(script),
        Duration::from_secs(900),
    )?;
    if !out.success() {
        return Err(Error::Lab(format!(
            "installing Kong {release} on {} failed (exit {:?}):\n{}",
            host.name(),
            out.code,
            out.combined_text()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_labels_and_kong_version_output() {
        assert_eq!(VersionSpec::parse("current").unwrap(), VersionSpec::Current);
        assert_eq!(
            VersionSpec::parse("image:kong:3.9.1").unwrap(),
            VersionSpec::Current
        );
        assert_eq!(
            VersionSpec::parse("git:origin/master~10").unwrap(),
            VersionSpec::Git("origin/master~10".into())
        );
        for r in ["3.9.1", "2.8.1.1", "3.0.0-rc.1"] {
            assert_eq!(
                VersionSpec::parse(r).unwrap(),
                VersionSpec::Release(r.into())
            );
        }
        assert!(VersionSpec::parse("latest").is_err());

        assert_eq!(
            meta::parse_version_output("3.9.1\n").as_deref(),
            Some("3.9.1")
        );
        assert_eq!(
            meta::parse_version_output("Kong 3.4.2").as_deref(),
            Some("3.4.2")
        );
        assert_eq!(
            meta::parse_version_output("Kong Enterprise 3.4.3.12\n").as_deref(),
            Some("3.4.3.12")
        );
        assert_eq!(meta::parse_version_output("no version"), None);
        assert!(meta::release_matches("3.9.1", "3.9.1"));
        assert!(meta::release_matches("3.4.3", "3.4.3.12"));
        assert!(!meta::release_matches("3.9.1", "3.9.10"));
        assert!(!meta::release_matches("3.9.1", "3.8.0"));
    }
}
