//! Helpers of the Kong adapter's unit tests: settings tables, a gateway context on a local
//! host, environments and entities.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::entities::{Entities, Plugin};
use crate::host::{Host, LocalHost};
use crate::role::gateway::GatewayContext;
use crate::role::gateway::kong::plan::{StartPlan, plan};

/// A path in the repository.
pub(crate) fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A local host on `dir`.
pub(crate) fn local(dir: &Path) -> Arc<dyn Host> {
    Arc::new(LocalHost::new("local", dir).unwrap())
}

/// A TOML table from its text.
pub(crate) fn settings(text: &str) -> toml::Table {
    text.parse().unwrap()
}

/// A start context on `host` without the lab's PostgreSQL.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ctx<'a>(
    host: &Arc<dyn Host>,
    prefix: &Path,
    uris: &'a [String],
    entities: &'a Entities,
    version: &'a str,
    version_dir: Option<PathBuf>,
    settings: &'a toml::Table,
    ports: (u16, u16),
) -> GatewayContext<'a> {
    GatewayContext {
        host: host.clone(),
        load_host: host.clone(),
        postgres: None,
        instance: "default",
        prefix: prefix.to_path_buf(),
        upstream_uris: uris,
        entities,
        version,
        version_dir,
        proxy_port: ports.0,
        admin_port: ports.1,
        cpus: None,
        workers: 2,
        settings,
        install_packages: false,
    }
}

/// An environment from pairs.
pub(crate) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A plugin's fields other than name and config, at their defaults (every service).
pub(crate) fn plugin_defaults() -> Plugin {
    Plugin {
        name: String::new(),
        config: serde_json::Map::new(),
        scope: Default::default(),
        only: Vec::new(),
    }
}

/// `services` × `routes` with `plugins` and `consumers`.
pub(crate) fn entities(
    services: u32,
    routes: u32,
    plugins: Vec<Plugin>,
    consumers: u32,
) -> Entities {
    Entities {
        services,
        routes_per_service: routes,
        plugins,
        consumers,
        ..Entities::default()
    }
}

/// The plan of a one-route case with settings `s` and environment `env`, on ports 9000/9001.
pub(crate) fn one_route_plan(tmp: &Path, s: &toml::Table, env: &[(String, String)]) -> StartPlan {
    let host = local(tmp);
    let uris = vec!["http://127.0.0.1:18088".to_string()];
    let e = entities(1, 1, vec![], 0);
    plan(
        &ctx(&host, tmp, &uris, &e, "current", None, s, (9000, 9001)),
        env,
    )
    .unwrap()
}
