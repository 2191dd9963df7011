//! The Kong adapter against real programs: the Admin API path and the case files' Lua scripts
//! against nginx and wrk, the lab's database lifecycle and SQL seeding on a real PostgreSQL
//! (with a recorded Kong 3.9.3 schema), the errors a missing Kong gives, and live tests that
//! start real Kong in every mode wherever a Kong is found (`PERFLAB_KONG_PREFIX`, or `kong` on
//! PATH; see `live_kong`; `PERFLAB_KONG_LIVE_MODES=dbless,hybrid/3` runs some modes only). The
//! pure functions (configuration, plans, ports, documents, versions) are unit-tested next to
//! their code in src/role/gateway/kong/.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use perflab::during::ActionKind;
use perflab::entities::{Entities, Plugin};
use perflab::host::{Cmd, Host, LocalHost};
use perflab::role::gateway::kong::{
    KongAdapter, KongLocation, KongSettings, Mode, admin, declarative, plan, resolve_binary,
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

// ---------------------------------------------------------------- kong.conf

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

// ---------------------------------------------------------------- declarative + admin

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

// ---------------------------------------------------------------- versions

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

/// The `"METHOD /path"` requests of an nginx `combined` access log.
fn logged_requests(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| {
            let mut r = l.split('"').nth(1)?.split_whitespace();
            Some((r.next()?.to_string(), r.next()?.to_string()))
        })
        .collect()
}

/// Kong's CRUD scenario: SQL-seeded, Admin API load, Kong's counts; its script sends Kong's 12
/// requests in turn to ids the seed creates (run by wrk against nginx, which logs them), with
/// the deletes of seeded entities never on an id a get or an update of the run uses.
fn check_crud_case(
    case: &perflab::suite::Case,
    s: &KongSettings,
    wrk: Option<&str>,
    served: Option<(&Path, u16)>,
    tmp: &Path,
) {
    use perflab::role::gateway::kong::{Readiness, Seed};
    use perflab::role::load::wrk::LoadPort;
    let name = case.name.as_str();
    let e = &case.entities;
    let n = if name == "core-entities-crud" {
        100_000
    } else {
        10_000
    };
    assert_eq!(
        (e.services, e.routes_per_service, e.consumers, e.upstreams),
        (n, 1, n, n),
        "{name}"
    );
    assert_eq!(e.plugins[0].name, "basic-auth");
    assert!(e.credentials.is_empty());
    assert_eq!(
        (s.mode, s.seed, s.readiness),
        (Mode::Traditional, Seed::Sql, Readiness::Admin)
    );
    assert!(
        !s.per_case,
        "{name}: Kong restarted and the data fed again before every run"
    );
    assert_eq!(case.load.port, LoadPort::Admin);
    assert_eq!(
        case.load.warmup, 0.0,
        "{name}: a warm-up would change the data"
    );
    let script = case.load.script.as_ref().unwrap();
    assert!(script.contains(&format!("local N = {n}\n")), "{name}");
    let (Some(wrk), Some((access, port))) = (wrk, served) else {
        panic!("wrk and nginx are needed to run {name}'s script (scripts/install-deps.sh)");
    };
    std::fs::write(access, b"").unwrap();
    let script_path = tmp.join(format!("{name}.lua"));
    std::fs::write(&script_path, script).unwrap();
    let out = Cmd::new(wrk).args([
        "-t5",
        "-c20",
        "-d1s",
        "-s",
        script_path.to_str().unwrap(),
        &format!("http://127.0.0.1:{port}"),
    ]);
    let out = local(tmp).run(&out, Duration::from_secs(30)).unwrap();
    assert!(out.success(), "{name}: {}", out.combined_text());
    let reqs = logged_requests(&std::fs::read_to_string(access).unwrap());
    assert!(reqs.len() > 240, "{name}: {} requests", reqs.len());
    let id = |p: &str, prefix: &str| -> u32 {
        p.rsplit(prefix)
            .next()
            .unwrap()
            .trim_end_matches("r1")
            .parse()
            .unwrap()
    };
    let mut kinds = std::collections::BTreeSet::new();
    let (mut read, mut deleted) = (std::collections::BTreeSet::new(), Vec::new());
    // (kind, id) pairs: a route and a consumer may share a number.
    for (method, path) in &reqs {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let kind = match (method.as_str(), parts.as_slice()) {
            ("POST", ["services"]) => "service",
            ("POST", ["consumers"]) => "consumer",
            ("POST", ["services", _, "routes"]) => "route",
            ("GET" | "PUT", ["services", _]) => "service",
            ("GET" | "PUT", ["services", s, "routes", r]) => {
                assert_eq!(format!("{s}r1"), *r, "{name}: {path}");
                read.insert(("route", id(s, "s")));
                "route"
            }
            ("GET" | "PUT", ["consumers", c]) => {
                read.insert(("consumer", id(c, "consumer-")));
                "consumer"
            }
            ("DELETE", ["services", p]) if p.starts_with("perf_") => "service",
            ("DELETE", ["services", s, "routes", r]) => {
                assert_eq!(format!("{s}r1"), *r, "{name}: {path}");
                deleted.push(("route", id(s, "s")));
                "route"
            }
            ("DELETE", ["consumers", c]) => {
                deleted.push(("consumer", id(c, "consumer-")));
                "consumer"
            }
            _ => panic!("{name}: unexpected request {method} {path}"),
        };
        kinds.insert((method.clone(), kind));
    }
    assert_eq!(kinds.len(), 12, "{name}: Kong's 12 requests: {kinds:?}");
    for d in &deleted {
        assert!((1..=n).contains(&d.1), "{name}: deletes seeded {d:?}");
        assert!(!read.contains(d), "{name}: {d:?} is both read and deleted");
    }
    assert!(read.iter().all(|(_, i)| (1..=n).contains(i)), "{name}");
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
            "core-entities-crud-quick",
            "core-entities-crud",
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
        // Kong's defaults, and Kong's upstream location (the upstream-lock and CRUD scenarios
        // ran 60 s, the CRUD one once).
        let (seconds, repeats) = match name {
            "upstream-lock" => (60.0, 3),
            "core-entities-crud" => (60.0, 1),
            "core-entities-crud-quick" => (10.0, 1),
            _ => (30.0, 3),
        };
        assert_eq!(
            (
                case.load.connections,
                case.load.threads,
                case.load.duration,
                case.repeats
            ),
            (100, 5, seconds, repeats),
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
        if name.starts_with("core-entities-crud") {
            let served = served.as_ref().map(|(_, port)| (access.as_path(), *port));
            check_crud_case(case, &s, wrk.as_deref(), served, tmp.path());
            continue;
        }
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
                assert_eq!(
                    s.seed.resolve(reqs.len()),
                    perflab::role::gateway::kong::Seed::Import,
                    "{name}: seeded by import"
                );
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
    // The lab's one PostgreSQL, as the session starts it: every database-backed mode below
    // uses (and empties) the same database in it.
    let pg = perflab::role::postgres::start_postgres(
        host.clone(),
        &tmp.path().join("pg"),
        perflab::role::postgres::PostgresOptions {
            port: free_port(),
            password: Some(perflab::role::postgres::generate_password().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    for (mode, data_planes, seed) in [
        ("dbless", 1, "auto"),
        ("traditional", 1, "auto"),
        // Bulk seeding: `kong config db_import` before Kong starts, no Admin API calls.
        ("traditional", 1, "import"),
        // Kong's CRUD spec's way: rows written by SQL.
        ("traditional", 1, "sql"),
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
        c.postgres = Some(&pg);
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
        // Kong's 100,000-entity CRUD case runs when asked for by name (its quick variant
        // always runs).
        if stem == "core-entities-crud" && only.is_none() {
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
        // The CRUD cases restart Kong before every run, as Kong's spec did; the others run
        // their repeats against one Kong.
        if case.starts_with("core-entities-crud") {
            assert_ne!(runs[0], runs[1], "{case}: a Kong per run");
        } else {
            assert_eq!(
                runs[0], runs[1],
                "{case}: both repeats against the same Kong"
            );
        }
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
        let skip = match driver {
            "docker" => docker_engine_answers().err(),
            "terraform" if !is_root => Some("the netns lab needs root".to_string()),
            "terraform" => host
                .which("terraform")
                .is_none()
                .then(|| "terraform is not installed".to_string()),
            _ => None,
        };
        if let Some(why) = skip {
            println!("SKIPPED {driver}: {why}");
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

// ---------------------------------------------------------------- the lab's database (fix 11)

/// The count of rows of `table` in `database`.
fn rows(pg: &perflab::role::postgres::Postgres, database: &str, table: &str) -> u64 {
    pg.psql_on(database, &format!("SELECT count(*) FROM {table}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Fix 11 and `seed = "sql"` on a real PostgreSQL, without Kong: a Kong 3.9.3 database as Kong's
/// `migrations bootstrap` left it (a recorded dump) gets a case's entities by SQL, a start's
/// plan points Kong at it, a reset empties the entity tables but keeps Kong's migration state
/// and default workspace, and a second seed (the next start of the case, or the next case)
/// writes the same names again without a conflict.
#[test]
fn lab_database_is_made_once_reset_between_starts_and_seeded_by_sql() {
    use perflab::entities::{Credential, Scope};
    use perflab::role::gateway::kong::{lab_database, sql_seed};
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let host = local(tmp.path());
    let name = lab_database::database_name("3.9.3", "default");
    let opts = perflab::role::postgres::PostgresOptions {
        port: free_port(),
        database: name.clone(),
        password: Some(perflab::role::postgres::generate_password().unwrap()),
        ..Default::default()
    };
    let mut pg =
        perflab::role::postgres::start_postgres(host.clone(), &tmp.path().join("pg"), opts)
            .unwrap();
    // A database per Kong schema: made once, found the second time.
    assert!(
        !lab_database::ensure(&pg, &name).unwrap(),
        "start_postgres made it"
    );
    let other = lab_database::database_name("3.8.1", "default");
    assert!(lab_database::ensure(&pg, &other).unwrap());
    assert!(!lab_database::ensure(&pg, &other).unwrap());
    pg.load_pgdump(
        &repo_path("tests/fixtures/kong/kong-3.9.3-bootstrap.sql"),
        true,
        None,
    )
    .unwrap();
    let migrations = rows(&pg, &name, "schema_meta");
    assert!(migrations > 10, "{migrations} migrated subsystems");

    let e = Entities {
        services: 40,
        routes_per_service: 3,
        consumers: 25,
        credentials: vec![Credential::KeyAuth],
        upstreams: 4,
        targets_per_upstream: 2,
        target_weight_step: 5,
        plugins: vec![
            Plugin {
                name: "key-auth".into(),
                ..plugin_defaults()
            },
            Plugin {
                name: "rate-limiting".into(),
                config: serde_json::json!({"second": 100000})
                    .as_object()
                    .unwrap()
                    .clone(),
                scope: Scope::Global,
                only: vec![],
            },
            Plugin {
                name: "correlation-id".into(),
                scope: Scope::Route,
                ..plugin_defaults()
            },
        ],
    };
    let uris = vec![
        "http://127.0.0.1:18088".to_string(),
        "http://127.0.0.1:18089".to_string(),
    ];
    let seed = |pg: &perflab::role::postgres::Postgres| {
        for s in sql_seed::statements(&e, &uris, "/test").unwrap() {
            pg.psql_on(&name, &s).unwrap();
        }
    };
    seed(&pg);
    let counts = |pg: &perflab::role::postgres::Postgres| {
        [
            "services",
            "routes",
            "consumers",
            "keyauth_credentials",
            "upstreams",
            "targets",
            "plugins",
        ]
        .map(|t| rows(pg, &name, t))
    };
    assert_eq!(counts(&pg), [40, 120, 25, 25, 4, 8, 40 + 1 + 120]);
    // The rows are Kong's: names and paths as the other seeding paths write them, services
    // pointing at the upstreams round-robin, the targets' fixed ids and weights, and the
    // cache keys Kong computes (the targets' as Kong's migration 016_280_to_300 writes them).
    let q = |sql: &str| pg.psql_on(&name, sql).unwrap().trim().to_string();
    assert_eq!(
        q("SELECT host || ':' || port || path FROM services WHERE name = 's2'"),
        "u2:80/test"
    );
    assert_eq!(
        q("SELECT array_to_string(paths, ',') FROM routes WHERE name = 's40r3'"),
        "/s40r3"
    );
    assert_eq!(
        q(
            "SELECT s.name FROM routes r JOIN services s ON s.id = r.service_id WHERE r.name = 's7r2'"
        ),
        "s7"
    );
    assert_eq!(
        q(&format!(
            "SELECT target || ' ' || weight FROM targets WHERE id = '{}'",
            declarative::target_id(3, 2)
        )),
        "127.0.0.1:18089 10"
    );
    assert_eq!(
        q("SELECT count(*) FROM targets WHERE cache_key = \
           CONCAT('targets:', upstream_id, ':', target, '::::', ws_id)"),
        "8"
    );
    assert_eq!(
        q(
            "SELECT k.key FROM keyauth_credentials k JOIN consumers c ON c.id = k.consumer_id \
           WHERE c.username = 'consumer-9'"
        ),
        "key-9"
    );
    let ws = q("SELECT id FROM workspaces WHERE name = 'default'");
    assert_eq!(
        q("SELECT cache_key FROM plugins WHERE name = 'rate-limiting'"),
        format!("plugins:rate-limiting:::::{ws}")
    );
    let s1 = q("SELECT id FROM services WHERE name = 's1'");
    assert_eq!(
        q(&format!(
            "SELECT cache_key FROM plugins WHERE name = 'key-auth' AND service_id = '{s1}'"
        )),
        format!("plugins:key-auth::{s1}:::{ws}")
    );
    assert_eq!(
        q("SELECT config::text FROM plugins WHERE name = 'rate-limiting'"),
        r#"{"second": 100000}"#
    );

    // A start's plan points Kong at the lab's server and its database for this Kong.
    let s = settings("mode = \"hybrid\"");
    let c = GatewayContext {
        postgres: Some(&pg),
        ..ctx(
            &host,
            tmp.path(),
            &uris,
            &e,
            "3.9.3",
            None,
            &s,
            (9000, 9001),
        )
    };
    let p = plan(&c, &[]).unwrap();
    assert_eq!(p.lab_database.as_deref(), Some(name.as_str()));
    let cp = &p.instances[0].conf;
    assert_eq!(cp["pg_host"], "127.0.0.1");
    assert_eq!(cp["pg_port"], pg.port().to_string());
    assert_eq!(cp["pg_database"], name);
    assert_eq!(cp["pg_password"], pg.password().unwrap());
    assert!(
        !p.instances[1].conf.contains_key("pg_host"),
        "data planes have none"
    );

    // Reset: the entities go, Kong's migration state and default workspace stay; the same
    // names can be written again.
    lab_database::reset(&pg, &name).unwrap();
    assert_eq!(counts(&pg), [0; 7]);
    assert_eq!(rows(&pg, &name, "schema_meta"), migrations);
    assert_eq!(q("SELECT id FROM workspaces WHERE name = 'default'"), ws);
    assert_eq!(rows(&pg, &name, "parameters"), 1, "the cluster id stays");
    seed(&pg);
    assert_eq!(counts(&pg), [40, 120, 25, 25, 4, 8, 161]);
    pg.stop().unwrap();
}

/// Fix 11 live: one PostgreSQL serves every Kong of a lab. A traditional Kong seeded by SQL
/// (`seed = "sql"`: key-auth, upstreams and targets that Kong must read and proxy through), then
/// a hybrid control plane with other entities in the same database (emptied in between), with
/// a second Kong instance running beside it in a database of its own; one postmaster all along,
/// stopped by the teardown.
#[test]
fn live_one_postgresql_serves_every_kong_of_the_lab() {
    let _g = load_lock();
    let Some((tmp, _)) = live_lab_mode("live Kong shared database test", Some(0o755)) else {
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
    s.start_upstreams(r#"location = /test { return 200 "ok"; }"#, 2)
        .unwrap();
    let key_auth = Plugin {
        name: "key-auth".into(),
        ..plugin_defaults()
    };
    let sql_case = Entities {
        upstreams: 2,
        targets_per_upstream: 2,
        ..entities(3, 2, vec![key_auth], 2)
    };
    let status = |uri: &str| perflab::http::get_status(uri, Duration::from_secs(5)).unwrap();
    let proxy = s
        .start_gateway_in(
            perflab::role::gateway::GatewayKind::Kong,
            "current",
            None,
            &sql_case,
            &settings("mode = \"traditional\"\nseed = \"sql\""),
            "default",
            1,
        )
        .unwrap();
    assert_eq!(status(&format!("{proxy}/s3r2?apikey=key-2")), 200);
    assert_eq!(status(&format!("{proxy}/s1r1?apikey=key-1")), 200);
    assert_eq!(
        status(&format!("{proxy}/s1r1")),
        401,
        "key-auth read from SQL"
    );
    let pg_pid = s.postgres().expect("the lab's PostgreSQL").pid();
    let version = s
        .gateway("default")
        .unwrap()
        .version_detail
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let db = perflab::role::gateway::kong::lab_database::database_name(&version, "default");
    let count = |s: &perflab::session::Session, db: &str| -> u64 {
        let pg = s.postgres().unwrap();
        pg.psql_on(db, "SELECT count(*) FROM services")
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(count(&s, &db), 3);
    s.stop_gateway().unwrap();

    // The next start (another case) empties the database and seeds its own entities.
    let proxy = s
        .start_gateway_in(
            perflab::role::gateway::GatewayKind::Kong,
            "current",
            None,
            &entities(1, 1, vec![], 0),
            &settings("mode = \"hybrid\"\ndata_planes = 2"),
            "default",
            1,
        )
        .unwrap();
    assert_eq!(status(&format!("{proxy}/s1r1")), 200);
    let other = s
        .start_gateway_in(
            perflab::role::gateway::GatewayKind::Kong,
            "current",
            None,
            &entities(2, 1, vec![], 0),
            &settings("mode = \"traditional\""),
            "other",
            1,
        )
        .unwrap();
    assert_eq!(status(&format!("{other}/s2r1")), 200);
    assert_eq!(
        s.postgres().unwrap().pid(),
        pg_pid,
        "one server for the lab"
    );
    assert_eq!(count(&s, &db), 1, "emptied and seeded again");
    let other_db = perflab::role::gateway::kong::lab_database::database_name(&version, "other");
    assert_eq!(
        count(&s, &other_db),
        2,
        "an instance running beside it has its own"
    );
    let dbs = s
        .postgres()
        .unwrap()
        .psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'kong%'")
        .unwrap();
    println!("databases of the lab's PostgreSQL: {}", dbs.trim());
    s.teardown(false).unwrap();
    assert!(
        !Path::new(&format!("/proc/{pg_pid}")).exists(),
        "the teardown stopped PostgreSQL"
    );
}
