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
    /// What a start waits for before the load (`readiness`).
    pub readiness: Readiness,
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
    /// `INSERT … SELECT … generate_series` into the lab's PostgreSQL before Kong starts, as
    /// Kong's spec/04-perf/01-rps/06-core_entities_crud_spec.lua seeded its 100,000 entities
    /// per kind ([`super::sql_seed`]; Kong 3.0–3.9).
    Sql,
}

/// What a Kong start waits for before the load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every route of the case is routed on every proxying instance, twice across a router
    /// rebuild (the default; for loads that go through the proxy).
    Routes,
    /// The Admin API answers `/status`: for loads that go to the Admin API (Kong's CRUD
    /// scenario), where probing 100,000 routes would only delay the start.
    Admin,
}

/// Admin API requests from which [`Seed::Auto`] imports instead: each request is an HTTP round
/// trip and a database write of its own, while an import writes everything in one process.
pub(crate) const BULK_REQUESTS: usize = 1000;

impl Seed {
    /// The seeding a start with `requests` Admin API requests' worth of entities uses:
    /// [`Seed::Auto`] becomes [`Seed::Admin`] or [`Seed::Import`]; the others stay.
    pub fn resolve(self, requests: usize) -> Seed {
        match self {
            Seed::Auto if requests >= BULK_REQUESTS => Seed::Import,
            Seed::Auto => Seed::Admin,
            other => other,
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
            start_timeout: Duration::from_secs(120),
            use_daily_image: false,
            base_version: None,
            per_case: true,
            seed: Seed::Auto,
            readiness: Readiness::Routes,
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
                        Some("sql") => Seed::Sql,
                        _ => return Err(bad(k, "\"auto\", \"admin\", \"import\" or \"sql\"")),
                    }
                }
                "readiness" => {
                    s.readiness = match v.as_str() {
                        Some("routes") => Readiness::Routes,
                        Some("admin") => Readiness::Admin,
                        _ => return Err(bad(k, "\"routes\" or \"admin\"")),
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
                         service_path, start_timeout, use_daily_image, base_version, lifecycle, seed, \
                         readiness)"
                    )));
                }
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::role::gateway::GatewayAdapter;
    use crate::role::gateway::kong::test_support::*;
    use crate::role::gateway::kong::*;

    #[test]
    fn settings_are_checked() {
        let err = KongSettings::from_table(&settings(r#"mode = "cluster""#)).unwrap_err();
        assert!(
            err.to_string().contains("traditional, dbless or hybrid"),
            "{err}"
        );
        let err = KongSettings::from_table(&settings("data_planes = 0")).unwrap_err();
        assert!(err.to_string().contains("data_planes"), "{err}");
        let err = KongSettings::from_table(&settings("colour = 1")).unwrap_err();
        assert!(
            err.to_string().contains("unknown kong setting `colour`"),
            "{err}"
        );
        let s = KongSettings::from_table(&settings(r#"service_path = """#)).unwrap();
        assert_eq!((s.mode, s.service_path.as_str()), (Mode::Traditional, ""));
    }

    #[test]
    fn large_cases_are_seeded_in_bulk_and_repeats_share_one_kong() {
        use crate::role::gateway::kong::Seed;
        let s = |t: &str| KongSettings::from_table(&settings(t)).unwrap();
        assert_eq!(s("").seed, Seed::Auto);
        assert_eq!(Seed::Auto.resolve(BULK_REQUESTS - 1), Seed::Admin);
        assert_eq!(Seed::Auto.resolve(BULK_REQUESTS), Seed::Import);
        assert_eq!(s("seed = \"import\"").seed.resolve(1), Seed::Import);
        assert_eq!(s("seed = \"admin\"").seed.resolve(1_000_000), Seed::Admin);
        assert_eq!(s("seed = \"sql\"").seed.resolve(1), Seed::Sql);
        assert!(KongSettings::from_table(&settings("seed = \"csv\"")).is_err());
        assert_eq!(s("").readiness, Readiness::Routes);
        assert_eq!(s("readiness = \"admin\"").readiness, Readiness::Admin);
        assert!(KongSettings::from_table(&settings("readiness = \"never\"")).is_err());
        // 100 services x 100 routes with key-auth and 1000 consumers: far past the threshold.
        let big = entities(100, 100, vec![], 1000);
        let doc = declarative::document(&big, &["http://127.0.0.1:1".into()], "/test").unwrap();
        assert_eq!(
            s("").seed.resolve(admin::requests(&doc).len()),
            Seed::Import
        );
        // Kong keeps one instance for a case's repeats unless the case asks for one per run.
        let a = KongAdapter::new();
        assert!(a.keeps_for_repeats(&toml::Table::new()));
        assert!(!a.keeps_for_repeats(&settings("lifecycle = \"per-run\"")));
        assert!(KongSettings::from_table(&settings("lifecycle = \"sometimes\"")).is_err());
    }
}
