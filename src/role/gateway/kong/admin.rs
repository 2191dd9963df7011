//! Admin API requests that create a case's entities in a database-backed Kong.
//!
//! Kong's framework seeded PostgreSQL directly from the controller with Kong's own Lua DAO
//! (reference §6.6), which tied it to Lua and to a reachable database. perflab creates the same
//! entities through Kong's Admin API instead — the interface every Kong version keeps
//! compatible — deriving the requests from the declarative document of [`super::declarative`]
//! so every mode gets identical entities. A refused request reports Kong's own error body.

use std::time::Duration;

use serde_json::{Value, json};

use crate::host::{Host, HttpCall};
use crate::{Error, Result};

/// One Admin API call.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminRequest {
    /// HTTP method.
    pub method: &'static str,
    /// Path on the Admin API (`/services`, `/services/s1/routes`, …).
    pub path: String,
    /// JSON body.
    pub body: Value,
}

fn post(path: String, body: Value) -> AdminRequest {
    AdminRequest {
        method: "POST",
        path,
        body,
    }
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `POST /plugins` for each plugin nested in `entity`, scoped to it by `field` (`service`,
/// `route`, `consumer`) with `key` naming it (`name`, `username`).
fn scoped_plugins(v: &mut Vec<AdminRequest>, entity: &Value, field: &str, key: &str) {
    for plugin in items(entity, "plugins") {
        let mut body = plugin.clone();
        body[field] = json!({ key: str_field(entity, key) });
        v.push(post("/plugins".into(), body));
    }
}

/// The credential collections of the declarative format and their Admin API paths under
/// `/consumers/{username}/`.
const CREDENTIALS: &[(&str, &str)] = &[
    ("keyauth_credentials", "key-auth"),
    ("basicauth_credentials", "basic-auth"),
    ("hmacauth_credentials", "hmac-auth"),
    ("jwt_secrets", "jwt"),
];

/// The requests that create the entities of a declarative document, in dependency order:
/// `POST /upstreams` and `/upstreams/{name}/targets`, `POST /services`,
/// `/services/{name}/routes`, `POST /plugins` scoped to the service or route, `POST /consumers`,
/// their credentials (`/consumers/{username}/key-auth`, `basic-auth`, `hmac-auth`, `jwt`) and
/// plugins, and last the global plugins (`POST /plugins` without a scope).
pub fn requests(doc: &Value) -> Vec<AdminRequest> {
    let mut v = Vec::new();
    for upstream in items(doc, "upstreams") {
        let name = str_field(upstream, "name");
        v.push(post("/upstreams".into(), json!({ "name": name })));
        for target in items(upstream, "targets") {
            v.push(post(format!("/upstreams/{name}/targets"), target.clone()));
        }
    }
    for svc in items(doc, "services") {
        let name = str_field(svc, "name");
        v.push(post(
            "/services".into(),
            json!({ "name": name, "url": str_field(svc, "url") }),
        ));
        for route in items(svc, "routes") {
            let mut body = route.clone();
            if let Some(o) = body.as_object_mut() {
                o.remove("plugins");
            }
            v.push(post(format!("/services/{name}/routes"), body));
        }
        scoped_plugins(&mut v, svc, "service", "name");
        for route in items(svc, "routes") {
            scoped_plugins(&mut v, route, "route", "name");
        }
    }
    for consumer in items(doc, "consumers") {
        let username = str_field(consumer, "username");
        v.push(post("/consumers".into(), json!({ "username": username })));
        for (key, path) in CREDENTIALS {
            for cred in items(consumer, key) {
                v.push(post(format!("/consumers/{username}/{path}"), cred.clone()));
            }
        }
        scoped_plugins(&mut v, consumer, "consumer", "username");
    }
    for plugin in items(doc, "plugins") {
        v.push(post("/plugins".into(), plugin.clone()));
    }
    v
}

/// Sends `reqs` in order to the Admin API at `admin_uri` (`http://host:port`), **from `from`**:
/// a host of the lab (the load host), since the Admin API's address is the gateway host's lab
/// address, which the controller may not reach (a terraform lab's internal plane). The first
/// answer outside 2xx stops with an error carrying the request and Kong's response body.
pub fn apply(
    from: &dyn Host,
    admin_uri: &str,
    reqs: &[AdminRequest],
    timeout: Duration,
) -> Result<()> {
    let base = admin_uri.trim_end_matches('/');
    for r in reqs {
        let url = format!("{base}{}", r.path);
        let body = serde_json::to_vec(&r.body).expect("a JSON value serialises");
        let resp = from
            .http_request(&HttpCall::json(r.method, &url, Some(body)), timeout)
            .map_err(|e| Error::Lab(format!("kong admin API {} {url}: {e}", r.method)))?;
        check_answer(r, &url, resp.status, &resp.body)?;
    }
    Ok(())
}

fn check_answer(r: &AdminRequest, url: &str, status: u16, body: &[u8]) -> Result<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    Err(Error::Lab(format!(
        "kong admin API refused {} {url} {} with HTTP {status}: {}",
        r.method,
        r.body,
        String::from_utf8_lossy(body).trim()
    )))
}

#[cfg(test)]
mod tests {
    use crate::entities::Plugin;

    use crate::role::gateway::kong::test_support::*;
    use crate::role::gateway::kong::*;

    #[test]
    fn admin_requests_create_the_same_entities() {
        let rl = Plugin {
            name: "rate-limiting".into(),
            config: serde_json::json!({"second": 1000, "policy": "local"})
                .as_object()
                .unwrap()
                .clone(),
            ..plugin_defaults()
        };
        let e = entities(2, 2, vec![rl], 2);
        let doc = declarative::document(&e, &["http://127.0.0.1:18088".into()], "/test").unwrap();
        let reqs = admin::requests(&doc);
        let lines: Vec<String> = reqs
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.body))
            .collect();
        assert_eq!(
            lines,
            [
                r#"POST /services {"name":"s1","url":"http://127.0.0.1:18088/test"}"#,
                r#"POST /services/s1/routes {"name":"s1r1","paths":["/s1r1"]}"#,
                r#"POST /services/s1/routes {"name":"s1r2","paths":["/s1r2"]}"#,
                r#"POST /plugins {"config":{"policy":"local","second":1000},"name":"rate-limiting","service":{"name":"s1"}}"#,
                r#"POST /services {"name":"s2","url":"http://127.0.0.1:18088/test"}"#,
                r#"POST /services/s2/routes {"name":"s2r1","paths":["/s2r1"]}"#,
                r#"POST /services/s2/routes {"name":"s2r2","paths":["/s2r2"]}"#,
                r#"POST /plugins {"config":{"policy":"local","second":1000},"name":"rate-limiting","service":{"name":"s2"}}"#,
                r#"POST /consumers {"username":"consumer-1"}"#,
                r#"POST /consumers/consumer-1/key-auth {"key":"key-1"}"#,
                r#"POST /consumers {"username":"consumer-2"}"#,
                r#"POST /consumers/consumer-2/key-auth {"key":"key-2"}"#,
            ]
        );
    }
}
