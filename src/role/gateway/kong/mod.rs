//! The Kong gateway adapter: traditional (PostgreSQL), DB-less and hybrid modes, for the Kong
//! that is installed (`current`), a release (`3.9.1`) or a git ref (`git:<ref>`).
//!
//! This re-creates Kong's framework's `setup_kong`/`start_kong`/`start_hybrid_kong`/`stop_kong`
//! (reference §1.2, §5, §6.5, §8) once, against a [`Host`], instead of once per driver:
//!
//! - **traditional**: a private PostgreSQL ([`crate::role::postgres`]) unless the case names a
//!   `pg_host`, `kong migrations bootstrap`, then `kong start` with `nginx_daemon = off` as a
//!   background process in its own group; entities through the Admin API ([`admin`]).
//! - **dbless**: `database = off` and a declarative config file ([`declarative`]).
//! - **hybrid**: one control plane (traditional, `role = control_plane`, no proxy) and N data
//!   planes (`role = data_plane`, `database = off`, `cluster_control_plane = …`), sharing a
//!   fresh cluster certificate ([`certs`]); traffic goes to the first data plane.
//!
//! Configuration is rendered by [`conf`]: perflab's defaults, then the case's `kong_configs`,
//! then every `KONG_*` variable of perflab's environment, as in Kong's framework, except the
//! per-instance properties ([`conf::PER_INSTANCE`]), which are also pinned in the environment
//! of every `kong` command. Kong's unused default listeners are off ([`StartPlan::adapt_to`]).
//! A `git:` ref runs the worktree's `bin/kong` from the worktree, with the worktree first on
//! the Lua path, on top of an installed Kong whose version [`meta`] derives from the ref's
//! `kong/meta.lua` (mapped to a release by [`meta::release_for`]).
//!
//! Case settings (`[case.gateway_settings]`): `mode` (`traditional` | `dbless` | `hybrid`,
//! default `traditional`), `kong_configs` (table), `data_planes` (hybrid, default 1),
//! `service_path` (default `/test`), `pg_port` (default: from the allocator), `start_timeout`
//! (seconds, default 120), `base_version`. Ports come from one allocator ([`PortLayout`]);
//! every port a start listens on must be distinct (checked by [`plan`]) and free on the host
//! (checked before anything starts).

pub mod admin;
pub mod certs;
pub mod conf;
pub mod declarative;
pub mod meta;
pub mod package;
pub mod prefix;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::host::{Cmd, Host, HostError, Proc, poll_until};
use crate::role::gateway::{GatewayAdapter, GatewayContext, RunningGateway};
use crate::role::postgres::{Postgres, PostgresOptions, start_postgres};
use crate::{Error, Result};
use prefix::KongPrefix;

/// Where docs/kong.md tells how to install Kong for perflab.
const INSTALL_HINT: &str = "install Kong Gateway (a distro package from Kong's download site, a Kong built from \
     source with PERFLAB_KONG_PREFIX=<its prefix> (docs/kong-from-source.md), or use the docker \
     driver with a kong image); see docs/kong.md";

/// How Kong stores its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PostgreSQL-backed, entities through the Admin API.
    Traditional,
    /// `database = off` with a declarative config file.
    Dbless,
    /// A control plane with PostgreSQL and data planes without a database.
    Hybrid,
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "traditional" => Ok(Mode::Traditional),
            "dbless" | "db-less" | "off" => Ok(Mode::Dbless),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(Error::Usage(format!(
                "kong mode `{other}`: expected traditional, dbless or hybrid"
            ))),
        }
    }
}

impl Mode {
    /// The name used in case files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Traditional => "traditional",
            Mode::Dbless => "dbless",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// A case's Kong settings, read from `GatewayContext::settings`.
#[derive(Debug, Clone, PartialEq)]
pub struct KongSettings {
    /// The mode.
    pub mode: Mode,
    /// Kong properties from the case.
    pub kong_configs: toml::Table,
    /// Data planes in hybrid mode.
    pub data_planes: u32,
    /// The upstream path services point at.
    pub service_path: String,
    /// PostgreSQL's port when perflab starts it (`None`: admin port + 3).
    pub pg_port: Option<u16>,
    /// How long Kong may take to become ready.
    pub start_timeout: Duration,
    /// Run `git:` versions on Kong's nightly image instead of the release their
    /// `kong/meta.lua` names (docker driver; also `PERFLAB_USE_DAILY_IMAGE`).
    pub use_daily_image: bool,
    /// The release `git:` versions run on (package, image), instead of the one their
    /// `kong/meta.lua` names mapped through [`meta::UNRELEASED`]; also
    /// `PERFLAB_KONG_BASE_VERSION`.
    pub base_version: Option<String>,
    /// Start Kong once per case and run its repeats against it (`lifecycle = "per-case"`, the
    /// default, as Kong's framework: `start_kong` in `before_each`, three loads per test), or
    /// once per run (`"per-run"`, independent repeats).
    pub per_case: bool,
    /// How a database-backed Kong gets its entities (`seed`).
    pub seed: Seed,
}

/// How a database-backed Kong (traditional, a hybrid control plane) gets the case's entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// The Admin API below [`BULK_REQUESTS`] requests, [`Seed::Import`] from there on.
    Auto,
    /// One Admin API request per entity, after Kong started.
    Admin,
    /// `kong config db_import <declarative file>` before Kong starts: Kong's own bulk path
    /// (kong/cmd/config.lua, `declarative.load_into_db`), which writes every entity to
    /// PostgreSQL in one process with Kong's schemas and defaults, without an HTTP round trip
    /// per entity. Kong's framework seeded the database directly too (its `bp` blueprints,
    /// reference §6.6).
    Import,
}

/// Admin API requests from which [`Seed::Auto`] imports instead: each request is an HTTP round
/// trip and a database write of its own, while an import writes everything in one process.
pub const BULK_REQUESTS: usize = 1000;

impl Seed {
    /// Whether `requests` entities are imported rather than sent to the Admin API.
    pub fn imports(&self, requests: usize) -> bool {
        match self {
            Seed::Auto => requests >= BULK_REQUESTS,
            Seed::Admin => false,
            Seed::Import => true,
        }
    }
}

impl KongSettings {
    /// Reads the settings table, refusing unknown keys and wrong types.
    pub fn from_table(t: &toml::Table) -> Result<Self> {
        let bad =
            |k: &str, want: &str| Error::Usage(format!("kong setting `{k}`: expected {want}"));
        let mut s = KongSettings {
            mode: Mode::Traditional,
            kong_configs: toml::Table::new(),
            data_planes: 1,
            service_path: declarative::DEFAULT_SERVICE_PATH.to_string(),
            pg_port: None,
            start_timeout: Duration::from_secs(120),
            use_daily_image: false,
            base_version: None,
            per_case: true,
            seed: Seed::Auto,
        };
        for (k, v) in t {
            match k.as_str() {
                "mode" => s.mode = v.as_str().ok_or_else(|| bad(k, "a string"))?.parse()?,
                "kong_configs" => {
                    s.kong_configs = v.as_table().ok_or_else(|| bad(k, "a table"))?.clone()
                }
                "data_planes" => {
                    s.data_planes = v
                        .as_integer()
                        .and_then(|i| u32::try_from(i).ok())
                        .filter(|i| *i >= 1)
                        .ok_or_else(|| bad(k, "a positive integer"))?
                }
                "service_path" => {
                    let p = v.as_str().ok_or_else(|| bad(k, "a string"))?;
                    if !(p.is_empty() || p.starts_with('/')) {
                        return Err(bad(k, "a path starting with `/`"));
                    }
                    s.service_path = p.to_string();
                }
                "pg_port" => {
                    s.pg_port = Some(
                        v.as_integer()
                            .and_then(|i| u16::try_from(i).ok())
                            .ok_or_else(|| bad(k, "a port number"))?,
                    )
                }
                "start_timeout" => {
                    s.start_timeout = Duration::from_secs(
                        v.as_integer()
                            .and_then(|i| u64::try_from(i).ok())
                            .filter(|i| *i <= 86_400)
                            .ok_or_else(|| bad(k, "seconds from 0 to 86400"))?,
                    )
                }
                "use_daily_image" => {
                    s.use_daily_image = v.as_bool().ok_or_else(|| bad(k, "true or false"))?
                }
                "seed" => {
                    s.seed = match v.as_str() {
                        Some("auto") => Seed::Auto,
                        Some("admin") => Seed::Admin,
                        Some("import") => Seed::Import,
                        _ => return Err(bad(k, "\"auto\", \"admin\" or \"import\"")),
                    }
                }
                "lifecycle" => {
                    s.per_case = match v.as_str() {
                        Some("per-case") => true,
                        Some("per-run") => false,
                        _ => return Err(bad(k, "\"per-case\" or \"per-run\"")),
                    }
                }
                "base_version" => {
                    let b = v.as_str().ok_or_else(|| bad(k, "a release like 3.9.1"))?;
                    if !meta::is_release(b) {
                        return Err(bad(k, "a release like 3.9.1"));
                    }
                    s.base_version = Some(b.to_string());
                }
                other => {
                    return Err(Error::Usage(format!(
                        "unknown kong setting `{other}` (known: mode, kong_configs, data_planes, \
                         service_path, pg_port, start_timeout, use_daily_image, base_version, \
                         lifecycle, seed)"
                    )));
                }
            }
        }
        Ok(s)
    }
}

/// Which Kong a version label asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// `kong` on the host's PATH (also `image:…`: the driver picked the image).
    Current,
    /// A release the installed `kong` must report.
    Release(String),
    /// A git ref checked out in `GatewayContext::version_dir`.
    Git(String),
}

impl VersionSpec {
    /// Parses `current`, `image:…`, `git:<ref>` or a release like `3.9.1`.
    pub fn parse(label: &str) -> Result<Self> {
        if label == "current" || label.starts_with("image:") {
            Ok(VersionSpec::Current)
        } else if let Some(r) = label.strip_prefix("git:") {
            Ok(VersionSpec::Git(r.to_string()))
        } else if meta::is_release(label) {
            Ok(VersionSpec::Release(label.to_string()))
        } else {
            Err(Error::Usage(format!(
                "kong version `{label}`: expected current, git:<ref>, a release like 3.9.1, or image:<ref>"
            )))
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
pub const BASE_VERSION_VAR: &str = "PERFLAB_KONG_BASE_VERSION";

/// The non-empty value of `key` in `env`.
fn env_value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
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

/// The Kong adapter.
#[derive(Debug, Clone, Default)]
pub struct KongAdapter {
    env: Option<Vec<(String, String)>>,
}

impl KongAdapter {
    /// An adapter whose `KONG_*` overrides come from perflab's own environment at start time.
    pub fn new() -> Self {
        KongAdapter { env: None }
    }

    /// An adapter with an explicit environment for `KONG_*` overrides (tests, embedding).
    pub fn with_env(env: Vec<(String, String)>) -> Self {
        KongAdapter { env: Some(env) }
    }

    fn env(&self) -> Vec<(String, String)> {
        self.env
            .clone()
            .unwrap_or_else(|| std::env::vars().collect())
    }
}

/// One Kong instance's files and listens, before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct InstancePlan {
    /// Instance name (`kong`, `cp`, `dp1`, …).
    pub name: String,
    /// Kong's prefix.
    pub prefix: PathBuf,
    /// The `kong.conf` path.
    pub conf_path: PathBuf,
    /// The merged properties.
    pub conf: conf::KongConf,
}

impl InstancePlan {
    /// The error log this instance writes.
    pub fn error_log(&self) -> PathBuf {
        self.prefix.join("logs/error.log")
    }
}

/// Everything a start writes, computed without touching a host: the instances' configurations
/// (in start order: control plane first) and the declarative document. Public so the rendering
/// can be checked without Kong.
#[derive(Debug, Clone, PartialEq)]
pub struct StartPlan {
    /// The mode.
    pub mode: Mode,
    /// Instances in start order; the last one (the only one, or the last data plane) is not
    /// special: traffic goes to [`StartPlan::traffic_instance`].
    pub instances: Vec<InstancePlan>,
    /// The entities as a declarative document.
    pub document: serde_json::Value,
    /// Where the declarative document is written (DB-less mode).
    pub declarative_path: PathBuf,
    /// PostgreSQL options when perflab starts its own server.
    pub postgres: Option<PostgresOptions>,
    /// Cluster certificate paths (hybrid).
    pub cluster_cert: Option<(PathBuf, PathBuf)>,
}

impl StartPlan {
    /// The index of the instance that serves traffic (the first data plane in hybrid mode).
    pub fn traffic_instance(&self) -> usize {
        if self.mode == Mode::Hybrid { 1 } else { 0 }
    }
    /// The index of the instance with the Admin API.
    pub fn admin_instance(&self) -> usize {
        0
    }

    /// Fits the plan to the Kong `version` that runs it (`3.9.3`, `2.8.1`): the declarative
    /// format of its major ([`declarative::format_version`]) and Kong's unused default
    /// listeners off ([`conf::unused_default_listeners`]) unless the case set them.
    pub fn adapt_to(&mut self, version: &str) {
        let Some((major, minor)) = meta::major_minor(version) else {
            return;
        };
        self.document["_format_version"] = declarative::format_version(major).into();
        for inst in &mut self.instances {
            for key in conf::unused_default_listeners(major, minor) {
                inst.conf
                    .entry(key.to_string())
                    .or_insert_with(|| "off".to_string());
            }
        }
    }
}

/// The `kong migrations` commands (arguments after `kong`) that make the database behind
/// `conf_path` ready for this Kong: `bootstrap` (a no-op on a bootstrapped database), then
/// `up -y` and `finish -y`, so a reused database or a dump from an older Kong is migrated too.
/// Kong's framework ran the same three (spec/helpers/perf/drivers/docker.lua and
/// terraform.lua); each prints "Database already bootstrapped", "Database is already
/// up-to-date" or "No pending migrations to finish" and succeeds when there is nothing to do
/// (kong/cmd/utils/migrations.lua), so perflab checks every exit status.
pub fn migration_commands(conf_path: &str) -> Vec<Vec<String>> {
    [
        &["migrations", "bootstrap"][..],
        &["migrations", "up", "-y"],
        &["migrations", "finish", "-y"],
    ]
    .iter()
    .map(|a| {
        a.iter()
            .map(|s| s.to_string())
            .chain(["-c".to_string(), conf_path.to_string()])
            .collect()
    })
    .collect()
}

/// The migrate-only verb: runs Kong `version`'s migrations ([`migration_commands`]) on `host`
/// against the database `kong_configs` names (`pg_host`, `pg_port`, …), without starting Kong.
/// For a database restored from a dump of an older Kong, or to time the migrations alone.
/// `dir` is a private directory on the host for the configuration and Kong's prefix; `env` is
/// perflab's environment (for `PERFLAB_KONG_PREFIX` and `KONG_*`).
pub fn migrate_only(
    host: &dyn Host,
    version: &str,
    kong_configs: &toml::Table,
    dir: &Path,
    env: &[(String, String)],
) -> Result<()> {
    let loc = KongLocation::from_env(env, None);
    let bin = resolve_binary(host, version, None, false, &loc)?;
    let prefix = dir.join("kong");
    let mut defaults = conf::KongConf::new();
    defaults.insert("prefix".into(), prefix.display().to_string());
    defaults.insert("database".into(), "postgres".into());
    defaults.insert("anonymous_reports".into(), "off".into());
    let c = conf::merge(
        defaults,
        Some(kong_configs),
        env.iter().map(|(k, v)| (k, v)),
    )?;
    let conf_path = dir.join("migrate.conf");
    host.write_file(&conf_path, conf::render(&c).as_bytes())?;
    migrate(host, &bin, &c, &conf_path.display().to_string())
}

/// Runs [`migration_commands`] for the instance configuration at `conf_path` with `bin`; the
/// first failure is an error with Kong's output. The migrate-only verb
/// (the session's `migrate_kong`) and every database-backed start use it.
pub fn migrate(
    host: &dyn Host,
    bin: &KongBinary,
    conf: &conf::KongConf,
    conf_path: &str,
) -> Result<()> {
    for args in migration_commands(conf_path) {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = host.run(&instance_cmd(bin, conf, &argv), Duration::from_secs(600))?;
        if !out.success() {
            return Err(Error::Lab(format!(
                "`kong {}` failed on {}:\n{}",
                args.join(" "),
                host.name(),
                out.combined_text()
            )));
        }
    }
    Ok(())
}

/// The ports of one Kong lab, one per listener, handed out by one allocator: the lab's proxy
/// and admin ports, then — counting up from the port after the admin port, in this order —
/// the control plane's cluster and telemetry listeners (hybrid), PostgreSQL (when perflab
/// starts it and the case names no `pg_port`) and the proxy of each data plane after the first.
/// Before this allocator, data plane *i* listened on `proxy_port + i − 1`: the control plane's
/// admin port for *i* = 2 and its cluster port for *i* = 3, so a three-data-plane lab silently
/// ran with one. [`plan`] then checks that no two listeners (with the case's own) share a port
/// and the start checks each is free on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortLayout {
    /// The traffic instance's proxy (`proxy_listen`; data plane 1 in hybrid mode).
    pub proxy: u16,
    /// The Admin API (the control plane's in hybrid mode).
    pub admin: u16,
    /// `cluster_listen` (hybrid).
    pub cluster: Option<u16>,
    /// `cluster_telemetry_listen` (hybrid).
    pub telemetry: Option<u16>,
    /// PostgreSQL, when perflab starts it.
    pub postgres: Option<u16>,
    /// The proxies of data planes 2, 3, … (hybrid).
    pub data_plane_proxies: Vec<u16>,
    /// The last port the allocator handed out (the admin port when none).
    last: u16,
}

impl PortLayout {
    /// The layout for `settings` from the lab's `proxy` and `admin` ports; `own_postgres` is
    /// whether perflab starts PostgreSQL.
    pub fn new(settings: &KongSettings, proxy: u16, admin: u16, own_postgres: bool) -> Self {
        let mut next = admin;
        let mut take = || {
            next = next.saturating_add(1);
            next
        };
        let hybrid = settings.mode == Mode::Hybrid;
        let cluster = hybrid.then(&mut take);
        let telemetry = hybrid.then(&mut take);
        let postgres = own_postgres.then(|| settings.pg_port.unwrap_or_else(&mut take));
        let extra_dps = if hybrid {
            settings.data_planes.saturating_sub(1)
        } else {
            0
        };
        let data_plane_proxies = (0..extra_dps).map(|_| take()).collect();
        PortLayout {
            proxy,
            admin,
            cluster,
            telemetry,
            postgres,
            data_plane_proxies,
            last: next,
        }
    }

    /// The proxy port of data plane `i` (1-based), or of the only instance for `i = 1`.
    pub fn data_plane_proxy(&self, i: u32) -> u16 {
        match i {
            0 | 1 => self.proxy,
            i => self.data_plane_proxies[i as usize - 2],
        }
    }

    /// How many consecutive ports from the proxy port the layout spans when the proxy port
    /// is followed by the admin port (as the session hands them out).
    pub fn span(&self) -> u16 {
        self.last.saturating_sub(self.proxy).saturating_add(1)
    }
}

/// The TCP ports of `listen` values (`addr:port`, `addr:port ssl`, lists with `,`); `off` has none.
fn listen_ports(listen: &str) -> Vec<u16> {
    listen
        .split(',')
        .filter_map(|l| {
            let addr = l.split_whitespace().next()?;
            addr.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// Every port the instances of `plan` and its PostgreSQL listen on, with who listens there.
pub fn planned_ports(plan: &StartPlan) -> Vec<(u16, String)> {
    let mut ports = Vec::new();
    for inst in &plan.instances {
        for key in [
            "proxy_listen",
            "admin_listen",
            "cluster_listen",
            "cluster_telemetry_listen",
            "status_listen",
        ] {
            if let Some(v) = inst.conf.get(key) {
                for p in listen_ports(v) {
                    ports.push((p, format!("{} {key}", inst.name)));
                }
            }
        }
    }
    if let Some(o) = &plan.postgres {
        ports.push((o.port, "postgres".to_string()));
    }
    ports
}

/// Ports of `ports` that something on `host` already listens on (or holds): bound from here on
/// a loopback host, read from the host's `/proc/net/tcp*` elsewhere (as
/// [`crate::role::ports::pick_ports`] does). An unreadable table checks nothing.
fn ports_in_use(host: &dyn Host, ports: &[(u16, String)]) -> Vec<(u16, String)> {
    if host.address() == "127.0.0.1" {
        return ports
            .iter()
            .filter(|(p, _)| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err())
            .cloned()
            .collect();
    }
    let Ok(out) = host.run(
        &Cmd::new("cat").args(["/proc/net/tcp", "/proc/net/tcp6"]),
        Duration::from_secs(10),
    ) else {
        return Vec::new();
    };
    let used = crate::role::ports::used_ports(&out.stdout_text());
    ports
        .iter()
        .filter(|(p, _)| used.contains(p))
        .cloned()
        .collect()
}

/// Computes what [`KongAdapter::start`] writes for `ctx` with `env` as the `KONG_*` source.
/// Refuses a plan in which two listeners share a port.
pub fn plan(ctx: &GatewayContext, env: &[(String, String)]) -> Result<StartPlan> {
    let s = KongSettings::from_table(ctx.settings)?;
    let addr = ctx.host.address();
    let document = declarative::document(ctx.entities, ctx.upstream_uris, &s.service_path)?;
    let declarative_path = ctx.prefix.join("kong.json");
    let admin = format!("{addr}:{}", ctx.admin_port);

    // The database, when one is needed: the case's/environment's pg_host wins; otherwise ours.
    let probe = conf::merge(
        conf::KongConf::new(),
        Some(&s.kong_configs),
        env.iter().map(|(k, v)| (k, v)),
    )?;
    let own_pg = s.mode != Mode::Dbless && !probe.contains_key("pg_host");
    let ports = PortLayout::new(&s, ctx.proxy_port, ctx.admin_port, own_pg);
    let postgres = match ports.postgres {
        Some(port) => Some(PostgresOptions {
            port,
            password: Some(crate::role::postgres::generate_password()?),
            ..PostgresOptions::default()
        }),
        None => None,
    };
    let mut db = conf::KongConf::new();
    if let Some(o) = &postgres {
        db.insert("database".into(), "postgres".into());
        let db_addr = ctx
            .database_host
            .as_ref()
            .map(|h| h.address())
            .unwrap_or_else(|| addr.clone());
        db.insert("pg_host".into(), db_addr);
        db.insert("pg_port".into(), o.port.to_string());
        db.insert("pg_user".into(), o.user.clone());
        if let Some(pw) = &o.password {
            db.insert("pg_password".into(), pw.clone());
        }
        db.insert("pg_database".into(), o.database.clone());
    } else if s.mode != Mode::Dbless {
        db.insert("database".into(), "postgres".into());
    }

    let instance =
        |name: &str, proxy_listen: String, admin_listen: String, extra: &conf::KongConf| {
            let prefix = ctx.prefix.join(name);
            let prefix_s = prefix.display().to_string();
            let error_log = prefix.join("logs/error.log").display().to_string();
            let mut defaults = conf::Defaults {
                prefix: &prefix_s,
                proxy_listen,
                admin_listen,
                workers: ctx.workers.max(1),
                error_log: &error_log,
            }
            .to_conf();
            defaults.extend(extra.clone());
            let merged = conf::merge(
                defaults,
                Some(&s.kong_configs),
                env.iter().map(|(k, v)| (k, v)),
            )?;
            Ok::<_, Error>(InstancePlan {
                name: name.to_string(),
                conf_path: ctx.prefix.join(format!("{name}.conf")),
                prefix,
                conf: merged,
            })
        };

    let proxy = |port: u16| format!("{addr}:{port}");
    let mut instances = Vec::new();
    let mut cluster_cert = None;
    match s.mode {
        Mode::Traditional => {
            instances.push(instance("kong", proxy(ctx.proxy_port), admin, &db)?);
        }
        Mode::Dbless => {
            let mut extra = conf::KongConf::new();
            extra.insert("database".into(), "off".into());
            extra.insert(
                "declarative_config".into(),
                declarative_path.display().to_string(),
            );
            instances.push(instance("kong", proxy(ctx.proxy_port), admin, &extra)?);
        }
        Mode::Hybrid => {
            let cert = ctx.prefix.join("cluster.crt");
            let key = ctx.prefix.join("cluster.key");
            let cluster = format!("{addr}:{}", ports.cluster.unwrap_or_default());
            let telemetry = format!("{addr}:{}", ports.telemetry.unwrap_or_default());
            let mut common = conf::KongConf::new();
            common.insert("cluster_cert".into(), cert.display().to_string());
            common.insert("cluster_cert_key".into(), key.display().to_string());
            let mut cp = db.clone();
            cp.extend(common.clone());
            cp.insert("role".into(), "control_plane".into());
            cp.insert("cluster_listen".into(), cluster.clone());
            cp.insert("cluster_telemetry_listen".into(), telemetry.clone());
            instances.push(instance("cp", "off".into(), admin, &cp)?);
            for i in 1..=s.data_planes {
                let mut dp = common.clone();
                dp.insert("role".into(), "data_plane".into());
                dp.insert("database".into(), "off".into());
                dp.insert("cluster_control_plane".into(), cluster.clone());
                dp.insert("cluster_telemetry_endpoint".into(), telemetry.clone());
                let port = ports.data_plane_proxy(i);
                instances.push(instance(&format!("dp{i}"), proxy(port), "off".into(), &dp)?);
            }
            cluster_cert = Some((cert, key));
        }
    }
    let plan = StartPlan {
        mode: s.mode,
        instances,
        document,
        declarative_path,
        postgres,
        cluster_cert,
    };
    let mut seen: std::collections::BTreeMap<u16, String> = Default::default();
    for (port, who) in planned_ports(&plan) {
        if let Some(first) = seen.insert(port, who.clone()) {
            return Err(Error::Usage(format!(
                "kong: port {port} is planned twice ({first} and {who}); change pg_port, \
                 kong_configs or the lab's ports"
            )));
        }
    }
    Ok(plan)
}

/// The processes of one Kong lab: the Kong instances (traffic instance first) and, when
/// perflab started it, PostgreSQL. Stopping it quits every Kong (`kong quit`, then TERM/KILL
/// to its group) and then stops PostgreSQL.
pub struct KongProcs {
    host: Arc<dyn Host>,
    kongs: Vec<(Box<dyn Proc>, Cmd)>,
    postgres: Option<Postgres>,
}

impl Proc for KongProcs {
    fn pid(&self) -> u32 {
        self.kongs.first().map(|(p, _)| p.pid()).unwrap_or(0)
    }
    fn is_running(&mut self) -> bool {
        self.kongs.iter_mut().all(|(p, _)| p.is_running())
    }
    fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<i32>, HostError> {
        match self.kongs.first_mut() {
            Some((p, _)) => p.wait_timeout(timeout),
            None => Ok(Some(0)),
        }
    }
    fn stop(&mut self, grace: Duration) -> Result<(), HostError> {
        // Data planes before the control plane (reverse start order is kept in `kongs`).
        for (p, quit) in self.kongs.iter_mut() {
            if p.is_running() {
                let _ = self.host.run(quit, grace + Duration::from_secs(10));
                let _ = p.wait_timeout(grace)?;
            }
            p.stop(grace)?;
        }
        if let Some(pg) = self.postgres.as_mut() {
            pg.stop().map_err(|e| HostError::Other {
                host: self.host.name().to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// `kong ARGS` for the instance configured by `conf`: the binary's environment, then the
/// instance's pinned properties ([`conf::pinned_env`]), so `KONG_*` variables perflab inherited
/// cannot move the instance's prefix or listeners.
fn instance_cmd(bin: &KongBinary, conf: &conf::KongConf, args: &[&str]) -> Cmd {
    let mut c = bin
        .env
        .iter()
        .chain(conf::pinned_env(conf).iter())
        .fold(Cmd::new(&bin.program), |c, (k, v)| c.env(k, v))
        .args(args.iter().copied());
    if let Some(d) = &bin.cwd {
        c = c.cwd(d);
    }
    c
}

/// The open-file limit Kong is started with where the hard limit allows: Kong sizes
/// `worker_rlimit_nofile` and `worker_connections` from `ulimit -n` (between 1024 and 16384,
/// kong/cmd/utils/prefix_handler.lua) and warns below 4096; Kong's framework started it after
/// `ulimit -n 655360` (spec/helpers/perf/drivers/terraform.lua).
pub const OPEN_FILES: u32 = 65536;

/// `cmd` run with its soft open-file limit raised to [`OPEN_FILES`] (or the hard limit when
/// that is lower), through `sh`, which then execs it (same pid, same process group).
fn with_open_files(cmd: Cmd) -> Cmd {
    let script = format!(
        "ulimit -n {OPEN_FILES} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$@\""
    );
    let inner = cmd.argv();
    let mut wrapped = Cmd::new("sh").arg("-c").arg(script).arg("sh").args(inner);
    wrapped.env = cmd.env;
    wrapped.cwd = cmd.cwd;
    wrapped
}

/// How often each Kong worker rebuilds its router from the database when
/// `worker_consistency = eventual` (Kong's default): `worker_state_update_frequency`, 5 s by
/// default (kong/templates/kong_defaults.lua; the rebuild timer in kong/runloop/handler.lua).
/// Workers rebuild on their own timers, so one routed request says nothing about the others.
pub fn router_rebuild_interval(conf: &conf::KongConf) -> Duration {
    let secs = conf
        .get("worker_state_update_frequency")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(5.0);
    Duration::from_secs_f64(secs)
}

/// Whether a request to `url` reached a route: any answer but 404 ("no Route matched") and 5xx.
fn is_routed(load_host: &dyn Host, url: &str) -> bool {
    matches!(load_host.http_status(url, Duration::from_secs(2)), Ok(code) if code != 404 && code < 500)
}

/// Waits until every path of `paths` is routed at `uri`, then waits one router `rebuild`
/// interval (every worker has rebuilt since) and checks every path once more. `Err` is the
/// first URL that was not routed within `timeout`, or before `alive` said the instance ended.
fn wait_routed(
    load_host: &dyn Host,
    uri: &str,
    paths: &[String],
    timeout: Duration,
    rebuild: Duration,
    alive: &mut dyn FnMut() -> bool,
) -> std::result::Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    for pass in 0..2 {
        if pass == 1 {
            std::thread::sleep(rebuild + Duration::from_millis(500));
        }
        for path in paths {
            let url = format!("{uri}{path}");
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let routed = poll_until(left, Duration::from_millis(250), || {
                if !alive() {
                    return Some(false);
                }
                is_routed(load_host, &url).then_some(true)
            });
            if routed != Some(true) {
                return Err(url);
            }
        }
    }
    Ok(())
}

fn tail(host: &dyn Host, path: &Path) -> String {
    host.read_file(path)
        .map(|b| {
            let t = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        })
        .unwrap_or_default()
}

impl GatewayAdapter for KongAdapter {
    fn needs_database_host(&self, settings: &toml::Table) -> bool {
        KongSettings::from_table(settings).is_ok_and(|s| s.mode != Mode::Dbless)
    }

    /// The span of the [`PortLayout`] for these settings (proxy, admin, then the listeners the
    /// allocator hands out after the admin port).
    fn ports_needed(&self, settings: &toml::Table) -> u16 {
        match KongSettings::from_table(settings) {
            Ok(s) => {
                let own_pg = s.mode != Mode::Dbless
                    && !s.kong_configs.contains_key("pg_host")
                    && !self.env().iter().any(|(k, _)| k == "KONG_PG_HOST");
                PortLayout::new(&s, 0, 1, own_pg).span()
            }
            Err(_) => 2,
        }
    }

    fn keeps_for_repeats(&self, settings: &toml::Table) -> bool {
        KongSettings::from_table(settings).is_ok_and(|s| s.per_case)
    }

    fn container_image(
        &self,
        version: &str,
        version_dir: Option<&Path>,
        settings: &toml::Table,
    ) -> Result<Option<crate::driver::GatewayImage>> {
        let env = self.env();
        let mut s = KongSettings::from_table(settings)?;
        if s.base_version.is_none() {
            s.base_version = env_value(&env, BASE_VERSION_VAR).map(str::to_string);
        }
        // Kong's framework spelled it PERF_TEST_USE_DAILY_IMAGE; both are honoured.
        let daily = env_value(&env, "PERFLAB_USE_DAILY_IMAGE")
            .or_else(|| env_value(&env, "PERF_TEST_USE_DAILY_IMAGE"));
        image_for(version, version_dir, &s, daily)
    }

    fn start(&self, ctx: &GatewayContext) -> Result<RunningGateway> {
        let host = ctx.host.clone();
        let env = self.env();
        let mut plan = plan(ctx, &env)?;
        // perflab's own PATH goes behind a built prefix's dirs only where it means the same.
        let own_path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        let settings = KongSettings::from_table(ctx.settings)?;
        let mut loc = KongLocation::from_env(&env, own_path.filter(|_| host.shares_local_files()));
        if settings.base_version.is_some() {
            loc.base_version = settings.base_version.clone();
        }
        let mut bin = resolve_binary(
            host.as_ref(),
            ctx.version,
            ctx.version_dir.as_deref(),
            ctx.install_packages,
            &loc,
        )?;
        plan.adapt_to(&bin.version);
        if let Some(lpp) = &bin.lua_package_path {
            for inst in plan.instances.iter_mut() {
                inst.conf
                    .entry("lua_package_path".into())
                    .or_insert_with(|| lpp.clone());
            }
        }
        // perflab's Lua sampler, loaded into every instance (dormant until asked).
        // (a built prefix's KONG_LUA_PACKAGE_PATH wins over kong.conf, so it gets the path too).
        let lua_dir = ctx.prefix.join("perflab-lua");
        for inst in plan.instances.iter_mut() {
            crate::role::lua_profiler::add_to_kong_conf(&mut inst.conf, &lua_dir);
        }
        for (_, v) in bin
            .env
            .iter_mut()
            .filter(|(k, _)| k == "KONG_LUA_PACKAGE_PATH")
        {
            *v = crate::role::lua_profiler::with_plugin_path(v, &lua_dir);
        }
        let busy = ports_in_use(host.as_ref(), &planned_ports(&plan));
        if !busy.is_empty() {
            let list: Vec<String> = busy.iter().map(|(p, who)| format!("{p} ({who})")).collect();
            return Err(Error::Lab(format!(
                "kong on {}: ports already in use: {}",
                host.name(),
                list.join(", ")
            )));
        }
        let mut config_files = Vec::new();
        host.write_file(
            &plan.declarative_path,
            declarative::render(&plan.document).as_bytes(),
        )?;
        config_files.push(plan.declarative_path.clone());
        if let Some((cert, key)) = &plan.cluster_cert {
            let pair = certs::generate(certs::DEFAULT_DAYS)?;
            host.write_file(cert, pair.cert_pem.as_bytes())?;
            host.write_file(key, pair.key_pem.as_bytes())?;
            config_files.push(cert.clone());
        }
        crate::role::lua_profiler::install_kong_plugin(host.as_ref(), &lua_dir)?;
        for inst in &plan.instances {
            crate::role::lua_profiler::prepare_control_dir(host.as_ref(), &inst.prefix)?;
            host.write_file(&inst.conf_path, conf::render(&inst.conf).as_bytes())?;
            config_files.push(inst.conf_path.clone());
        }

        let mut procs = KongProcs {
            host: host.clone(),
            kongs: Vec::new(),
            postgres: None,
        };
        if let Some(o) = plan.postgres.clone() {
            // On the lab's database host when the driver has one apart (a container, a db
            // machine), else next to Kong.
            let (db_host, dir) = match &ctx.database_host {
                Some(h) if !Arc::ptr_eq(h, &host) => (
                    h.clone(),
                    h.lab_dir().join(format!("kong-postgres-{}", o.port)),
                ),
                _ => (host.clone(), ctx.prefix.join("postgres")),
            };
            procs.postgres = Some(start_postgres(db_host, &dir, o)?);
        }
        let admin_uri = format!("http://{}:{}", host.address(), ctx.admin_port);
        let t = Duration::from_secs(300);
        let import = settings.seed.imports(admin::requests(&plan.document).len());
        let mut started: Vec<(Box<dyn Proc>, Cmd)> = Vec::new();
        for (i, inst) in plan.instances.iter().enumerate() {
            let conf_s = inst.conf_path.display().to_string();
            let check = host.run(&instance_cmd(&bin, &inst.conf, &["check", &conf_s]), t)?;
            if !check.success() {
                return Err(Error::ConfigRefused {
                    program: "kong".into(),
                    config: conf_s,
                    message: check.combined_text(),
                });
            }
            if inst.conf.get("database").map(String::as_str) == Some("postgres") {
                migrate(host.as_ref(), &bin, &inst.conf, &conf_s)?;
                if import && i == plan.admin_instance() {
                    let file = plan.declarative_path.display().to_string();
                    let args = ["config", "db_import", &file, "-c", &conf_s];
                    let out = host.run(&instance_cmd(&bin, &inst.conf, &args), t)?;
                    if !out.success() {
                        return Err(Error::Lab(format!(
                            "`kong config db_import` of the case's entities failed:\n{}",
                            out.combined_text()
                        )));
                    }
                }
            }
            let log = ctx.prefix.join(format!("{}.out", inst.name));
            let start = with_open_files(instance_cmd(&bin, &inst.conf, &["start", "-c", &conf_s]))
                .cpus(ctx.cpus.clone());
            let proc = match host.spawn(&start, &log) {
                Ok(p) => p,
                Err(e) => {
                    procs.kongs = started;
                    let _ = procs.stop(Duration::from_secs(5));
                    return Err(e.into());
                }
            };
            let prefix_s = inst.prefix.display().to_string();
            let quit = instance_cmd(&bin, &inst.conf, &["quit", "-p", &prefix_s, "-t", "5"]);
            started.push((proc, quit));
            // The Admin API of the first instance must answer before the next one starts.
            if i == plan.admin_instance()
                && inst.conf.get("admin_listen").map(String::as_str) != Some("off")
            {
                let status = format!("{admin_uri}/status");
                let (p, _) = started.last_mut().expect("just pushed");
                let ok = poll_until(settings.start_timeout, Duration::from_millis(250), || {
                    if !p.is_running() {
                        return Some(false);
                    }
                    matches!(
                        ctx.load_host.http_status(&status, Duration::from_secs(2)),
                        Ok(200)
                    )
                    .then_some(true)
                });
                if ok != Some(true) {
                    crate::signals::check()?;
                    let msg = format!(
                        "kong ({}) did not become ready at {status}:\n{}\n{}",
                        inst.name,
                        tail(host.as_ref(), &log),
                        tail(host.as_ref(), &inst.error_log())
                    );
                    procs.kongs = started;
                    let _ = procs.stop(Duration::from_secs(5));
                    return Err(Error::Lab(msg));
                }
                if plan.mode != Mode::Dbless && !import {
                    admin::apply(
                        ctx.load_host.as_ref(),
                        &admin_uri,
                        &admin::requests(&plan.document),
                        Duration::from_secs(30),
                    )?;
                }
            }
        }
        // Entities reach the proxy asynchronously (router rebuilds, CP→DP sync): wait until every
        // route the load may use is routed on every instance that proxies (each data plane in
        // hybrid mode, so that one that failed to start or to sync is an error here, with its
        // own log, not a silently smaller lab). An instance whose process ended fails at once.
        let paths = ctx.entities.route_paths();
        for (idx, inst) in plan.instances.iter().enumerate() {
            let Some(port) = inst
                .conf
                .get("proxy_listen")
                .and_then(|l| listen_ports(l).first().copied())
            else {
                continue;
            };
            let uri = format!("http://{}:{port}", host.address());
            let rebuild = router_rebuild_interval(&inst.conf);
            let (proc, _) = &mut started[idx];
            let ready = wait_routed(
                ctx.load_host.as_ref(),
                &uri,
                &paths,
                settings.start_timeout,
                rebuild,
                &mut || proc.is_running(),
            );
            if let Err(url) = ready {
                crate::signals::check()?;
                let msg = format!(
                    "kong ({}) never routed {url}:\n{}\n{}",
                    inst.name,
                    tail(
                        host.as_ref(),
                        &ctx.prefix.join(format!("{}.out", inst.name))
                    ),
                    tail(host.as_ref(), &inst.error_log())
                );
                procs.kongs = started;
                let _ = procs.stop(Duration::from_secs(5));
                return Err(Error::Lab(msg));
            }
        }
        // Traffic instance first, so `pid()` is the process serving the load; the control plane
        // is stopped last.
        let traffic = plan.traffic_instance();
        let mut ordered: Vec<(Box<dyn Proc>, Cmd)> = Vec::new();
        let mut rest = Vec::new();
        for (i, p) in started.into_iter().enumerate() {
            if i == traffic {
                ordered.insert(0, p);
            } else {
                rest.push(p);
            }
        }
        rest.reverse();
        ordered.extend(rest);
        procs.kongs = ordered;

        let traffic_inst = &plan.instances[traffic];
        let proxy_port = ctx.proxy_port;
        let proxy_uri = format!("http://{}:{proxy_port}", host.address());
        Ok(RunningGateway {
            kind: crate::role::gateway::GatewayKind::Kong,
            instance: ctx.instance.to_string(),
            proc: Box::new(procs),
            server_pid_file: Some(traffic_inst.prefix.join("pids/nginx.pid")),
            proxy_uri,
            admin_uri: Some(admin_uri),
            // The traffic instance's `status_listen`, when its planned conf sets one (Kong's own
            // default, kong/templates/kong_defaults.lua, is 127.0.0.1:8007 since 3.6: a
            // listener the lab did not choose, so it is not offered to actions).
            status_uri: traffic_inst
                .conf
                .get("status_listen")
                .filter(|v| v.as_str() != "off")
                .and_then(|v| listen_ports(v).first().copied())
                .map(|port| format!("http://{}:{port}", host.address())),
            // `kong reload` rebuilds the prefix from `-c` over the running node's `.kong_env`
            // and sends nginx a HUP (Kong's kong/cmd/reload.lua); without `-c` a DB-less node
            // would lose its declarative_config.
            reload: Some(instance_cmd(
                &bin,
                &traffic_inst.conf,
                &[
                    "reload",
                    "-c",
                    &traffic_inst.conf_path.display().to_string(),
                    "-p",
                    &traffic_inst.prefix.display().to_string(),
                ],
            )),
            error_log: traffic_inst.error_log(),
            other_logs: plan
                .instances
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != traffic)
                .map(|(_, inst)| (inst.name.clone(), inst.error_log()))
                .collect(),
            config_files,
            version_detail: format!("{} ({})", bin.detail, plan.mode.as_str()),
            host,
            lua_profiler_dir: Some(
                traffic_inst
                    .prefix
                    .join(crate::role::lua_profiler::CONTROL_DIR),
            ),
        })
    }
}
