//! DB-less declarative configuration rendered from a case's [`Entities`].
//!
//! Kong's framework never implemented DB-less mode (reference §8: "DB-less mode is currently
//! not implemented"). perflab writes Kong's declarative format (`_format_version` of the Kong
//! major, top-level `upstreams` with nested `targets`, `services` with nested `routes` and
//! `plugins`, `consumers` with nested credentials and `plugins`, global `plugins`) as JSON: JSON is a subset of YAML and Kong's `declarative_config`
//! loader reads both, so no YAML writer is needed. The Admin API requests of
//! [`super::admin`] are derived from this same document, so the traditional, hybrid and DB-less
//! modes configure exactly the same entities.
//!
//! Names: service `s{S}`, its routes `s{S}r{R}` matching the path `/s{S}r{R}` (and `/` too when
//! the case has a single route), consumers `consumer-{N}` with key-auth key `key-{N}` (other
//! credentials: [`crate::entities::Credential`]), upstreams `u{U}` whose targets are the upstream
//! server's `host:port`s. Plugins are nested where they apply (service, route, consumer) or
//! top-level when global.

use serde_json::{Value, json};

use crate::entities::{Entities, Plugin, Scope};
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

/// A plugin as a Kong entity body: name and config (its scope is where it is nested).
fn plugin_body(p: &Plugin) -> Value {
    json!({ "name": p.name, "config": Value::Object(p.config.clone()) })
}

/// The plugins of `scope` that apply to the entity `name`.
fn plugins_on(entities: &Entities, scope: Scope, name: &str) -> Vec<Value> {
    entities
        .plugins
        .iter()
        .filter(|p| p.scope == scope && p.applies_to(name))
        .map(plugin_body)
        .collect()
}

/// The `host:port` of an upstream URI (`http://127.0.0.1:18088` → `127.0.0.1:18088`).
fn host_port(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The declarative document for `entities`: service `s` points at
/// `upstream_uris[(s-1) % len] + service_path` (round-robin over the upstream's ports), or at
/// Kong upstream `u{(s-1) % upstreams + 1}` when the case has upstreams, whose target `t` is
/// `upstream_uris[(t-1) % len]`'s `host:port`.
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
        let base = if entities.upstreams > 0 {
            format!("http://u{}", (s - 1) % entities.upstreams + 1)
        } else {
            upstream_uris[(s as usize - 1) % upstream_uris.len()]
                .trim_end_matches('/')
                .to_string()
        };
        let mut routes = Vec::new();
        for r in 1..=entities.routes_per_service {
            let name = format!("s{s}r{r}");
            let mut paths = vec![format!("/{name}")];
            if entities.single_route() {
                paths.push("/".to_string());
            }
            let plugins = plugins_on(entities, Scope::Route, &name);
            routes.push(json!({ "name": name, "paths": paths, "plugins": plugins }));
        }
        let name = format!("s{s}");
        services.push(json!({
            "plugins": plugins_on(entities, Scope::Service, &name),
            "name": name,
            "url": format!("{base}{service_path}"),
            "routes": routes,
        }));
    }
    let consumers: Vec<Value> = (1..=entities.consumers)
        .map(|n| {
            let username = format!("consumer-{n}");
            let mut c = json!({
                "plugins": plugins_on(entities, Scope::Consumer, &username),
                "username": username,
            });
            for cred in &entities.credentials {
                c[cred.declarative_key()] = json!([cred.body(n)]);
            }
            c
        })
        .collect();
    let upstreams: Vec<Value> = (1..=entities.upstreams)
        .map(|u| {
            let targets: Vec<Value> = (1..=entities.targets_per_upstream)
                .map(|t| {
                    let uri = &upstream_uris[(t as usize - 1) % upstream_uris.len()];
                    let mut target = json!({ "id": target_id(u, t), "target": host_port(uri) });
                    if entities.target_weight_step > 0 {
                        target["weight"] = json!(t * entities.target_weight_step);
                    }
                    target
                })
                .collect();
            json!({ "name": format!("u{u}"), "targets": targets })
        })
        .collect();
    let globals: Vec<Value> = entities
        .plugins
        .iter()
        .filter(|p| p.scope == Scope::Global)
        .map(plugin_body)
        .collect();
    Ok(json!({
        "_format_version": FORMAT_VERSION,
        "_transform": true,
        "upstreams": upstreams,
        "services": services,
        "consumers": consumers,
        "plugins": globals,
    }))
}

/// The id of target `t` of upstream `u{u}`: fixed, so that a case can address one target in an
/// action during load (`PATCH /upstreams/u1/targets/<id>`, as Kong's balancer-rebuild scenario
/// did by address) although its address (the upstream server's port) changes from run to run.
/// Kong accepts a given `id` on creation, through the Admin API and in declarative files alike.
pub fn target_id(upstream: u32, target: u32) -> String {
    format!("00000000-0000-4000-8000-{upstream:06}{target:06}")
}

/// The document as pretty JSON text, ready for `declarative_config`.
pub fn render(doc: &Value) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect("a JSON value serialises");
    s.push('\n');
    s
}
