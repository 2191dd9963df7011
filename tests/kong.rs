//! The Kong adapter: everything checkable without Kong (configuration precedence, declarative
//! documents, Admin API requests, cluster certificates, version parsing, the case files, the
//! errors a missing Kong gives), plus a live test that starts real Kong in every mode wherever
//! a Kong is found (`PERFLAB_KONG_PREFIX`, or `kong` on PATH; see `live_kong`;
//! `PERFLAB_KONG_LIVE_MODES=dbless,hybrid/3` runs some modes only). Programs used: nginx (as an
//! HTTP server that refuses a POST, and as the live test's upstream) and PostgreSQL (live test).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use perflab::entities::{Entities, Plugin};
use perflab::host::{Cmd, Host, LocalHost};
use perflab::role::gateway::kong::{
    KongAdapter, KongLocation, KongSettings, Mode, VersionSpec, admin, certs, conf, declarative,
    meta, plan, resolve_binary,
};
use perflab::role::gateway::{GatewayAdapter, GatewayContext};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

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
        ]),
    )
    .unwrap();
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

fn entities(services: u32, routes: u32, plugins: Vec<Plugin>, consumers: u32) -> Entities {
    Entities {
        services,
        routes_per_service: routes,
        plugins,
        consumers,
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
    assert_eq!(k["pg_port"], "9004");
    assert_eq!(k["pg_user"], "kong");
    assert_eq!(k["pg_database"], "kong_tests");
    // Kong's own database always has a generated password (scram-sha-256 in pg_hba.conf).
    let pw = p.postgres.as_ref().unwrap().password.clone().unwrap();
    assert_eq!(pw.len(), 32);
    assert_eq!(k["pg_password"], pw);
    assert_eq!(k["log_level"], "debug");
    assert_eq!(p.postgres.as_ref().unwrap().port, 9004);
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
    assert_eq!(a.ports_needed(&settings(r#"mode = "traditional""#)), 5);
    assert_eq!(a.ports_needed(&settings(r#"mode = "dbless""#)), 2);
    // A case that puts PostgreSQL on a data plane's port is refused before anything starts.
    let clash = settings(
        r#"mode = "hybrid"
        data_planes = 2
        pg_port = 9005"#,
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
        err.to_string().contains("port 9005 is planned twice"),
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
        ["_format_version", "_transform", "consumers", "services"]
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
        serde_json::json!({"username": "consumer-2", "keyauth_credentials": [{"key": "key-2"}]})
    );
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        println!("nginx not installed: skipping the Admin API error test");
        return;
    };
    let doc = declarative::document(
        &entities(1, 1, vec![], 0),
        &["http://127.0.0.1:1".into()],
        "/test",
    )
    .unwrap();
    let err = admin::apply(
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
    let text = std::fs::read_to_string(repo("tests/fixtures/kong/meta.lua")).unwrap();
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
        repo("tests/fixtures/kong/meta.lua"),
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
        println!("kong is installed here: the missing-kong start check is skipped");
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

#[test]
fn kong_case_files_parse_and_render() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(repo("suites/kong")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let case = doc["case"].as_table().unwrap();
        let name = case["name"].as_str().unwrap().to_string();
        assert_eq!(path.file_stem().unwrap().to_str().unwrap(), name);
        assert_eq!(case["gateway"].as_str(), Some("kong"));
        assert!(
            case["upstream"]
                .as_str()
                .unwrap()
                .contains("location = /test")
        );
        let e: Entities = case["entities"].clone().try_into().unwrap();
        let settings = case["gateway_settings"].as_table().unwrap();
        KongSettings::from_table(settings).unwrap();
        let load_path = case["load"]["path"].as_str().unwrap();
        let route = load_path.split('?').next().unwrap();
        assert!(
            e.route_paths().iter().any(|p| p == route),
            "{name}: {route}"
        );
        let doc = declarative::document(&e, &["http://127.0.0.1:18088".into()], "/test").unwrap();
        let routes: usize = doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["routes"].as_array().unwrap().len())
            .sum();
        match name.as_str() {
            "many-routes" => assert_eq!(routes, 100),
            "key-auth" => {
                assert_eq!(doc["consumers"].as_array().unwrap().len(), 100);
                assert!(load_path.contains("apikey=key-1"));
            }
            "rate-limiting" => assert_eq!(e.plugins[0].name, "rate-limiting"),
            _ => {}
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        ["key-auth", "many-routes", "rate-limiting", "simple-proxy"]
    );
}

// ---------------------------------------------------------------- live Kong

/// Which Kong the live test runs against, or why it is skipped. It runs on its own wherever a
/// Kong is found — `PERFLAB_KONG_PREFIX` (a Kong built from source) or `kong` on `PATH` — so a
/// machine with Kong runs it in `cargo test`; `PERFLAB_KONG_LIVE=1` demands it (a missing Kong
/// then fails the test) and `PERFLAB_KONG_LIVE=0` turns it off.
fn live_kong(host: &dyn Host) -> Result<String, String> {
    let live = std::env::var("PERFLAB_KONG_LIVE").unwrap_or_default();
    if live == "0" {
        return Err("PERFLAB_KONG_LIVE=0".into());
    }
    let found = match std::env::var("PERFLAB_KONG_PREFIX") {
        Ok(p) if !p.trim().is_empty() => {
            let kong = Path::new(p.trim()).join("bin/kong");
            assert!(
                kong.is_file(),
                "PERFLAB_KONG_PREFIX={p}, but {} does not exist",
                kong.display()
            );
            Some(format!("{} (PERFLAB_KONG_PREFIX)", kong.display()))
        }
        _ => host.which("kong").map(|k| format!("{k} (on PATH)")),
    };
    match found {
        Some(k) => Ok(k),
        None if live == "1" => {
            panic!("PERFLAB_KONG_LIVE=1 but no Kong: set PERFLAB_KONG_PREFIX or put kong on PATH")
        }
        None => Err("no Kong here (neither PERFLAB_KONG_PREFIX nor `kong` on PATH)".into()),
    }
}

#[test]
fn live_kong_in_every_mode() {
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let host = local(tmp.path());
    match live_kong(host.as_ref()) {
        Ok(k) => println!("live Kong test against {k}"),
        Err(why) => {
            println!("SKIPPED live Kong test: {why}");
            return;
        }
    }
    let up_dir = tmp.path().join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let (mut upstream, up_port) =
        start_nginx(&host, &up_dir, r#"location = /test { return 200 "ok"; }"#)
            .expect("nginx for the upstream");
    let uris = vec![format!("http://127.0.0.1:{up_port}")];
    let key_auth = Plugin {
        name: "key-auth".into(),
        config: serde_json::Map::new(),
    };
    let e = entities(2, 2, vec![key_auth], 1);
    let adapter = KongAdapter::new();
    let only: Option<String> = std::env::var("PERFLAB_KONG_LIVE_MODES").ok();
    for (mode, data_planes) in [
        ("dbless", 1),
        ("traditional", 1),
        ("hybrid", 1),
        ("hybrid", 3),
    ] {
        let label = format!("{mode}/{data_planes}");
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|m| m == label || m == mode))
        {
            continue;
        }
        let s = settings(&format!("mode = \"{mode}\"\ndata_planes = {data_planes}"));
        // As the session does: as many consecutive free ports as the adapter listens on.
        let n = adapter.ports_needed(&s);
        let base = perflab::session::pick_ports(host.as_ref(), n, 38000).unwrap();
        let ports = (base, base + 1);
        let prefix = tmp.path().join(format!("{mode}-{data_planes}"));
        let c = ctx(&host, &prefix, &uris, &e, "current", None, &s, ports);
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
        let pid = gw.proc.pid();
        adapter.stop(&mut gw).unwrap();
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
        repo("tests/fixtures/kong/meta.lua"),
        wt.join("kong/meta.lua"),
    )
    .unwrap();
    let text = std::fs::read_to_string(wt.join("kong/meta.lua")).unwrap();
    let base = meta::parse_meta_lua(&text).unwrap().base_version();
    assert_eq!(
        image("git:main", Some(&wt), &plain, None),
        Some((release_image(&base), false))
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
