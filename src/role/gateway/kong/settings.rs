//! A case's Kong settings (`[case.gateway_settings]` of a `gateway = "kong"` case): the mode,
//! Kong properties, hybrid data planes, how entities are seeded and how long Kong may take.

use std::str::FromStr;
use std::time::Duration;

use super::{declarative, meta};
use crate::{Error, Result};

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
