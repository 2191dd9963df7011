//! `seed = "sql"`: a case's entities written straight into Kong's PostgreSQL tables with one
//! `INSERT … SELECT … FROM generate_series(…)` per kind, before Kong starts.
//!
//! Kong's own large scenario, spec/04-perf/01-rps/06-core_entities_crud_spec.lua, seeded its
//! 100,000 entities per kind this way (`gen_entities`: services, routes, consumers, upstreams,
//! targets, plugins), because one Admin API request per entity takes hours and even a
//! declarative import of 600,000 entities takes long. perflab writes the same tables with the
//! same names the other seeding paths use ([`super::declarative`]: services `sS`, routes
//! `sSrR` on path `/sSrR`, consumers `consumer-N` with key `key-N`, upstreams `uU` with the
//! fixed target ids of [`super::declarative::target_id`]), so a case can switch seeding
//! without changing its load script.
//!
//! The columns are those of Kong 3.0 to 3.9 (kong/db/migrations/core/000_base.lua and the
//! `ALTER TABLE`s of 016_280_to_300.lua to 024_380_to_390.lua, and
//! kong/plugins/key-auth/migrations/): [`check_version`] refuses other Kong versions rather than
//! write tables it has not checked (tests/kong.rs seeds a recorded Kong 3.9.3 database). Rows
//! carry every value Kong's entity schemas default that a
//! NULL would change (timeouts, retries, protocols, route flags), the default workspace's id,
//! and the `cache_key` columns Kong computes (`DAO:cache_key`, kong/db/dao/init.lua; the
//! targets' as migration 016_280_to_300 writes them; `keyauth_credentials` has none). JSON
//! records (`config`, `healthchecks`) are written as given or `{}`: Kong fills a record's
//! missing fields with their defaults when it reads a row (`adjust_field_for_context`,
//! kong/db/schema/init.lua), as it does for Kong's own
//! `'{}'::JSONB` plugin configs in the CRUD spec. Ids are derived from the names
//! (`md5(…)::uuid`), which works on every PostgreSQL version (`gen_random_uuid()` needs 13).
//!
//! Not supported (refused with a message naming `seed = "import"`): plugins with `only`, and
//! credentials other than key-auth.

use crate::entities::{Credential, Entities, Plugin, Scope};
use crate::role::postgres::quote_literal;
use crate::{Error, Result};

/// The default workspace's id, as every row's `ws_id`.
const WS: &str = "(SELECT id FROM workspaces WHERE name = 'default')";

/// The newest Kong 3 minor whose tables [`statements`] were checked against.
pub const NEWEST_CHECKED_MINOR: u32 = 9;

/// Refuses a Kong version whose schema the SQL was not checked against (only 3.0–3.9 were).
pub fn check_version(version: &str) -> Result<()> {
    match super::meta::major_minor(version) {
        Some((3, minor)) if minor <= NEWEST_CHECKED_MINOR => Ok(()),
        _ => Err(Error::Usage(format!(
            "seed = \"sql\" writes the tables of Kong 3.0 to 3.{NEWEST_CHECKED_MINOR} \
             (checked against Kong's migrations); Kong {version} was not checked: use \
             seed = \"import\" (kong config db_import) or \"admin\""
        ))),
    }
}

/// Refuses entities that SQL seeding does not write.
pub fn check_entities(entities: &Entities) -> Result<()> {
    if let Some(p) = entities.plugins.iter().find(|p| !p.only.is_empty()) {
        return Err(Error::Usage(format!(
            "seed = \"sql\" puts a plugin on every entity of its scope; plugin {} has `only`: \
             use seed = \"import\"",
            p.name
        )));
    }
    if entities.consumers > 0
        && let Some(c) = entities
            .credentials
            .iter()
            .find(|c| **c != Credential::KeyAuth)
    {
        return Err(Error::Usage(format!(
            "seed = \"sql\" writes key-auth credentials only, not {}: use seed = \"import\"",
            c.plugin()
        )));
    }
    Ok(())
}

/// A deterministic UUID from an SQL text expression.
fn uuid_of(kind: &str, name_sql: &str) -> String {
    format!("md5('perflab-{kind}-' || {name_sql})::uuid")
}

/// `scheme`, `host` and `port` of an upstream URI (`http://127.0.0.1:18088`).
fn split_uri(uri: &str) -> (String, String, u16) {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("http", uri));
    let host_port = rest.split('/').next().unwrap_or(rest);
    let default_port = if scheme == "https" { 443 } else { 80 };
    match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            scheme.to_string(),
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().unwrap_or(default_port),
        ),
        _ => (scheme.to_string(), host_port.to_string(), default_port),
    }
}

/// An SQL array literal of text values.
fn text_array(values: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = values.into_iter().map(|v| quote_literal(&v)).collect();
    format!("ARRAY[{}]::text[]", items.join(", "))
}

/// The `((i - 1) % n) + 1`-th element of an SQL array for the 1-based series value `i`.
fn round_robin(array: &str, i: &str, n: usize) -> String {
    format!("({array})[(({i} - 1) % {n}) + 1]")
}

/// The statements that write `entities` (in order: services, routes, consumers, credentials,
/// upstreams, targets, plugins), with services pointing at `upstream_uris` + `service_path` as
/// [`super::declarative::document`] does.
pub fn statements(
    entities: &Entities,
    upstream_uris: &[String],
    service_path: &str,
) -> Result<Vec<String>> {
    check_entities(entities)?;
    if upstream_uris.is_empty() && entities.services > 0 {
        return Err(Error::Lab(
            "kong: no upstream URI to point the services at".to_string(),
        ));
    }
    let now = "CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'";
    let path = if service_path.is_empty() {
        "NULL".to_string()
    } else {
        quote_literal(service_path)
    };
    let parts: Vec<(String, String, u16)> = upstream_uris.iter().map(|u| split_uri(u)).collect();
    let n = parts.len().max(1);
    let (protocol, host, port) = if entities.upstreams > 0 {
        (
            "'http'".to_string(),
            format!("'u' || (((s - 1) % {}) + 1)", entities.upstreams),
            "80".to_string(),
        )
    } else {
        (
            round_robin(&text_array(parts.iter().map(|p| p.0.clone())), "s", n),
            round_robin(&text_array(parts.iter().map(|p| p.1.clone())), "s", n),
            round_robin(
                &format!(
                    "ARRAY[{}]",
                    parts
                        .iter()
                        .map(|p| p.2.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "s",
                n,
            ),
        )
    };
    let service_id = uuid_of("service", "s");
    let mut out = vec![format!(
        "INSERT INTO services (id, name, host, port, protocol, path, retries, connect_timeout, \
         write_timeout, read_timeout, enabled, created_at, updated_at, ws_id) \
         SELECT {service_id}, 's' || s, {host}, {port}, {protocol}, {path}, 5, 60000, 60000, \
         60000, true, {now}, {now}, {WS} FROM generate_series(1, {}) s",
        entities.services
    )];
    let route = "'s' || s || 'r' || r";
    let paths = if entities.single_route() {
        format!("ARRAY['/' || {route}, '/']")
    } else {
        format!("ARRAY['/' || {route}]")
    };
    out.push(format!(
        "INSERT INTO routes (id, name, service_id, protocols, paths, regex_priority, strip_path, \
         preserve_host, https_redirect_status_code, path_handling, request_buffering, \
         response_buffering, created_at, updated_at, ws_id) \
         SELECT {}, {route}, {service_id}, ARRAY['http', 'https'], {paths}, 0, true, false, 426, \
         'v0', true, true, {now}, {now}, {WS} \
         FROM generate_series(1, {}) s, generate_series(1, {}) r",
        uuid_of("route", route),
        entities.services,
        entities.routes_per_service
    ));
    let consumer_id = uuid_of("consumer", "c");
    out.push(format!(
        "INSERT INTO consumers (id, username, created_at, ws_id) \
         SELECT {consumer_id}, 'consumer-' || c, {now}, {WS} FROM generate_series(1, {}) c",
        entities.consumers
    ));
    if entities.consumers > 0 && entities.credentials.contains(&Credential::KeyAuth) {
        out.push(format!(
            "INSERT INTO keyauth_credentials (id, consumer_id, key, created_at, ws_id) \
             SELECT {}, {consumer_id}, 'key-' || c, {now}, {WS} FROM generate_series(1, {}) c",
            uuid_of("keyauth", "c"),
            entities.consumers
        ));
    }
    let upstream_id = uuid_of("upstream", "u");
    out.push(format!(
        "INSERT INTO upstreams (id, name, algorithm, slots, hash_on, hash_fallback, \
         hash_on_cookie_path, healthchecks, created_at, ws_id) \
         SELECT {upstream_id}, 'u' || u, 'round-robin', 10000, 'none', 'none', '/', '{{}}'::jsonb, \
         {now}, {WS} FROM generate_series(1, {}) u",
        entities.upstreams
    ));
    let target = round_robin(
        &text_array(
            upstream_uris
                .iter()
                .map(|u| super::declarative::host_port(u).to_string()),
        ),
        "t",
        n,
    );
    let weight = if entities.target_weight_step > 0 {
        format!("t * {}", entities.target_weight_step)
    } else {
        "100".to_string()
    };
    out.push(format!(
        "INSERT INTO targets (id, upstream_id, target, weight, created_at, ws_id, cache_key) \
         SELECT ('00000000-0000-4000-8000-' || lpad(u::text, 6, '0') || lpad(t::text, 6, '0'))::uuid, \
         {upstream_id}, {target}, {weight}, CURRENT_TIMESTAMP(3) AT TIME ZONE 'UTC', {WS}, \
         'targets:' || {upstream_id} || ':' || {target} || '::::' || {WS} \
         FROM generate_series(1, {}) u, generate_series(1, {}) t",
        entities.upstreams, entities.targets_per_upstream
    ));
    for (i, p) in entities.plugins.iter().enumerate() {
        out.push(plugin_statement(i, p, entities));
    }
    Ok(out)
}

/// The statement for plugin `p` (the case's `i`-th) on every entity of its scope.
fn plugin_statement(i: usize, p: &Plugin, entities: &Entities) -> String {
    let config = quote_literal(&serde_json::Value::Object(p.config.clone()).to_string());
    let name = quote_literal(&p.name);
    // The owner columns (route, service, consumer), the series and the id's name part.
    let (route, service, consumer, from, key) = match p.scope {
        Scope::Global => (
            "NULL".to_string(),
            "NULL".to_string(),
            "NULL".to_string(),
            "generate_series(1, 1) g".to_string(),
            "'global'".to_string(),
        ),
        Scope::Service => (
            "NULL".to_string(),
            uuid_of("service", "s"),
            "NULL".to_string(),
            format!("generate_series(1, {}) s", entities.services),
            "'s' || s".to_string(),
        ),
        Scope::Route => (
            uuid_of("route", "'s' || s || 'r' || r"),
            "NULL".to_string(),
            "NULL".to_string(),
            format!(
                "generate_series(1, {}) s, generate_series(1, {}) r",
                entities.services, entities.routes_per_service
            ),
            "'s' || s || 'r' || r".to_string(),
        ),
        Scope::Consumer => (
            "NULL".to_string(),
            "NULL".to_string(),
            uuid_of("consumer", "c"),
            format!("generate_series(1, {}) c", entities.consumers),
            "'c' || c".to_string(),
        ),
    };
    let text = |col: &str| format!("coalesce(({col})::text, '')");
    format!(
        "INSERT INTO plugins (id, name, route_id, service_id, consumer_id, config, enabled, \
         protocols, created_at, ws_id, cache_key) \
         SELECT {}, {name}, {route}, {service}, {consumer}, {config}::jsonb, true, \
         ARRAY['grpc', 'grpcs', 'http', 'https'], CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC', {WS}, \
         'plugins:' || {name} || ':' || {} || ':' || {} || ':' || {} || '::' || {WS} FROM {from}",
        uuid_of(&format!("plugin{i}"), &key),
        text(&route),
        text(&service),
        text(&consumer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_checked_kong_versions_are_seeded() {
        assert!(check_version("3.0.0").is_ok());
        assert!(check_version("3.9.3").is_ok());
        for v in ["3.10.0", "2.8.1", "4.0.0", "nonsense"] {
            let e = check_version(v).unwrap_err().to_string();
            assert!(e.contains("seed = \"import\""), "{v}: {e}");
        }
    }

    #[test]
    fn uris_split_into_scheme_host_and_port() {
        assert_eq!(
            split_uri("http://127.0.0.1:18088"),
            ("http".into(), "127.0.0.1".into(), 18088)
        );
        assert_eq!(
            split_uri("https://example.test/x"),
            ("https".into(), "example.test".into(), 443)
        );
        assert_eq!(
            split_uri("http://[::1]:80"),
            ("http".into(), "::1".into(), 80)
        );
    }

    #[test]
    fn unsupported_entities_are_refused_naming_the_other_seeds() {
        let mut e = Entities {
            consumers: 2,
            credentials: vec![Credential::Jwt],
            ..Entities::default()
        };
        let err = statements(&e, &["http://127.0.0.1:1".into()], "/test").unwrap_err();
        assert!(err.to_string().contains("jwt"), "{err}");
        e.credentials = vec![Credential::KeyAuth];
        e.plugins = vec![Plugin {
            name: "key-auth".into(),
            config: Default::default(),
            scope: Scope::Service,
            only: vec!["s1".into()],
        }];
        let err = statements(&e, &["http://127.0.0.1:1".into()], "/test").unwrap_err();
        assert!(err.to_string().contains("only"), "{err}");
    }
}
