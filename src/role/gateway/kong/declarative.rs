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
pub(crate) fn host_port(uri: &str) -> &str {
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

#[cfg(test)]
mod tests {
    use crate::entities::{Entities, Plugin};

    use crate::role::gateway::kong::test_support::*;
    use crate::role::gateway::kong::*;

    #[test]
    fn declarative_document_follows_kongs_format() {
        let key_auth = Plugin {
            name: "key-auth".into(),
            config: serde_json::Map::new(),
            ..plugin_defaults()
        };
        let e = entities(3, 2, vec![key_auth], 2);
        let uris = vec![
            "http://10.0.0.2:18088".to_string(),
            "http://10.0.0.2:18089/".to_string(),
        ];
        let doc = declarative::document(&e, &uris, "/test").unwrap();
        // Kong's declarative schema: metadata keys start with `_`, entities are top-level arrays,
        // nested entities (routes and plugins in a service, credentials in a consumer) name their
        // parent implicitly.
        assert_eq!(doc["_format_version"], "3.0");
        assert_eq!(doc["_transform"], true);
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "_format_version",
                "_transform",
                "consumers",
                "plugins",
                "services",
                "upstreams"
            ]
        );
        let services = doc["services"].as_array().unwrap();
        assert_eq!(services.len(), 3);
        assert_eq!(services[0]["name"], "s1");
        assert_eq!(services[0]["url"], "http://10.0.0.2:18088/test");
        assert_eq!(
            services[1]["url"], "http://10.0.0.2:18089/test",
            "round-robin, slash trimmed"
        );
        assert_eq!(services[2]["url"], "http://10.0.0.2:18088/test");
        assert_eq!(services[1]["routes"][1]["name"], "s2r2");
        assert_eq!(
            services[1]["routes"][1]["paths"],
            serde_json::json!(["/s2r2"])
        );
        assert_eq!(services[0]["plugins"][0]["name"], "key-auth");
        assert_eq!(services[0]["plugins"][0]["config"], serde_json::json!({}));
        assert_eq!(
            doc["consumers"][1],
            serde_json::json!({"username": "consumer-2", "keyauth_credentials": [{"key": "key-2"}], "plugins": []})
        );
        // Every credential type, consumer plugins, and upstreams with weighted targets.
        let rich: Entities = toml::from_str(
            r#"
            consumers = 1
            credentials = ["key-auth", "basic-auth", "hmac-auth", "jwt"]
            upstreams = 2
            targets_per_upstream = 3
            target_weight_step = 5
            plugins = [{ name = "rate-limiting", scope = "consumer", config = { second = 5 } },
                       { name = "prometheus", scope = "global" }]
            "#,
        )
        .unwrap();
        rich.check().unwrap();
        let d = declarative::document(&rich, &uris, "/test").unwrap();
        let c = &d["consumers"][0];
        assert_eq!(c["basicauth_credentials"][0]["password"], "password-1");
        assert_eq!(c["hmacauth_credentials"][0]["secret"], "secret-1");
        assert_eq!(c["jwt_secrets"][0]["key"], "jwt-1");
        assert_eq!(c["plugins"][0]["name"], "rate-limiting");
        assert_eq!(d["plugins"][0]["name"], "prometheus");
        assert_eq!(d["services"][0]["url"], "http://u1/test");
        assert_eq!(d["upstreams"][1]["name"], "u2");
        assert_eq!(
            d["upstreams"][0]["targets"],
            serde_json::json!([
                {"id": "00000000-0000-4000-8000-000001000001", "target": "10.0.0.2:18088", "weight": 5},
                {"id": "00000000-0000-4000-8000-000001000002", "target": "10.0.0.2:18089", "weight": 10},
                {"id": "00000000-0000-4000-8000-000001000003", "target": "10.0.0.2:18088", "weight": 15},
            ])
        );
        let paths: Vec<String> = admin::requests(&d)
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        for want in [
            "POST /upstreams",
            "POST /upstreams/u2/targets",
            "POST /consumers/consumer-1/basic-auth",
            "POST /consumers/consumer-1/hmac-auth",
            "POST /consumers/consumer-1/jwt",
            "POST /consumers/consumer-1/key-auth",
        ] {
            assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
        }
        assert_eq!(
            paths.last().unwrap(),
            "POST /plugins",
            "global plugins last"
        );
        // `only` must name entities the case creates; a global plugin takes none.
        let bad: Entities =
            toml::from_str(r#"plugins = [{ name = "x", scope = "route", only = ["s9r9"] }]"#)
                .unwrap();
        assert!(bad.check().unwrap_err().contains("s9r9"));
        let bad: Entities =
            toml::from_str(r#"plugins = [{ name = "x", scope = "global", only = ["s1"] }]"#)
                .unwrap();
        assert!(bad.check().is_err());
        // Every route path of the case is routed by exactly one route.
        let mut paths: Vec<String> = services
            .iter()
            .flat_map(|s| s["routes"].as_array().unwrap().iter())
            .flat_map(|r| r["paths"].as_array().unwrap().iter())
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        paths.sort();
        let mut expected = e.route_paths();
        expected.sort();
        assert_eq!(paths, expected);
        // The rendered file is JSON (which Kong's YAML loader reads too).
        let text = declarative::render(&doc);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);

        // A single route also matches `/`.
        let single = declarative::document(&entities(1, 1, vec![], 0), &uris[..1], "").unwrap();
        assert_eq!(
            single["services"][0]["routes"][0]["paths"],
            serde_json::json!(["/s1r1", "/"])
        );
        assert_eq!(single["services"][0]["url"], "http://10.0.0.2:18088");
        assert!(declarative::document(&e, &[], "/test").is_err());
    }
}
