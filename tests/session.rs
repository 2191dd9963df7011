//! The session API used as a library, the way a user's own Rust program would: Kong's verbs
//! against real nginx, wrk and PostgreSQL on the local driver.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use perflab::driver::DriverOptions;
use perflab::role::load::wrk::LoadOptions;
use perflab::session::Session;

fn local_session(dir: &std::path::Path) -> Session {
    let mut s = Session::new();
    s.set_log_level("warn").unwrap();
    s.set_retry_count(1);
    s.cooldown.max_wait = Duration::ZERO;
    let mut opts = DriverOptions::new();
    opts.insert("dir".into(), dir.join("lab").display().to_string());
    s.use_driver("local", &opts).unwrap();
    s.setup().unwrap();
    s
}

#[test]
fn kong_verbs_drive_a_real_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = local_session(tmp.path());
    assert!(
        s.start_load(&LoadOptions::default()).is_err(),
        "load before an upstream is refused"
    );
    let uri = s
        .start_upstream("location / { return 200 \"hi\\n\"; }")
        .unwrap();
    assert!(uri.starts_with("http://127.0.0.1:"));
    let proxy = s
        .start_gateway(
            "nginx",
            "current",
            &Default::default(),
            &Default::default(),
            "default",
        )
        .unwrap();
    assert!(s.get_admin_uri(None).is_err(), "nginx has no admin API");
    let load = LoadOptions {
        connections: 10,
        threads: 1,
        duration: 1.0,
        ..Default::default()
    };
    s.start_load(&load).unwrap();
    assert!(s.start_load(&load).is_err(), "only one load at a time");
    let m = s.wait_result(Duration::from_secs(30)).unwrap();
    assert!(m.outcome.result.requests > 0);
    assert!(m.outcome.command.contains(&proxy));
    assert!(m.cpu.gateway_s.unwrap() > 0.0 && m.rps_per_gateway_cpu_s.unwrap() > 0.0);
    let rec =
        perflab::session::run_record(&m, "api", "c", "nginx", "current", "", 1, 1, 0.0, "local");
    let combined = s.combine_results(&[&rec, &rec]).unwrap();
    assert_eq!(combined.runs, 2);
    assert_eq!(combined.rps.mean, m.outcome.result.rps);
    let logs = s.save_error_log(&tmp.path().join("error.log")).unwrap();
    assert_eq!(logs.len(), 1);
    assert!(
        s.wait_result(Duration::from_secs(1)).is_err(),
        "no load running"
    );
    s.teardown(false).unwrap();
    assert!(
        !tmp.path().join("lab").exists(),
        "teardown removes the lab's files"
    );
}

#[test]
fn pgdump_save_and_load_patch_services_to_the_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    // PostgreSQL runs as its own user: it must be able to reach the lab directory.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let mut s = local_session(tmp.path());
    let upstream = s.start_upstream("").unwrap();
    let dsn = s.start_postgres().unwrap();
    assert!(dsn.starts_with("postgresql://"), "{dsn}");
    let psql = |sql: &str| {
        let out = std::process::Command::new("psql")
            .args([dsn.as_str(), "-XAtqc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    psql(
        "CREATE TABLE services (id uuid PRIMARY KEY, name text, host text, port integer, protocol text, path text)",
    );
    psql(
        "INSERT INTO services VALUES ('7b8e5a4c-0000-4000-8000-000000000001', 's1', 'example.invalid', 443, 'https', '/test')",
    );
    let dump = tmp.path().join("kong.sql");
    s.save_pgdump(&dump).unwrap();
    assert!(
        std::fs::read_to_string(&dump)
            .unwrap()
            .contains("example.invalid")
    );
    psql("DELETE FROM services");
    s.load_pgdump(&dump, true).unwrap();
    assert_eq!(
        psql("SELECT host || ':' || port FROM services"),
        "example.invalid:443",
        "not patched when told not to"
    );
    s.load_pgdump(&dump, false).unwrap();
    let expect = upstream.trim_start_matches("http://");
    assert_eq!(
        psql("SELECT host || ':' || port || ' ' || protocol FROM services"),
        format!("{expect} http")
    );
    s.teardown(false).unwrap();
}
