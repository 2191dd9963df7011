//! DB-less declarative configuration rendered from a case's [`Entities`].
//!
//! Kong's framework never implemented DB-less mode (reference §8: "DB-less mode is currently
//! not implemented"). perflab writes Kong's declarative format (`_format_version: "3.0"`,
//! top-level `services` with nested `routes` and `plugins`, `consumers` with nested
//! `keyauth_credentials`) as JSON: JSON is a subset of YAML and Kong's `declarative_config`
//! loader reads both, so no YAML writer is needed. The Admin API requests of
//! [`super::admin`] are derived from this same document, so the traditional, hybrid and DB-less
//! modes configure exactly the same entities.
//!
//! Names: service `s{S}`, its routes `s{S}r{R}` matching the path `/s{S}r{R}` (and `/` too when
//! the case has a single route), consumers `consumer-{N}` with key-auth key `key-{N}`.

use serde_json::{Value, json};

use crate::entities::Entities;
use crate::{Error, Result};

/// The declarative format version perflab writes unless the Kong that reads it is known
/// (Kong 3.x).
pub const FORMAT_VERSION: &str = "3.0";

/// The `_format_version` Kong `major` reads: "3.0" for 3.x and later, "2.1" for 2.x, "1.1"
/// before (2.x refuses "3.0"). The accepted values are the `one_of` of `_format_version` in
/// kong/db/schema/others/declarative_config.lua (3.9: "1.1", "2.1", "3.0").
pub fn format_version(major: u32) -> &'static str {
    match major {
        0 | 1 => "1.1",
        2 => "2.1",
        _ => FORMAT_VERSION,
    }
}

/// The upstream path services point at unless the case says otherwise: Kong's framework's
/// services were `upstream_uri .. "/test"`, and suites' upstreams serve `location = /test`.
pub const DEFAULT_SERVICE_PATH: &str = "/test";

/// The declarative document for `entities`: service `s` points at
/// `upstream_uris[(s-1) % len] + service_path` (round-robin over the upstream's ports).
pub fn document(
    entities: &Entities,
    upstream_uris: &[String],
    service_path: &str,
) -> Result<Value> {
    if upstream_uris.is_empty() && entities.services > 0 {
        return Err(Error::Lab(
            "kong: no upstream URI to point the services at".to_string(),
        ));
    }
    let mut services = Vec::new();
    for s in 1..=entities.services {
        let base = upstream_uris[(s as usize - 1) % upstream_uris.len()].trim_end_matches('/');
        let mut routes = Vec::new();
        for r in 1..=entities.routes_per_service {
            let mut paths = vec![format!("/s{s}r{r}")];
            if entities.single_route() {
                paths.push("/".to_string());
            }
            routes.push(json!({ "name": format!("s{s}r{r}"), "paths": paths }));
        }
        let plugins: Vec<Value> = entities
            .plugins
            .iter()
            .map(|p| json!({ "name": p.name, "config": Value::Object(p.config.clone()) }))
            .collect();
        services.push(json!({
            "name": format!("s{s}"),
            "url": format!("{base}{service_path}"),
            "routes": routes,
            "plugins": plugins,
        }));
    }
    let consumers: Vec<Value> = (1..=entities.consumers)
        .map(|n| {
            json!({
                "username": format!("consumer-{n}"),
                "keyauth_credentials": [{ "key": format!("key-{n}") }],
            })
        })
        .collect();
    Ok(json!({
        "_format_version": FORMAT_VERSION,
        "_transform": true,
        "services": services,
        "consumers": consumers,
    }))
}

/// The document as pretty JSON text, ready for `declarative_config`.
pub fn render(doc: &Value) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect("a JSON value serialises");
    s.push('\n');
    s
}
