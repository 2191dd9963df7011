//! Admin API requests that create a case's entities in a database-backed Kong.
//!
//! Kong's framework seeded PostgreSQL directly from the controller with Kong's own Lua DAO
//! (reference §6.6), which tied it to Lua and to a reachable database. perflab creates the same
//! entities through Kong's Admin API instead — the interface every Kong version keeps
//! compatible — deriving the requests from the declarative document of [`super::declarative`]
//! so every mode gets identical entities. A refused request reports Kong's own error body.

use std::time::Duration;

use serde_json::{Value, json};

use crate::host::{Cmd, Host};
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

/// The requests that create the entities of a declarative document, in dependency order:
/// `POST /services`, `POST /services/{name}/routes`, `POST /plugins` (scoped to the service),
/// `POST /consumers`, `POST /consumers/{username}/key-auth`.
pub fn requests(doc: &Value) -> Vec<AdminRequest> {
    let mut v = Vec::new();
    for svc in items(doc, "services") {
        let name = str_field(svc, "name");
        v.push(post(
            "/services".into(),
            json!({ "name": name, "url": str_field(svc, "url") }),
        ));
        for route in items(svc, "routes") {
            v.push(post(format!("/services/{name}/routes"), route.clone()));
        }
        for plugin in items(svc, "plugins") {
            let mut body = plugin.clone();
            body["service"] = json!({ "name": name });
            v.push(post("/plugins".into(), body));
        }
    }
    for consumer in items(doc, "consumers") {
        let username = str_field(consumer, "username");
        v.push(post("/consumers".into(), json!({ "username": username })));
        for cred in items(consumer, "keyauth_credentials") {
            v.push(post(
                format!("/consumers/{username}/key-auth"),
                cred.clone(),
            ));
        }
    }
    v
}

/// Sends `reqs` in order to the Admin API at `admin_uri` (`http://host:port`). The first
/// answer outside 2xx stops with an error carrying the request and Kong's response body.
pub fn apply(admin_uri: &str, reqs: &[AdminRequest], timeout: Duration) -> Result<()> {
    let base = admin_uri.trim_end_matches('/');
    for r in reqs {
        let url = format!("{base}{}", r.path);
        let body = serde_json::to_vec(&r.body).expect("a JSON value serialises");
        let resp = crate::http::request(r.method, &url, Some(("application/json", &body)), timeout)
            .map_err(|e| Error::Lab(format!("kong admin API {} {url}: {e}", r.method)))?;
        check_answer(r, &url, resp.status, &resp.body)?;
    }
    Ok(())
}

/// [`apply`] from `host` with `curl`: the lab's load host reaches the Admin API over the lab's
/// network, where perflab's own machine may not (the terraform driver's machines, whose
/// internal addresses only the other machines route).
pub fn apply_from(
    host: &dyn Host,
    admin_uri: &str,
    reqs: &[AdminRequest],
    timeout: Duration,
) -> Result<()> {
    let base = admin_uri.trim_end_matches('/');
    for r in reqs {
        let url = format!("{base}{}", r.path);
        let out = host.run(
            &Cmd::new("curl")
                .args([
                    "-sS",
                    "-X",
                    r.method,
                    "-H",
                    "Content-Type: application/json",
                ])
                .arg("--data-binary")
                .arg(r.body.to_string())
                .args(["-w", "\n%{http_code}", "--max-time"])
                .arg(timeout.as_secs().max(1).to_string())
                .arg(&url),
            timeout + Duration::from_secs(10),
        )?;
        let text = out.stdout_text();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        let status = code.trim().parse::<u16>().map_err(|_| {
            Error::Lab(format!(
                "kong admin API {} {url} from host {}: {}",
                r.method,
                host.name(),
                out.combined_text().trim()
            ))
        })?;
        check_answer(r, &url, status, body.as_bytes())?;
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
