//! The Kong adapter: everything checkable without Kong (configuration precedence, declarative
//! documents, Admin API requests, cluster certificates, version parsing, the case files, the
//! errors a missing Kong gives), plus a live test that starts real Kong in every mode wherever
//! a Kong is found (`PERFLAB_KONG_PREFIX`, or `kong` on PATH; see `live_kong`;
//! `PERFLAB_KONG_LIVE_MODES=dbless,hybrid/3` runs some modes only). Programs used: nginx (as an
//! HTTP server that refuses a POST, and as the live test's upstream) and PostgreSQL (live test).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use perflab::during::ActionKind;
use perflab::entities::{Entities, Plugin};
use perflab::host::{Cmd, Host, LocalHost};
use perflab::role::gateway::kong::{
    KongAdapter, KongLocation, KongSettings, Mode, VersionSpec, admin, certs, conf, declarative,
    meta, plan, resolve_binary,
};
use perflab::role::gateway::{GatewayAdapter, GatewayContext};

use crate::util::{PERFLAB, free_port, live_kong, load_lock, repo_path, skip};

fn local(dir: &Path) -> Arc<dyn Host> {
    Arc::new(LocalHost::new("local", dir).unwrap())
}

fn settings(text: &str) -> toml::Table {
    text.parse().unwrap()
}

#[allow(clippy::too_many_arguments)]
fn ctx<'a>(
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
        database_host: None,
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

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- kong.conf

#[test]
fn conf_precedence_is_defaults_then_case_then_kong_env() {
    let mut defaults = conf::KongConf::new();
    defaults.insert("nginx_worker_processes".into(), "2".into());
    defaults.insert("proxy_access_log".into(), "off".into());
    defaults.insert("admin_listen".into(), "127.0.0.1:8001".into());
    let case = settings(
        r#"nginx_worker_processes = "1"
        mem_cache_size = "256m"
        untrusted_lua = false
        plugins = ["bundled", "my-plugin"]
        "#,
    );
    let merged = conf::merge(
        defaults,
        Some(&case),
        env(&[
            ("KONG_MEM_CACHE_SIZE", "1g"),
            ("KONG_NGINX_HTTP_KEEPALIVE_REQUESTS", "10000"),
            ("PATH", "/usr/bin"),
            ("KONG_", "ignored"),
            ("XKONG_FOO", "ignored"),
            // Kong's dev environment exports KONG_PREFIX; listeners are per instance too.
            ("KONG_PREFIX", "/usr/local/kong"),
            ("KONG_ADMIN_LISTEN", "0.0.0.0:8001"),
        ]),
    )
    .unwrap();
    assert!(!merged.contains_key("prefix"), "KONG_PREFIX is ignored");
    assert_eq!(merged["nginx_worker_processes"], "1", "case beats defaults");
    assert_eq!(merged["mem_cache_size"], "1g", "KONG_* beats the case");
    assert_eq!(merged["nginx_http_keepalive_requests"], "10000");
    assert_eq!(merged["untrusted_lua"], "off");
    assert_eq!(merged["plugins"], "bundled, my-plugin");
    assert_eq!(merged["admin_listen"], "127.0.0.1:8001");
    assert!(!merged.contains_key("path") && !merged.contains_key(""));
    assert!(!merged.contains_key("foo"));

    let text = conf::render(&merged);
    assert!(text.contains("\nmem_cache_size = 1g\n"), "{text}");
    assert_eq!(conf::parse(&text), merged);

    let bad = settings("nginx = { a = 1 }");
    let err = conf::merge(conf::KongConf::new(), Some(&bad), env(&[])).unwrap_err();
    assert!(err.to_string().contains("kong_configs.nginx"), "{err}");
}

// ---------------------------------------------------------------- plans per mode

/// A plugin's fields other than name and config, at their defaults (every service).
fn plugin_defaults() -> Plugin {
    Plugin {
        name: String::new(),
        config: serde_json::Map::new(),
        scope: Default::default(),
        only: Vec::new(),
    }
}

fn entities(services: u32, routes: u32, plugins: Vec<Plugin>, consumers: u32) -> Entities {
    Entities {
        services,
        routes_per_service: routes,
        plugins,
        consumers,
        ..Entities::default()
    }
}

#[test]
fn traditional_plan_uses_own_postgres_and_perflab_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let host = local(tmp.path());
    let uris = vec!["http://127.0.0.1:18088".to_string()];
    let e = entities(1, 1, vec![], 0);
    let s = settings(
        r#"mode = "traditional"
        kong_configs = { nginx_worker_processes = "1" }"#,
    );
    let c = ctx(
        &host,
        tmp.path(),
        &uris,
        &e,
        "current",
        None,
        &s,
        (9000, 9001),
    );
    let p = plan(&c, &env(&[("KONG_LOG_LEVEL", "debug")])).unwrap();
    assert_eq!(p.mode, Mode::Traditional);
    assert_eq!(p.instances.len(), 1);
    let k = &p.instances[0].conf;
    let prefix = tmp.path().join("kong").display().to_string();
    assert_eq!(k["prefix"], prefix);
    assert_eq!(k["proxy_listen"], "127.0.0.1:9000");
    assert_eq!(k["admin_listen"], "127.0.0.1:9001");
    assert_eq!(k["nginx_worker_processes"], "1");
    assert_eq!(k["nginx_daemon"], "off");
    assert_eq!(k["proxy_access_log"], "off");
    assert_eq!(k["proxy_error_log"], format!("{prefix}/logs/error.log"));
    assert_eq!(k["database"], "postgres");
    assert_eq!(k["pg_host"], "127.0.0.1");
    assert_eq!(
        k["pg_port"], "9002",
        "the allocator's first port after admin"
    );
    assert_eq!(k["pg_user"], "kong");
    assert_eq!(k["pg_database"], "kong_tests");
    // Kong's own database always has a generated password (scram-sha-256 in pg_hba.conf).
    let pw = p.postgres.as_ref().unwrap().password.clone().unwrap();
    assert_eq!(pw.len(), 32);
    assert_eq!(k["pg_password"], pw);
    assert_eq!(k["log_level"], "debug");
    assert_eq!(p.postgres.as_ref().unwrap().port, 9002);
    assert_eq!(
        p.instances[0].error_log(),
        tmp.path().join("kong/logs/error.log")
    );

    // A pg_host from the case (or KONG_PG_HOST) means an external database: none is started.
    let s2 = settings(r#"kong_configs = { pg_host = "10.0.0.5" }"#);
    let c2 = ctx(
        &host,
        tmp.path(),
        &uris,
        &e,
        "current",
        None,
        &s2,
        (9000, 9001),
    );
    assert!(plan(&c2, &[]).unwrap().postgres.is_none());
    let p3 = plan(&c, &env(&[("KONG_PG_HOST", "db.lab")])).unwrap();
    assert!(p3.postgres.is_none());
    assert_eq!(p3.instances[0].conf["pg_host"], "db.lab");
}

#[test]
fn dbless_plan_points_at_the_declarative_file() {
    let tmp = tempfile::tempdir().unwrap();
    let host = local(tmp.path());
    let uris = vec!["http://127.0.0.1:18088".to_string()];
    let e = entities(2, 3, vec![], 0);
    let s = settings(r#"mode = "dbless""#);
    let c = ctx(
        &host,
        tmp.path(),
        &uris,
        &e,
        "current",
        None,
        &s,
        (9000, 9001),
    );
    let p = plan(&c, &[]).unwrap();
    assert!(p.postgres.is_none());
    let k = &p.instances[0].conf;
    assert_eq!(k["database"], "off");
    assert_eq!(
        k["declarative_config"],
        tmp.path().join("kong.json").display().to_string()
    );
    assert!(!k.contains_key("pg_host"));
    assert_eq!(k["nginx_worker_processes"], "2", "ctx.workers");
}

#[test]
fn hybrid_plan_has_a_control_plane_and_data_planes() {
    let tmp = tempfile::tempdir().unwrap();
    let host = local(tmp.path());
    let uris = vec!["http://127.0.0.1:18088".to_string()];
    let e = entities(1, 1, vec![], 0);
    let s = settings(
        r#"mode = "hybrid"
        data_planes = 3"#,
    );
    let c = ctx(
        &host,
        tmp.path(),
        &uris,
        &e,
        "current",
        None,
        &s,
        (9000, 9001),
    );
    let p = plan(&c, &env(&[("KONG_NGINX_WORKER_PROCESSES", "3")])).unwrap();
    let names: Vec<&str> = p.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["cp", "dp1", "dp2", "dp3"]);
    assert_eq!(p.traffic_instance(), 1);
    let cp = &p.instances[0].conf;
    assert_eq!(cp["role"], "control_plane");
    assert_eq!(cp["proxy_listen"], "off");
    assert_eq!(cp["admin_listen"], "127.0.0.1:9001");
    assert_eq!(cp["cluster_listen"], "127.0.0.1:9002");
    assert_eq!(cp["cluster_telemetry_listen"], "127.0.0.1:9003");
    assert_eq!(cp["database"], "postgres");
    let (cert, key) = p.cluster_cert.clone().unwrap();
    for (i, dp) in p.instances[1..].iter().enumerate() {
        let d = &dp.conf;
        assert_eq!(d["role"], "data_plane");
        assert_eq!(d["database"], "off");
        assert_eq!(d["admin_listen"], "off");
        // dp1 on the lab's proxy port; the others after the control plane's admin (9001),
        // cluster (9002), telemetry (9003) and PostgreSQL (9004) ports, never on one of them.
        let want = [9000, 9005, 9006][i];
        assert_eq!(d["proxy_listen"], format!("127.0.0.1:{want}"));
        assert_eq!(d["cluster_control_plane"], "127.0.0.1:9002");
        assert_eq!(d["cluster_telemetry_endpoint"], "127.0.0.1:9003");
        assert_eq!(d["cluster_cert"], cert.display().to_string());
        assert_eq!(d["cluster_cert_key"], key.display().to_string());
        assert_eq!(
            d["nginx_worker_processes"], "3",
            "KONG_* applies to every instance"
        );
        assert!(!d.contains_key("pg_host"));
    }
    let mut ports: Vec<u16> = perflab::role::gateway::kong::planned_ports(&p)
        .into_iter()
        .map(|(port, _)| port)
        .collect();
    ports.sort();
    assert_eq!(ports, [9000, 9001, 9002, 9003, 9004, 9005, 9006]);
    // The session picks exactly that many consecutive free ports from the proxy port.
    let a = KongAdapter::new();
    assert_eq!(a.ports_needed(&s), 7);
    assert_eq!(a.ports_needed(&settings(r#"mode = "hybrid""#)), 5);
    assert_eq!(a.ports_needed(&settings(r#"mode = "traditional""#)), 3);
    assert_eq!(a.ports_needed(&settings(r#"mode = "dbless""#)), 2);
    // A case that puts PostgreSQL on a data plane's port is refused before anything starts.
    let clash = settings(
        r#"mode = "hybrid"
        data_planes = 2
        pg_port = 9004"#,
    );
    let c = ctx(
        &host,
        tmp.path(),
        &uris,
        &e,
        "current",
        None,
        &clash,
        (9000, 9001),
    );
    let err = plan(&c, &env(&[])).unwrap_err();
    assert!(
        err.to_string().contains("port 9004 is planned twice"),
        "{err}"
    );
}

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

// ---------------------------------------------------------------- declarative + admin

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
        toml::from_str(r#"plugins = [{ name = "x", scope = "route", only = ["s9r9"] }]"#).unwrap();
    assert!(bad.check().unwrap_err().contains("s9r9"));
    let bad: Entities =
        toml::from_str(r#"plugins = [{ name = "x", scope = "global", only = ["s1"] }]"#).unwrap();
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

/// Starts nginx serving `server_body` on a free loopback port; returns the proc and the port.
fn start_nginx(
    host: &Arc<dyn Host>,
    dir: &Path,
    server_body: &str,
) -> Option<(Box<dyn perflab::host::Proc>, u16)> {
    let nginx = host.which("nginx")?;
    let port = free_port();
    let d = dir.display();
    let cfg = format!(
        "daemon off; pid {d}/nginx.pid; error_log {d}/error.log; events {{}}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; \
         fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
         server {{ listen 127.0.0.1:{port}; {server_body} }} }}\n"
    );
    host.write_file(&dir.join("nginx.conf"), cfg.as_bytes())
        .unwrap();
    let cmd = Cmd::new(nginx).args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")]);
    let proc = host.spawn(&cmd, &dir.join("nginx.out")).unwrap();
    let up = perflab::host::poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "nginx did not start");
    Some((proc, port))
}

#[test]
fn admin_apply_reports_the_servers_error_body() {
    let tmp = tempfile::tempdir().unwrap();
    let host = local(tmp.path());
    std::fs::write(tmp.path().join("services"), "static").unwrap();
    // nginx refuses a POST to a static file with 405 and its own error page.
    let Some((mut proc, port)) = start_nginx(
        &host,
        tmp.path(),
        &format!("location / {{ root {}; }}", tmp.path().display()),
    ) else {
        skip("the Admin API error test", "nginx is not installed");
        return;
    };
    let doc = declarative::document(
        &entities(1, 1, vec![], 0),
        &["http://127.0.0.1:1".into()],
        "/test",
    )
    .unwrap();
    let err = admin::apply(
        host.as_ref(),
        &format!("http://127.0.0.1:{port}"),
        &admin::requests(&doc),
        Duration::from_secs(5),
    )
    .unwrap_err()
    .to_string();
    proc.stop(Duration::from_secs(2)).unwrap();
    assert!(err.contains("POST"), "{err}");
    assert!(err.contains("/services"), "{err}");
    assert!(err.contains("HTTP 405"), "{err}");
    assert!(
        err.contains("405 Not Allowed"),
        "nginx's body is included: {err}"
    );
    // Nothing listens: the error names the URL.
    let err = admin::apply(
        host.as_ref(),
        &format!("http://127.0.0.1:{port}"),
        &admin::requests(&doc),
        Duration::from_secs(2),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}/services")), "{err}");
}

// ---------------------------------------------------------------- certificates

#[test]
fn cluster_certificate_is_self_signed_kong_clustering_p384() {
    use x509_parser::pem::parse_x509_pem;
    let pair = certs::generate(certs::DEFAULT_DAYS).unwrap();
    assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (_, pem) = parse_x509_pem(pair.cert_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, [certs::CLUSTER_CN]);
    assert_eq!(cert.subject(), cert.issuer(), "self-signed");
    cert.verify_signature(None).expect("signed by its own key");
    assert!(cert.validity().is_valid());
    let secs =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) as u64;
    assert_eq!(secs, 1095 * 86_400);
    // EC key on secp384r1 (OID 1.3.132.0.34), like `kong hybrid gen_cert`.
    let spki = cert.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    assert_eq!(curve.as_deref(), Some("1.3.132.0.34"));
    // The key file belongs to the certificate.
    let key = rcgen::KeyPair::from_pem(&pair.key_pem).unwrap();
    use rcgen::PublicKeyData;
    assert_eq!(key.subject_public_key_info(), spki.raw);
    // Every call makes a new key.
    let other = certs::generate(1).unwrap();
    assert_ne!(other.key_pem, pair.key_pem);
}

// ---------------------------------------------------------------- versions

#[test]
fn meta_lua_gives_the_base_version() {
    let text = std::fs::read_to_string(repo_path("tests/fixtures/kong/meta.lua")).unwrap();
    let v = meta::parse_meta_lua(&text).unwrap();
    assert_eq!(
        (v.major, v.minor, v.patch, v.suffix.clone()),
        (3, 10, 0, None),
        "the commented-out suffix is ignored"
    );
    assert_eq!(v.to_string(), "3.10.0");
    assert_eq!(v.base_version(), "3.10.0");

    let alpha = text.replace("--suffix = \"-rc.1\"", "suffix = \"-alpha.2\"");
    let v = meta::parse_meta_lua(&alpha).unwrap();
    assert_eq!(v.to_string(), "3.10.0-alpha.2");
    assert_eq!(v.base_version(), "3.10.0", "-alpha is stripped");
    let rc = text.replace("--suffix = \"-rc.1\"", "suffix = \"-rc.1\",");
    assert_eq!(
        meta::parse_meta_lua(&rc).unwrap().base_version(),
        "3.10.0-rc.1"
    );

    // The 0.x shape with `pre_release`.
    let old = "local version = setmetatable({\n  major = 0,\n  minor = 8,\n  patch = 3,\n  pre_release = \"alpha\"\n}, {})\n";
    assert_eq!(
        meta::parse_meta_lua(old).unwrap().to_string(),
        "0.8.3-alpha"
    );
    assert!(meta::parse_meta_lua("return {}").is_err());
    assert!(meta::parse_meta_lua("setmetatable({ major = x, minor = 1, patch = 0 }, {})").is_err());
}

#[test]
fn version_labels_and_kong_version_output() {
    assert_eq!(VersionSpec::parse("current").unwrap(), VersionSpec::Current);
    assert_eq!(
        VersionSpec::parse("image:kong:3.9.1").unwrap(),
        VersionSpec::Current
    );
    assert_eq!(
        VersionSpec::parse("git:origin/master~10").unwrap(),
        VersionSpec::Git("origin/master~10".into())
    );
    for r in ["3.9.1", "2.8.1.1", "3.0.0-rc.1"] {
        assert_eq!(
            VersionSpec::parse(r).unwrap(),
            VersionSpec::Release(r.into())
        );
    }
    assert!(VersionSpec::parse("latest").is_err());

    assert_eq!(
        meta::parse_version_output("3.9.1\n").as_deref(),
        Some("3.9.1")
    );
    assert_eq!(
        meta::parse_version_output("Kong 3.4.2").as_deref(),
        Some("3.4.2")
    );
    assert_eq!(
        meta::parse_version_output("Kong Enterprise 3.4.3.12\n").as_deref(),
        Some("3.4.3.12")
    );
    assert_eq!(meta::parse_version_output("no version"), None);
    assert!(meta::release_matches("3.9.1", "3.9.1"));
    assert!(meta::release_matches("3.4.3", "3.4.3.12"));
    assert!(!meta::release_matches("3.9.1", "3.9.10"));
    assert!(!meta::release_matches("3.9.1", "3.8.0"));
}

#[test]
fn a_missing_kong_is_a_missing_tool_pointing_at_the_docs() {
    let tmp = tempfile::tempdir().unwrap();
    let host = local(tmp.path());
    // git: a worktree without bin/kong.
    let wt = tmp.path().join("wt");
    std::fs::create_dir_all(wt.join("kong")).unwrap();
    std::fs::copy(
        repo_path("tests/fixtures/kong/meta.lua"),
        wt.join("kong/meta.lua"),
    )
    .unwrap();
    let err = resolve_binary(
        host.as_ref(),
        "git:v3.10.0",
        Some(&wt),
        false,
        &KongLocation::path(),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), perflab::error::EXIT_MISSING_TOOL, "{err}");
    assert!(err.to_string().contains("wt/bin/kong"), "{err}");
    assert!(err.to_string().contains("docs/kong.md"), "{err}");
    let err = resolve_binary(
        host.as_ref(),
        "git:main",
        None,
        false,
        &KongLocation::path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no worktree"), "{err}");

    if host.which("kong").is_some() {
        skip("the missing-kong start check", "kong is installed here");
        return;
    }
    let uris = vec!["http://127.0.0.1:18088".to_string()];
    let e = entities(1, 1, vec![], 0);
    let s = settings(r#"mode = "dbless""#);
    let c = ctx(
        &host,
        &tmp.path().join("gw"),
        &uris,
        &e,
        "current",
        None,
        &s,
        (9000, 9001),
    );
    let err = KongAdapter::with_env(vec![]).start(&c).err().unwrap();
    assert_eq!(err.exit_code(), perflab::error::EXIT_MISSING_TOOL, "{err}");
    assert!(err.to_string().contains("docs/kong.md"), "{err}");
    let err =
        resolve_binary(host.as_ref(), "3.9.1", None, false, &KongLocation::path()).unwrap_err();
    assert_eq!(err.exit_code(), perflab::error::EXIT_MISSING_TOOL, "{err}");
}

// ---------------------------------------------------------------- case files

/// The request paths (with query) of an nginx `combined` access log.
fn logged_paths(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            l.split('"')
                .nth(1)?
                .split_whitespace()
                .nth(1)
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn kong_scenarios_parse_expand_and_their_scripts_drive_wrk() {
    let suite = perflab::suite::load_suite(repo_path("suites/kong").to_str().unwrap()).unwrap();
    let names: Vec<&str> = suite.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "balancer-1-target",
            "balancer-10-targets",
            "balancer-no-upstream",
            "balancer-rebuild",
            "baseline",
            "hybrid-key-auth",
            "hybrid-many-routes",
            "hybrid-single-route",
            "key-auth",
            "many-routes",
            "plugin-iterator-global-and-irrelevant",
            "plugin-iterator-global-only",
            "prometheus-off-scrape",
            "prometheus-scrape",
            "rate-limiting",
            "single-route",
            "upstream-lock",
        ]
    );
    let tmp = tempfile::tempdir().unwrap();
    let host = local(tmp.path());
    let up_dir = tmp.path().join("nginx");
    std::fs::create_dir_all(&up_dir).unwrap();
    let access = up_dir.join("access.log");
    let served = start_nginx(
        &host,
        &up_dir,
        &format!(
            "access_log {}; location / {{ return 200; }}",
            access.display()
        ),
    );
    let wrk = host.which("wrk");
    let ten_ports: Vec<String> = (0..10)
        .map(|i| format!("http://127.0.0.1:{}", 18088 + i))
        .collect();
    for case in &suite.cases {
        let name = case.name.as_str();
        // Kong's defaults, and Kong's upstream location (the upstream-lock scenario ran 60 s).
        let seconds = if name == "upstream-lock" { 60.0 } else { 30.0 };
        assert_eq!(
            (
                case.load.connections,
                case.load.threads,
                case.load.duration,
                case.repeats
            ),
            (100, 5, seconds, 3),
            "{name}"
        );
        assert!(case.upstream.config.contains("location = /test"), "{name}");
        if case.gateway == perflab::role::gateway::GatewayKind::Baseline {
            assert_eq!(case.load.path, "/test");
            continue;
        }
        assert_eq!(
            case.gateway,
            perflab::role::gateway::GatewayKind::Kong,
            "{name}"
        );
        let s = KongSettings::from_table(&case.gateway_settings).unwrap();
        let e = &case.entities;
        e.check().unwrap();
        let uris = &ten_ports[..case.upstream.ports.unwrap_or(1) as usize];
        let doc = declarative::document(e, uris, &s.service_path).unwrap();
        let reqs = admin::requests(&doc);
        let routes = e.route_paths();
        match name {
            "single-route" | "hybrid-single-route" | "many-routes" | "hybrid-many-routes" => {
                assert_eq!(routes.len(), 100, "{name}")
            }
            "key-auth" | "hybrid-key-auth" => {
                assert_eq!(routes.len(), 100);
                assert_eq!(doc["consumers"].as_array().unwrap().len(), 100);
                assert_eq!(doc["services"][9]["plugins"][0]["name"], "key-auth");
                let creds = reqs
                    .iter()
                    .filter(|r| r.path.ends_with("/key-auth"))
                    .count();
                assert_eq!(creds, 100, "{name}");
            }
            "balancer-no-upstream" => assert!(doc["upstreams"].as_array().unwrap().is_empty()),
            "balancer-1-target" => {
                assert_eq!(doc["services"][0]["url"], "http://u1/test");
                assert_eq!(doc["upstreams"][0]["targets"].as_array().unwrap().len(), 1);
            }
            "balancer-10-targets" => {
                let t = doc["upstreams"][0]["targets"].as_array().unwrap();
                let weights: Vec<u64> = t.iter().map(|t| t["weight"].as_u64().unwrap()).collect();
                assert_eq!(weights, (1..=10).map(|i| i * 5).collect::<Vec<_>>());
                assert_eq!(t[9]["target"], "127.0.0.1:18097", "target t on port t");
            }
            "plugin-iterator-global-only" => {
                assert_eq!(doc["plugins"][0]["name"], "request-termination");
                assert_eq!(reqs.iter().filter(|r| r.path == "/plugins").count(), 1);
            }
            "plugin-iterator-global-and-irrelevant" => {
                assert_eq!(doc["plugins"].as_array().unwrap().len(), 1);
                assert!(doc["services"][0]["plugins"].as_array().unwrap().is_empty());
                assert_eq!(doc["services"][1]["plugins"].as_array().unwrap().len(), 1);
                assert_eq!(
                    doc["services"][1]["routes"][0]["plugins"]
                        .as_array()
                        .unwrap()
                        .len(),
                    1
                );
                assert!(
                    doc["services"][0]["routes"][0]["plugins"]
                        .as_array()
                        .unwrap()
                        .is_empty()
                );
                let scoped: Vec<&str> = reqs
                    .iter()
                    .filter(|r| r.path == "/plugins")
                    .map(|r| {
                        if r.body.get("route").is_some() {
                            "route"
                        } else if r.body.get("service").is_some() {
                            "service"
                        } else {
                            "global"
                        }
                    })
                    .collect();
                assert_eq!(scoped, ["service", "route", "global"]);
            }
            "rate-limiting" => assert_eq!(e.plugins[0].name, "rate-limiting"),
            "balancer-rebuild" => {
                // The actions PATCH targets the case creates, by their fixed ids, every 3 s.
                let ids: Vec<&str> = doc["upstreams"][0]["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_str().unwrap())
                    .collect();
                let patched: Vec<&str> = case
                    .during
                    .iter()
                    .map(|a| a.path.as_deref().unwrap())
                    .collect();
                assert_eq!(
                    patched,
                    [
                        format!("/upstreams/u1/targets/{}", ids[2]),
                        format!("/upstreams/u1/targets/{}", ids[7])
                    ]
                );
                assert!(reqs.iter().any(|r| r.body["id"] == ids[2]), "{name}");
                assert_eq!(
                    case.during
                        .iter()
                        .map(|a| (a.at, a.every, a.method.as_deref()))
                        .collect::<Vec<_>>(),
                    [
                        (3.0, Some(6.0), Some("PATCH")),
                        (6.0, Some(6.0), Some("PATCH"))
                    ]
                );
            }
            "prometheus-scrape" | "prometheus-off-scrape" => {
                assert_eq!(routes.len(), 2000, "{name}");
                let globals = doc["plugins"].as_array().unwrap();
                if name == "prometheus-scrape" {
                    assert_eq!(globals[0]["name"], "prometheus");
                } else {
                    assert!(globals.is_empty());
                }
                assert!(s.seed.imports(reqs.len()), "{name}: seeded by import");
                let a = &case.during[0];
                assert_eq!(
                    (a.action, a.path.as_deref(), a.at, a.every),
                    (ActionKind::Scrape, Some("/metrics"), 9.0, Some(10.0))
                );
            }
            "upstream-lock" => {
                assert_eq!(s.mode, Mode::Hybrid);
                let ups = doc["upstreams"].as_array().unwrap();
                assert_eq!(ups.len(), 1000);
                assert!(
                    ups.iter()
                        .all(|u| u["targets"].as_array().unwrap().len() == 4)
                );
                assert_eq!(doc["services"][999]["url"], "http://u1000/test");
                assert!(routes.iter().any(|r| r == "/s1r1"));
                for a in &case.during {
                    assert_eq!(
                        (a.method.as_deref(), a.path.as_deref()),
                        (Some("PATCH"), Some("/routes/s1r1"))
                    );
                }
            }
            other => panic!("a case this test does not know: {other}"),
        }
        if s.mode == Mode::Hybrid {
            assert_eq!(s.data_planes, 1, "{name}");
        }
        // The load goes to routes the case creates: its path, or every path its script picks.
        let Some(script) = &case.load.script else {
            let route = case.load.path.split('?').next().unwrap();
            assert!(routes.iter().any(|p| p == route), "{name}: {route}");
            continue;
        };
        let (Some(wrk), Some((_, port))) = (wrk.as_ref(), served.as_ref()) else {
            panic!("wrk and nginx are needed to run {name}'s script (scripts/install-deps.sh)");
        };
        std::fs::write(&access, b"").unwrap();
        let script_path = tmp.path().join(format!("{name}.lua"));
        std::fs::write(&script_path, script).unwrap();
        let out = host
            .run(
                &Cmd::new(wrk).args([
                    "-t2",
                    "-c4",
                    "-d1s",
                    "-s",
                    script_path.to_str().unwrap(),
                    &format!("http://127.0.0.1:{port}"),
                ]),
                Duration::from_secs(30),
            )
            .unwrap();
        assert!(out.success(), "{name}: {}", out.combined_text());
        // nginx writes its access log on each request; reopen is not needed for a fresh file.
        let paths = logged_paths(&std::fs::read_to_string(&access).unwrap());
        assert!(paths.len() > 200, "{name}: {} requests", paths.len());
        let mut seen = std::collections::BTreeSet::new();
        for p in &paths {
            let (route, query) = p.split_once('?').unwrap_or((p, ""));
            assert!(routes.iter().any(|r| r == route), "{name}: {p}");
            if e.consumers > 0 {
                let n: u32 = query.strip_prefix("apikey=key-").unwrap().parse().unwrap();
                assert!((1..=e.consumers).contains(&n), "{name}: {p}");
            } else {
                assert!(query.is_empty(), "{name}: {p}");
            }
            seen.insert(route.to_string());
        }
        // Random over 100 routes: a few hundred requests reach nearly all of them.
        assert!(seen.len() > 90, "{name}: {} routes of 100", seen.len());
    }
    if let Some((mut p, _)) = served {
        p.stop(Duration::from_secs(2)).unwrap();
    }
}

// ---------------------------------------------------------------- fixes 2-5, 7, 10 (no Kong)

#[test]
fn port_layout_gives_every_listener_its_own_port() {
    use perflab::role::gateway::kong::PortLayout;
    let hybrid3 =
        KongSettings::from_table(&settings("mode = \"hybrid\"\ndata_planes = 3")).unwrap();
    let l = PortLayout::new(&hybrid3, 9000, 9001, true);
    let mut all = vec![l.proxy, l.admin, l.cluster.unwrap(), l.telemetry.unwrap()];
    all.push(l.postgres.unwrap());
    assert_eq!(l.data_plane_proxy(1), l.proxy);
    all.extend((2..=3).map(|i| l.data_plane_proxy(i)));
    let distinct: std::collections::BTreeSet<u16> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "{l:?}");
    // What the old layout (proxy_port + i - 1) gave data planes 2 and 3: the admin and cluster ports.
    assert!(!all[5..].contains(&9001) && l.data_plane_proxy(3) != l.cluster.unwrap());
    assert_eq!(l.span(), 7);
    // An external database (pg_host) takes no port; a case's pg_port is used as it is.
    assert_eq!(PortLayout::new(&hybrid3, 9000, 9001, false).span(), 6);
    let fixed = KongSettings::from_table(&settings("pg_port = 5432")).unwrap();
    let f = PortLayout::new(&fixed, 9000, 9001, true);
    assert_eq!((f.postgres, f.span()), (Some(5432), 2));
}

/// The plan of a one-route case with settings `s` and environment `env`, on ports 9000/9001.
fn one_route_plan(
    tmp: &Path,
    s: &toml::Table,
    env: &[(String, String)],
) -> perflab::role::gateway::kong::StartPlan {
    let host = local(tmp);
    let uris = vec!["http://127.0.0.1:18088".to_string()];
    let e = entities(1, 1, vec![], 0);
    plan(
        &ctx(&host, tmp, &uris, &e, "current", None, s, (9000, 9001)),
        env,
    )
    .unwrap()
}

#[test]
fn kong_environment_cannot_move_an_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings("mode = \"hybrid\"\ndata_planes = 2");
    let dev_env = env(&[
        ("KONG_PREFIX", "/usr/local/kong"),
        ("KONG_PROXY_LISTEN", "0.0.0.0:8000"),
        ("KONG_ROLE", "traditional"),
        ("KONG_LOG_LEVEL", "warn"),
    ]);
    let p = one_route_plan(tmp.path(), &s, &dev_env);
    let prefixes: std::collections::BTreeSet<&str> = p
        .instances
        .iter()
        .map(|i| i.conf["prefix"].as_str())
        .collect();
    assert_eq!(prefixes.len(), 3, "one prefix per instance: {prefixes:?}");
    for i in &p.instances {
        assert_ne!(i.conf["proxy_listen"], "0.0.0.0:8000");
        assert_ne!(i.conf["role"], "traditional");
        assert_eq!(i.conf["log_level"], "warn", "other KONG_* still apply");
        // Kong reads KONG_* over kong.conf, so each command pins its instance's values.
        let pinned = conf::pinned_env(&i.conf);
        assert!(pinned.contains(&("KONG_PREFIX".to_string(), i.conf["prefix"].clone())));
        assert!(pinned.contains(&(
            "KONG_PROXY_LISTEN".to_string(),
            i.conf["proxy_listen"].clone()
        )));
    }
}

#[test]
fn plans_fit_the_kong_version_that_runs_them() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings("mode = \"dbless\"");
    let mut p3 = one_route_plan(tmp.path(), &s, &[]);
    p3.adapt_to("3.9.3");
    assert_eq!(p3.document["_format_version"], "3.0");
    assert_eq!(p3.instances[0].conf["admin_gui_listen"], "off");
    assert_eq!(p3.instances[0].conf["status_listen"], "off");
    let mut p2 = one_route_plan(tmp.path(), &s, &[]);
    p2.adapt_to("2.8.5");
    assert_eq!(p2.document["_format_version"], "2.1");
    assert!(!p2.instances[0].conf.contains_key("admin_gui_listen"));
    // A case that asks for the status API keeps it (and its port is planned).
    let asks = settings("mode = \"dbless\"\nkong_configs = { status_listen = \"127.0.0.1:9100\" }");
    let mut p = one_route_plan(tmp.path(), &asks, &[]);
    p.adapt_to("3.9.3");
    assert_eq!(p.instances[0].conf["status_listen"], "127.0.0.1:9100");
    assert!(
        perflab::role::gateway::kong::planned_ports(&p)
            .iter()
            .any(|(port, _)| *port == 9100)
    );
    // No listener of the lab on 0.0.0.0 (the local host's address is loopback).
    for v in p.instances[0].conf.values() {
        assert!(!v.contains("0.0.0.0"), "{v}");
    }
}

#[test]
fn migrations_bootstrap_then_up_then_finish() {
    let cmds = perflab::role::gateway::kong::migration_commands("/lab/kong.conf");
    let text: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
    assert_eq!(
        text,
        [
            "migrations bootstrap -c /lab/kong.conf",
            "migrations up -y -c /lab/kong.conf",
            "migrations finish -y -c /lab/kong.conf",
        ]
    );
}

// ---------------------------------------------------------------- live Kong

/// A temp dir PostgreSQL can reach (0711) and a local host on it, when a live Kong is found;
/// `None` (and a `SKIPPED what: why` line) otherwise.
fn live_lab(what: &str) -> Option<(tempfile::TempDir, Arc<dyn Host>)> {
    live_lab_mode(what, Some(0o711))
}

/// [`live_lab`] with the temporary dir's mode set to `mode` (`None`: tempfile's own 0700).
fn live_lab_mode(what: &str, mode: Option<u32>) -> Option<(tempfile::TempDir, Arc<dyn Host>)> {
    let tmp = tempfile::tempdir().unwrap();
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let host = local(tmp.path());
    match live_kong() {
        Ok(k) => println!("{what} against {k}"),
        Err(why) => {
            skip(what, &why);
            return None;
        }
    }
    Some((tmp, host))
}

/// The live checks of fixes 4, 6, 7, 9 and 10 on a started Kong; `Err` says what is wrong (the
/// caller stops Kong first).
fn live_fix_checks(
    gw: &perflab::role::gateway::RunningGateway,
    c: &GatewayContext,
    label: &str,
) -> Result<(), String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    // Fix 6: the profiler's processes are the nginx master (a child of `kong start`, the
    // process perflab spawned) and its workers, never `kong start` itself.
    let pid_file = gw.server_pid_file.clone().ok_or("no server pid file")?;
    let pids = perflab::role::profiler::nginx_server_pids(gw.host.as_ref(), &pid_file)
        .map_err(|e| e.to_string())?;
    // Data planes also run a privileged agent beside the workers (dedicated_config_processing).
    if pids.contains(&gw.proc.pid()) || pids.len() < 1 + c.workers as usize {
        return Err(format!(
            "server pids {pids:?} (kong start is {}, {} workers)",
            gw.proc.pid(),
            c.workers
        ));
    }
    // `kong start` is a resty script: resty runs the CLI in an nginx of its own, which starts
    // Kong's nginx through a shell, so the master descends from it a few levels down.
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let mut ancestors = Vec::new();
    let mut p = pids[0];
    while let Some(pp) = parent(p).filter(|pp| *pp > 1 && ancestors.len() < 12) {
        ancestors.push(pp);
        p = pp;
    }
    if !ancestors.contains(&gw.proc.pid()) {
        return Err(format!(
            "nginx master {} does not descend from kong start {} (ancestors {ancestors:?})",
            pids[0],
            gw.proc.pid()
        ));
    }
    for pid in &pids {
        let status = read(Path::new(&format!("/proc/{pid}/status")))?;
        // Fix 9: pinned to the lab's CPUs, with the raised open-file limit where the hard limit
        // allows it.
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(str::trim);
        if cpus != Some("0") {
            return Err(format!("{pid} runs on CPUs {cpus:?}, not 0"));
        }
        let limits = read(Path::new(&format!("/proc/{pid}/limits")))?;
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
        let hard: u64 = nums[1].parse().unwrap_or(u64::MAX);
        let soft: u64 = nums[0].parse().unwrap_or(u64::MAX);
        if soft < hard.min(perflab::role::gateway::kong::OPEN_FILES as u64) {
            return Err(format!("{pid}: open files {soft} of hard {hard}"));
        }
    }
    // Fix 7: the command Kong runs under pins its prefix (Kong reads KONG_* over kong.conf).
    let environ = std::fs::read(format!("/proc/{}/environ", gw.proc.pid())).unwrap_or_default();
    let want = format!(
        "KONG_PREFIX={}",
        pid_file.parent().unwrap().parent().unwrap().display()
    );
    if !environ.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
        return Err(format!("kong start's environment lacks {want}"));
    }
    // Fix 4: Kong's generated nginx config has no admin GUI or status listener and nothing on
    // 0.0.0.0.
    for inst in std::iter::once(&gw.error_log).chain(gw.other_logs.iter().map(|(_, l)| l)) {
        let inst_prefix = inst.parent().unwrap().parent().unwrap();
        let nginx_kong = read(&inst_prefix.join("nginx-kong.conf"))?;
        for bad in ["0.0.0.0", ":8002", ":8445", ":8007"] {
            if let Some(l) = nginx_kong
                .lines()
                .find(|l| l.contains("listen") && l.contains(bad))
            {
                return Err(format!("{}: {l}", inst_prefix.display()));
            }
        }
    }
    // Fix 10: in hybrid mode the control plane's error log is kept too, and it is Kong's.
    if label.starts_with("hybrid") {
        let (name, cp_log) = gw
            .other_logs
            .first()
            .ok_or("no other logs in hybrid mode")?;
        if name != "cp" || read(cp_log)?.trim().is_empty() {
            return Err(format!("control plane log {name} {}", cp_log.display()));
        }
    }
    Ok(())
}

#[test]
fn live_kong_in_every_mode() {
    let _g = load_lock();
    let Some((tmp, host)) = live_lab("live Kong test") else {
        return;
    };
    let up_dir = tmp.path().join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let (mut upstream, up_port) =
        start_nginx(&host, &up_dir, r#"location = /test { return 200 "ok"; }"#)
            .expect("nginx for the upstream");
    let uris = vec![format!("http://127.0.0.1:{up_port}")];
    let key_auth = Plugin {
        name: "key-auth".into(),
        config: serde_json::Map::new(),
        ..plugin_defaults()
    };
    let e = entities(2, 2, vec![key_auth], 1);
    let adapter = KongAdapter::new();
    let only: Option<String> = std::env::var("PERFLAB_KONG_LIVE_MODES").ok();
    for (mode, data_planes, seed) in [
        ("dbless", 1, "auto"),
        ("traditional", 1, "auto"),
        // Bulk seeding: `kong config db_import` before Kong starts, no Admin API calls.
        ("traditional", 1, "import"),
        ("hybrid", 1, "auto"),
        ("hybrid", 3, "import"),
    ] {
        let label = match seed {
            "auto" => format!("{mode}/{data_planes}"),
            _ => format!("{mode}/{data_planes}/{seed}"),
        };
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|m| m == label || m == mode))
        {
            continue;
        }
        let s = settings(&format!(
            "mode = \"{mode}\"\ndata_planes = {data_planes}\nseed = \"{seed}\""
        ));
        // As the session does: as many consecutive free ports as the adapter listens on.
        let n = adapter.ports_needed(&s);
        let base = perflab::session::pick_ports(host.as_ref(), n, 38000).unwrap();
        let ports = (base, base + 1);
        let prefix = tmp.path().join(label.replace('/', "-"));
        let mut c = ctx(&host, &prefix, &uris, &e, "current", None, &s, ports);
        // Fix 9: pinned like every other gateway (CPU 0 exists on every machine).
        c.cpus = Some(vec![0]);
        let t0 = std::time::Instant::now();
        let mut gw = adapter
            .start(&c)
            .unwrap_or_else(|err| panic!("{label}: {err:#}"));
        println!(
            "{label}: {} at {}, ready in {:.1} s",
            gw.version_detail,
            gw.proxy_uri,
            t0.elapsed().as_secs_f64()
        );
        // Every instance that proxies (each data plane) answers, not only the first.
        let proxies: Vec<String> = plan(&c, &std::env::vars().collect::<Vec<_>>())
            .unwrap()
            .instances
            .iter()
            .filter(|i| i.conf["proxy_listen"] != "off")
            .map(|i| format!("http://{}", i.conf["proxy_listen"]))
            .collect();
        assert_eq!(proxies.len(), data_planes, "{label}");
        assert_eq!(proxies[0], gw.proxy_uri, "{label}");
        let mut answers = Vec::new();
        for p in &proxies {
            let denied =
                perflab::http::get_status(&format!("{p}/s2r2"), Duration::from_secs(5)).unwrap();
            let ok = perflab::http::get_status(
                &format!("{p}/s2r2?apikey=key-1"),
                Duration::from_secs(5),
            )
            .unwrap();
            answers.push((denied, ok));
        }
        let checks = live_fix_checks(&gw, &c, &label);
        let pid = gw.proc.pid();
        adapter.stop(&mut gw).unwrap();
        checks.unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            answers,
            vec![(401, 200); data_planes],
            "{label}: {proxies:?}"
        );
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{label}: kong {pid} left"
        );
    }
    upstream.stop(Duration::from_secs(2)).unwrap();
}

#[test]
fn kong_versions_pick_their_images_on_the_docker_driver() {
    use perflab::role::gateway::kong::{DAILY_IMAGE, KongSettings, image_for, release_image};
    let plain = KongSettings::from_table(&toml::Table::new()).unwrap();
    assert_eq!(release_image("3.9.1"), "kong:3.9.1");
    assert_eq!(release_image("3.10.0-rc.1"), "kong/kong:3.10.0-rc.1");
    assert_eq!(release_image("3.4.0-beta.2"), "kong/kong:3.4.0-beta.2");
    let image = |v: &str, dir: Option<&Path>, s: &KongSettings, env: Option<&str>| {
        image_for(v, dir, s, env)
            .unwrap()
            .map(|i| (i.reference, i.always_pull))
    };
    assert_eq!(image("current", None, &plain, None), None);
    assert_eq!(
        image("3.9.1", None, &plain, None),
        Some(("kong:3.9.1".to_string(), false))
    );
    // git: the release the ref's kong/meta.lua is based on, or the nightly image on request.
    let tmp = tempfile::tempdir().unwrap();
    let wt = tmp.path().join("wt");
    std::fs::create_dir_all(wt.join("kong")).unwrap();
    std::fs::copy(
        repo_path("tests/fixtures/kong/meta.lua"),
        wt.join("kong/meta.lua"),
    )
    .unwrap();
    let text = std::fs::read_to_string(wt.join("kong/meta.lua")).unwrap();
    // The fixture is Kong's master (3.10.0-alpha), which has no release: the version map
    // (Kong's git.lua `version_map_table`) runs it on 3.9.1, unless a base_version says else.
    let v = meta::parse_meta_lua(&text).unwrap();
    assert_eq!(v.base_version(), "3.10.0");
    assert_eq!(meta::release_for(&v, None), "3.9.1");
    assert_eq!(
        image("git:main", Some(&wt), &plain, None),
        Some(("kong:3.9.1".to_string(), false))
    );
    let pinned = KongSettings::from_table(&settings(r#"base_version = "3.9.0""#)).unwrap();
    assert_eq!(
        image("git:main", Some(&wt), &pinned, None),
        Some(("kong:3.9.0".to_string(), false))
    );
    assert!(KongSettings::from_table(&settings(r#"base_version = "master""#)).is_err());
    // The docker driver's adapter takes PERFLAB_KONG_BASE_VERSION from its environment.
    let a = KongAdapter::with_env(env(&[("PERFLAB_KONG_BASE_VERSION", "3.8.1")]));
    assert_eq!(
        a.container_image("git:main", Some(&wt), &toml::Table::new())
            .unwrap()
            .map(|i| i.reference),
        Some("kong:3.8.1".to_string())
    );
    let mut t = toml::Table::new();
    t.insert("use_daily_image".into(), toml::Value::Boolean(true));
    let daily = KongSettings::from_table(&t).unwrap();
    assert_eq!(
        image("git:main", Some(&wt), &daily, None),
        Some((DAILY_IMAGE.to_string(), true))
    );
    assert_eq!(
        image("git:main", Some(&wt), &plain, Some("1")),
        Some((DAILY_IMAGE.to_string(), true))
    );
    // The daily image is never used for releases, as in Kong's framework.
    assert_eq!(
        image("3.9.1", None, &daily, None),
        Some(("kong:3.9.1".to_string(), false))
    );
    assert!(image_for("git:main", None, &plain, None).is_err());
}

#[test]
fn live_migrate_only_brings_a_database_up_to_date_and_is_repeatable() {
    let _g = load_lock();
    let Some((tmp, host)) = live_lab("live migrations") else {
        return;
    };
    let port = perflab::session::pick_ports(host.as_ref(), 1, 39000).unwrap();
    let opts = perflab::role::postgres::PostgresOptions {
        port,
        ..Default::default()
    };
    let mut pg =
        perflab::role::postgres::start_postgres(host.clone(), &tmp.path().join("pg"), opts)
            .unwrap();
    let confs = settings(&format!(
        "pg_host = \"{}\"\npg_port = {}\npg_user = \"{}\"\npg_database = \"{}\"",
        pg.address(),
        pg.port(),
        pg.user(),
        pg.database()
    ));
    let env: Vec<(String, String)> = std::env::vars().collect();
    let dir = tmp.path().join("migrate");
    let migrate =
        || perflab::role::gateway::kong::migrate_only(host.as_ref(), "current", &confs, &dir, &env);
    let first = migrate();
    // Twice: bootstrap, up and finish on a database that is already current all succeed.
    let second = first.is_ok().then(migrate);
    let executed = pg.psql("SELECT count(*) FROM schema_meta WHERE executed IS NOT NULL");
    let pending = pg.psql(
        "SELECT count(*) FROM schema_meta WHERE pending IS NOT NULL AND cardinality(pending) > 0",
    );
    pg.stop().unwrap();
    first.unwrap();
    second.unwrap().unwrap();
    assert!(executed.unwrap().trim().parse::<u32>().unwrap() > 0);
    assert_eq!(pending.unwrap().trim(), "0");
}

/// The nginx master pid of a Kong error log: `[notice] PID#0: using the "epoll" event method`.
fn master_pids(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("using the \"epoll\" event method"))
        .filter_map(|l| {
            let after = l.split("[notice] ").nth(1)?;
            Some(after.split('#').next()?.to_string())
        })
        .collect()
}

/// Every Kong scenario of suites/kong, end to end through `perflab suite` against the live
/// Kong (short loads: 2 s, 2 repeats): each run answers without errors or non-2xx responses
/// (so every route, key, target and plugin of the case is in place before the load: fix 8),
/// and both repeats of a case ran against one Kong (fix 11: one nginx master in both runs'
/// error logs). The cases with actions during load run once with 31 s loads, long enough for
/// their actions, each of which must succeed. `PERFLAB_KONG_LIVE_SCENARIOS=key-auth,balancer`
/// runs the cases whose names contain one of these words.
#[test]
fn live_kong_scenarios_run_end_to_end() {
    let _g = load_lock();
    let Some((tmp, _)) = live_lab("live Kong scenarios") else {
        return;
    };
    let only: Option<String> = std::env::var("PERFLAB_KONG_LIVE_SCENARIOS").ok();
    // Cases with actions during load need loads long enough for their actions; they run apart.
    let suite = tmp.path().join("kong-scenarios");
    let during_suite = tmp.path().join("kong-scenarios-during");
    for d in [&suite, &during_suite] {
        std::fs::create_dir_all(d).unwrap();
    }
    for entry in std::fs::read_dir(repo_path("suites/kong")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|w| stem.contains(w)))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let to = if text.contains("[[case.during]]") {
            &during_suite
        } else {
            &suite
        };
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
    let run_suite = |dir: &Path, duration: &str, repeat: &str| -> Vec<serde_json::Value> {
        let out_dir = tmp.path().join(format!(
            "out-{}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        let out = std::process::Command::new(PERFLAB)
            .args(["suite", dir.to_str().unwrap()])
            .args(["--duration", duration, "--repeat", repeat])
            .args([
                "--cooldown-max",
                "0",
                "--output-dir",
                out_dir.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
        assert!(out.status.success(), "perflab suite failed: {stderr}");
        let mut runs = Vec::new();
        for run in std::fs::read_dir(out_dir.join("runs")).unwrap() {
            let dir = run.unwrap().path();
            let mut r: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap();
            r["dir"] = serde_json::json!(dir);
            let case = r["case"].as_str().unwrap().to_string();
            let errors: u64 = r["errors"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|v| v.as_u64())
                .sum();
            assert_eq!(errors, 0, "{case}: {}", r["errors"]);
            assert!(r["requests"].as_u64().unwrap() > 0, "{case}");
            runs.push(r);
        }
        runs
    };
    let mut masters: std::collections::BTreeMap<String, Vec<Vec<String>>> = Default::default();
    let has_cases = |d: &Path| std::fs::read_dir(d).unwrap().next().is_some();
    if has_cases(&suite) {
        for r in run_suite(&suite, "2", "2") {
            if r["gateway"] == "kong" {
                let dir = PathBuf::from(r["dir"].as_str().unwrap());
                let log = std::fs::read_to_string(dir.join("gateway-error.log")).unwrap();
                let case = r["case"].as_str().unwrap().to_string();
                masters.entry(case).or_default().push(master_pids(&log));
            }
        }
    }
    for (case, runs) in &masters {
        assert_eq!(runs.len(), 2, "{case}");
        assert_eq!(
            runs[0].len(),
            1,
            "{case}: one Kong start in the first run's log"
        );
        assert_eq!(
            runs[0], runs[1],
            "{case}: both repeats against the same Kong"
        );
    }
    // Kong's scenarios with actions during load (balancer rebuild, prometheus scrapes, the
    // upstream-lock PATCHes): every action answered 2xx while the load ran without errors.
    if has_cases(&during_suite) {
        for r in run_suite(&during_suite, "31", "1") {
            let case = r["case"].as_str().unwrap();
            let actions = r["during"]["actions"].as_array().unwrap();
            assert!(!actions.is_empty(), "{case}");
            for a in actions {
                assert_eq!(a["ok"], true, "{case}: {a}");
            }
        }
    }
}

#[test]
fn large_cases_are_seeded_by_import_and_repeats_share_one_kong() {
    let _g = load_lock();
    use perflab::role::gateway::kong::{BULK_REQUESTS, Seed};
    let s = |t: &str| KongSettings::from_table(&settings(t)).unwrap();
    assert_eq!(s("").seed, Seed::Auto);
    assert!(!Seed::Auto.imports(BULK_REQUESTS - 1) && Seed::Auto.imports(BULK_REQUESTS));
    assert!(s("seed = \"import\"").seed.imports(1));
    assert!(!s("seed = \"admin\"").seed.imports(1_000_000));
    assert!(KongSettings::from_table(&settings("seed = \"sql\"")).is_err());
    // 100 services x 100 routes with key-auth and 1000 consumers: far past the threshold.
    let big = entities(100, 100, vec![], 1000);
    let doc = declarative::document(&big, &["http://127.0.0.1:1".into()], "/test").unwrap();
    assert!(s("").seed.imports(admin::requests(&doc).len()));
    // Kong keeps one instance for a case's repeats unless the case asks for one per run.
    let a = KongAdapter::new();
    assert!(a.keeps_for_repeats(&toml::Table::new()));
    assert!(!a.keeps_for_repeats(&settings("lifecycle = \"per-run\"")));
    assert!(KongSettings::from_table(&settings("lifecycle = \"sometimes\"")).is_err());
}

/// Actions during load on a live Kong, through the CLI: an Admin API PATCH (traditional mode),
/// `kong reload` (traditional and DB-less: the declarative config must survive it) and a scrape
/// of the Admin API, each recorded with the traffic around it, and the load still routed after.
#[test]
fn live_kong_actions_during_load() {
    let _g = load_lock();
    let Some((tmp, _)) = live_lab("live Kong actions-during-load test") else {
        return;
    };
    let suite = tmp.path().join("suites/kong-during");
    std::fs::create_dir_all(&suite).unwrap();
    for (mode, admin_change) in [("traditional", true), ("dbless", false)] {
        let patch = if admin_change {
            "[[case.during]]\nat = 2\naction = \"http\"\nmethod = \"PATCH\"\npath = \"/services/s1\"\nbody = '{\"retries\": 3}'\n"
        } else {
            ""
        };
        std::fs::write(
            suite.join(format!("{mode}.toml")),
            format!(
                "[case]\nname = \"{mode}\"\ngateway = \"kong\"\nupstream = 'location = /test {{ return 200 \"ok\"; }}'\n\
                 [case.load]\npath = \"/s1r1\"\nconnections = 10\nthreads = 1\nduration = 8\n\
                 [case.gateway_settings]\nmode = \"{mode}\"\nkong_configs = {{ nginx_worker_processes = \"1\" }}\n\
                 {patch}[[case.during]]\nat = 4\naction = \"reload\"\n\
                 [[case.during]]\nat = 6\naction = \"scrape\"\npath = \"/status\"\n"
            ),
        )
        .unwrap();
    }
    let out = tmp.path().join("out");
    let child_tmp = tmp.path().join("tmp");
    std::fs::create_dir_all(&child_tmp).unwrap();
    let o = std::process::Command::new(PERFLAB)
        .arg("suite")
        .arg(&suite)
        .args([
            "--repeat",
            "1",
            "--warmup",
            "0",
            "--cooldown-max",
            "0",
            "--plain",
        ])
        .arg("--output")
        .arg(&out)
        .env("TMPDIR", &child_tmp)
        .env_remove("PERF_TEST_DRIVER")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let root = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut runs: Vec<PathBuf> = std::fs::read_dir(root.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "{stderr}");
    for r in &runs {
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r.join("result.json")).unwrap()).unwrap();
        let actions = rec["during"]["actions"].as_array().unwrap();
        for a in actions {
            assert_eq!(a["ok"], true, "{}: {a}", rec["case"]);
            let w = &a["window"];
            println!(
                "{} {} at {:.2}s took {:.3}s: window {} responses, {} errors, {} lost, p99 {} ms",
                rec["case"],
                a["action"],
                a["started_s"].as_f64().unwrap(),
                a["duration_s"].as_f64().unwrap(),
                w["responses"],
                w["errors"],
                w["lost"],
                w["p99_ms"]
            );
        }
        let o = &rec["during"]["outside"];
        println!(
            "{} outside: {} responses, {} errors, {} lost, p99 {} ms; wrk errors {}",
            rec["case"], o["responses"], o["errors"], o["lost"], o["p99_ms"], rec["errors"]
        );
        let reload = actions.iter().find(|a| a["action"] == "reload").unwrap();
        // The route still answers after the reload: the last second of the load has responses
        // and no HTTP errors (a DB-less Kong that lost its declarative config would 404).
        let series = rec["during"]["series"].as_array().unwrap();
        let after: Vec<&serde_json::Value> = series
            .iter()
            .filter(|b| b[0].as_f64().unwrap() > reload["started_s"].as_f64().unwrap() + 1.0)
            .collect();
        assert!(!after.is_empty(), "{}", rec["case"]);
        assert!(
            after.iter().all(|b| b[2] == 0),
            "{}: errors after the reload",
            rec["case"]
        );
        assert!(after.iter().map(|b| b[1].as_u64().unwrap()).sum::<u64>() > 0);
        let scrape = actions.iter().find(|a| a["action"] == "scrape").unwrap();
        let body = std::fs::read_to_string(r.join(scrape["saved"].as_str().unwrap())).unwrap();
        assert!(body.contains("\"server\""), "Kong's /status: {body}");
        if rec["case"] == "traditional@kong" {
            let patch = actions.iter().find(|a| a["action"] == "http").unwrap();
            assert_eq!(patch["status"], 200, "{patch}");
            assert!(
                patch["answer"].as_str().unwrap().contains("\"retries\":3"),
                "{patch}"
            );
        }
    }
}

/// Entities and load of a Kong case with key-auth on its route (requests carry the key).
const KEY_AUTH: &str = r#"[case.entities]
services = 1
routes_per_service = 1
plugins = [{ name = "key-auth", config = {} }]
consumers = 1
[case.load]
path = "/s1r1?apikey=key-1"
connections = 20
threads = 1
"#;

/// Writes `DIR/MODE.toml`: a one-repeat Kong case in `mode` (`hybrid/3`: three data planes)
/// with `extra` lines in `[case]` and `body` (entities and load) after it.
fn write_case(dir: &Path, mode: &str, extra: &[&str], body: &str) {
    let (mode_name, data_planes) = mode.split_once('/').unwrap_or((mode, "1"));
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "[case]\nname = \"{name}\"\ngateway = \"kong\"\nrepeats = 1\n{extra}\n\
         upstream = \"\"\"\nlocation = /test {{ return 200 \"ok\"; }}\n\"\"\"\n{body}\
         [case.gateway_settings]\nmode = \"{mode_name}\"\ndata_planes = {data_planes}\n\
         kong_configs = {{ nginx_worker_processes = \"1\" }}\n",
        name = mode.replace('/', "-"),
        extra = extra.join("\n"),
    );
    std::fs::write(dir.join(format!("{}.toml", mode.replace('/', "-"))), text).unwrap();
}

/// Runs `perflab suite SUITE ARGS…` with quick-run flags and its own TMPDIR under `work`;
/// returns the results folder, or everything perflab said when it failed.
fn perflab_suite(work: &Path, suite: &Path, args: &[&str]) -> Result<PathBuf, String> {
    let out_dir = work.join(format!("out-{}", std::process::id()));
    let tmp = work.join("tmp");
    for d in [&out_dir, &tmp] {
        std::fs::create_dir_all(d).unwrap();
    }
    let before: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let out = std::process::Command::new(PERFLAB)
        .arg("suite")
        .arg(suite)
        .args(args)
        .args([
            "--cooldown-max",
            "0",
            "--warmup",
            "1",
            "--plain",
            "--output",
        ])
        .arg(&out_dir)
        .env("TMPDIR", &tmp)
        .env_remove("PERF_TEST_DRIVER")
        // Kong's default Admin GUI and status ports are fixed (8002, 8445, 8007): other labs
        // on this machine may hold them.
        .env("KONG_ADMIN_GUI_LISTEN", "off")
        .env("KONG_STATUS_LISTEN", "off")
        .output()
        .unwrap();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(said);
    }
    std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| !before.contains(p))
        .ok_or(said)
}

/// The run folders of a results folder, in run order.
fn run_dirs(results: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// perflab's Lua profiler through the CLI against real Kong (DB-less, key-auth on the route so
/// that plugin code runs): `perflab suite … --profiler lua` records LuaJIT's samples in Kong's
/// worker and the run's flame graph names Kong's Lua functions with `file:line`. Runs wherever
/// the live Kong test runs (`live_kong`).
#[test]
fn live_kong_lua_profiler_names_kongs_lua_functions() {
    let _g = load_lock();
    let Some((tmp, _)) = live_lab_mode("live Kong Lua profiler test", None) else {
        return;
    };
    let suite = tmp.path().join("suite");
    write_case(&suite, "dbless", &["profile = true"], KEY_AUTH);
    let results = perflab_suite(
        tmp.path(),
        &suite,
        &[
            "--profiler",
            "lua",
            "--profile-hz",
            "1000",
            "--duration",
            "4",
        ],
    )
    .unwrap_or_else(|said| panic!("perflab suite failed:\n{said}"));
    let run = run_dirs(&results).remove(0);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("result.json")).unwrap()).unwrap();
    let p = &record["profile"];
    assert_eq!(p["tool"], "lua", "{p}");
    assert_eq!(p["mode"]["lua"], "jit.profile", "{p}");
    assert_eq!(p["frequency_hz"], 1000, "{p}");
    let folded = std::fs::read_to_string(run.join("profile.folded")).unwrap();
    assert_eq!(
        perflab::report::flamegraph::total_count(&folded),
        p["samples"].as_u64().unwrap()
    );
    // Every stack is a Lua stack of the worker; Kong's request phases show by function name
    // and file:line (e.g. `access (kong/init.lua:1199)`), and so does the key-auth plugin.
    assert!(
        folded.lines().all(|l| l.starts_with("nginx worker (Lua);")),
        "{folded}"
    );
    // A named Kong frame: `NAME (kong/….lua:LINE)`.
    let named = |f: &str| -> bool {
        let Some((name, place)) = f.split_once(" (") else {
            return false;
        };
        let Some((file, line)) = place.trim_end_matches(')').rsplit_once(':') else {
            return false;
        };
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && file.starts_with("kong/")
            && file.ends_with(".lua")
            && !line.is_empty()
            && line.chars().all(|c| c.is_ascii_digit())
    };
    let frames: std::collections::BTreeSet<&str> = folded
        .lines()
        .filter_map(|l| l.rsplit_once(' ').map(|(stack, _)| stack))
        .flat_map(|stack| stack.split(';'))
        .filter(|f| named(f))
        .collect();
    println!(
        "{} samples; {} distinct Kong frames, e.g. {:?}",
        p["samples"],
        frames.len(),
        frames.iter().take(8).collect::<Vec<_>>()
    );
    assert!(
        frames.iter().any(|f| f.contains("(kong/init.lua:")),
        "no Kong phase handler in:\n{folded}"
    );
    assert!(
        frames.iter().any(|f| f.contains("(kong/plugins/key-auth/")),
        "no key-auth frame in:\n{folded}"
    );
    let svg = std::fs::read_to_string(run.join("profile.svg")).unwrap();
    let first = frames.iter().next().unwrap();
    assert!(svg.contains(first), "the flame graph shows {first}");
}

/// A real worker dump of perflab's Lua sampler (Kong 3.9.3 built from source, DB-less,
/// key-auth, 250 Hz, recorded from `PREFIX/perflab-luaprof/PID-GEN.folded`) folds into stacks
/// rooted at the worker, with every sample kept and Kong's frames named.
#[test]
fn a_recorded_lua_sampler_dump_folds_into_named_kong_frames() {
    use perflab::role::lua_profiler::{ROOT_FRAME, fold_dumps};
    let dump = std::fs::read_to_string(repo_path(
        "tests/fixtures/lua-profile/kong-3.9.3-key-auth-worker.dump",
    ))
    .unwrap();
    let recorded: u64 = dump
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let folded = fold_dumps(&[dump.clone(), dump]);
    assert_eq!(
        perflab::report::flamegraph::total_count(&folded),
        2 * recorded,
        "two workers' samples are summed"
    );
    assert!(folded.lines().all(|l| l.starts_with(ROOT_FRAME)));
    for frame in [
        "do_authentication (kong/plugins/key-auth/handler.lua:116)",
        "access (kong/init.lua:1203)",
        "main chunk (access_by_lua(nginx-kong.conf:101):2)",
        "[interpreted]",
    ] {
        assert!(folded.contains(frame), "{frame} missing");
    }
    // Paths are module paths, not the prefix's.
    assert!(!folded.contains("/opt/kong-3.9.3"));
}

/// Kong on every driver, through the CLI: one suite of three Kong cases — DB-less (profiled
/// with the Lua sampler), traditional with PostgreSQL, hybrid with three data planes — on the
/// local driver, the docker driver (the built Kong in the lab image: `perflab image build` puts
/// `PERFLAB_KONG_PREFIX` in) and the netns terraform lab (namespaces of this machine, which
/// share its files). Every run must answer without errors and the DB-less run must carry a Lua
/// profile naming Kong's code. Runs wherever the live Kong test runs; a driver whose engine
/// or tools are missing here is skipped with its reason (`PERFLAB_KONG_LIVE_DRIVERS=local,docker`
/// picks drivers).
#[test]
fn live_kong_suite_on_every_driver() {
    let _g = load_lock();
    let Some((tmp, host)) = live_lab_mode("live Kong per-driver test", Some(0o755)) else {
        return;
    };
    let suite = tmp.path().join("suite");
    write_case(&suite, "dbless", &["profile = true"], KEY_AUTH);
    write_case(&suite, "traditional", &[], KEY_AUTH);
    write_case(&suite, "hybrid/3", &[], KEY_AUTH);
    let only = std::env::var("PERFLAB_KONG_LIVE_DRIVERS").ok();
    let is_root = host
        .run(&Cmd::new("id").arg("-u"), Duration::from_secs(10))
        .is_ok_and(|o| o.stdout_text().trim() == "0");
    let netns_state = tmp.path().join("netns-state");
    let netns_opts: Vec<String> = [
        "provider=netns".to_string(),
        format!("lab=kong{}", std::process::id() % 10000),
        "var.net_octet=233".to_string(),
        format!("state-dir={}", netns_state.display()),
        format!("modules-dir={}", repo_path("terraform").display()),
        "ssh-wait=30".to_string(),
    ]
    .into_iter()
    .flat_map(|o| ["--driver-opt".to_string(), o])
    .collect();
    let mut summary = Vec::new();
    for driver in ["local", "docker", "terraform"] {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|d| d == driver))
        {
            continue;
        }
        let mut args: Vec<String> = vec!["--driver".into(), driver.into()];
        let missing = match driver {
            "docker" => docker_engine_answers().err(),
            "terraform" if !is_root => Some("the netns lab needs root".to_string()),
            "terraform" => host
                .which("terraform")
                .is_none()
                .then(|| "terraform is not installed".to_string()),
            _ => None,
        };
        if let Some(why) = missing {
            skip(driver, &why);
            summary.push(format!("{driver}: skipped ({why})"));
            continue;
        }
        if driver == "docker" {
            let out = std::process::Command::new(PERFLAB)
                .args(["image", "build"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "perflab image build: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Its content-addressed tag: `perflab/lab:latest` may be rebuilt meanwhile by
            // another lab on the same engine.
            let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let tag = info["tag"].as_str().unwrap().to_string();
            args.extend(["--driver-opt".to_string(), format!("image={tag}")]);
        }
        if driver == "terraform" {
            args.extend(netns_opts.iter().cloned());
        }
        args.extend(["--profiler", "lua", "--duration", "2"].map(String::from));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = perflab_suite(tmp.path(), &suite, &argv);
        if driver == "terraform" {
            let mut teardown = vec!["teardown", "--driver", "terraform", "--full"];
            teardown.extend(netns_opts.iter().map(String::as_str));
            let _ = std::process::Command::new(PERFLAB)
                .args(&teardown)
                .env("CHECKPOINT_DISABLE", "1")
                .output();
        }
        let results =
            result.unwrap_or_else(|said| panic!("{driver}: perflab suite failed:\n{said}"));
        let mut lines = Vec::new();
        for run in run_dirs(&results) {
            let r: serde_json::Value =
                serde_json::from_slice(&std::fs::read(run.join("result.json")).unwrap()).unwrap();
            let errors: u64 = r["errors"]
                .as_object()
                .map(|o| o.values().filter_map(|v| v.as_u64()).sum())
                .unwrap_or(0);
            let line = format!(
                "{driver} {}: {:.0} req/s, {errors} errors, {}",
                r["case"],
                r["rps"].as_f64().unwrap_or(0.0),
                r["version_detail"]
            );
            assert!(r["requests"].as_u64().unwrap_or(0) > 0, "{line}");
            assert_eq!(errors, 0, "{line}");
            if r["flags"]["profiled"] == true {
                assert_eq!(r["profile"]["tool"], "lua", "{line}");
                let folded = std::fs::read_to_string(run.join("profile.folded")).unwrap();
                assert!(folded.contains("(kong/init.lua:"), "{line}: {folded}");
            }
            lines.push(line);
        }
        assert_eq!(lines.len(), 3, "{driver}: {lines:?}");
        summary.extend(lines);
    }
    println!("{}", summary.join("\n"));
}

/// Whether the docker engine (`DOCKER_HOST`, else the default socket) answers.
fn docker_engine_answers() -> Result<(), String> {
    let rt = perflab::driver::docker::runtime();
    rt.block_on(perflab::driver::docker::connect(None))
        .map(|_| ())
        .map_err(|e| format!("no docker engine answers: {e:#}"))
}

/// Kong's `save_pgdump`/`load_pgdump` against real Kong through the session API (local
/// driver): Kong in traditional mode on the session's PostgreSQL gets a key-auth route and a
/// consumer through the Admin API; the database is dumped, Kong stopped, the dump restored (the
/// service patched to the session's upstream), and a Kong started with no entities of its own
/// then serves the dumped route: 401 without the key, 200 with it.
#[test]
fn live_kong_pgdump_round_trip_restores_kongs_entities() {
    let _g = load_lock();
    let Some((tmp, _)) = live_lab_mode("live Kong pgdump test", Some(0o755)) else {
        return;
    };
    let mut s = perflab::session::Session::new();
    s.set_log_level("warn").unwrap();
    s.set_retry_count(1);
    let mut opts = perflab::driver::DriverOptions::new();
    opts.insert("dir".into(), tmp.path().join("lab").display().to_string());
    s.use_driver(perflab::driver::DriverKind::Local, &opts)
        .unwrap();
    s.setup().unwrap();
    s.start_upstream(r#"location = /test { return 200 "ok"; }"#)
        .unwrap();
    s.start_postgres().unwrap();
    let mut confs = toml::Table::new();
    for k in ["admin_gui_listen", "status_listen"] {
        confs.insert(k.into(), toml::Value::String("off".into()));
    }
    let key_auth = Plugin {
        name: "key-auth".into(),
        ..plugin_defaults()
    };
    let proxy = s
        .start_kong(
            "current",
            &confs,
            &entities(1, 1, vec![key_auth], 1),
            "default",
        )
        .unwrap();
    let status = |uri: &str| perflab::http::get_status(uri, Duration::from_secs(5)).unwrap();
    assert_eq!(status(&format!("{proxy}/s1r1?apikey=key-1")), 200);
    let dump = tmp.path().join("kong.sql");
    s.save_pgdump(&dump).unwrap();
    let sql = std::fs::read_to_string(&dump).unwrap();
    assert!(
        sql.contains("CREATE TABLE public.services"),
        "a Kong schema"
    );
    assert!(sql.contains("key-1"), "the consumer's key is in the dump");
    s.stop_kong().unwrap();

    s.load_pgdump(&dump, false).unwrap();
    let proxy = s
        .start_kong("current", &confs, &entities(0, 0, vec![], 0), "default")
        .unwrap();
    // The restored route reaches Kong's router asynchronously.
    let routed =
        perflab::host::poll_until(Duration::from_secs(60), Duration::from_millis(500), || {
            (status(&format!("{proxy}/s1r1?apikey=key-1")) == 200).then_some(())
        });
    assert!(routed.is_some(), "the dumped route never answered 200");
    assert_eq!(
        status(&format!("{proxy}/s1r1")),
        401,
        "key-auth came back too"
    );
    s.teardown(false).unwrap();
}
