//! The PostgreSQL role against the real PostgreSQL server binaries of this machine: start on a
//! free loopback port in a temp dir, a fixture schema shaped like Kong's `services` table, dump,
//! restore with and without the service patch, stop, and no process of ours left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use perflab::host::{Host, LocalHost};
use perflab::role::postgres::{PostgresOptions, start_postgres};

use crate::util::free_port;

/// Kong's `services` columns (kong/db/migrations/core/000_base.lua plus later migrations'
/// `tags`/`ca_certificates`-free subset) with two rows.
const SCHEMA: &str = r#"
CREATE TABLE services (
  id uuid PRIMARY KEY,
  created_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP(0),
  updated_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP(0),
  name text UNIQUE,
  retries bigint,
  protocol text,
  host text,
  port bigint,
  path text,
  connect_timeout bigint,
  write_timeout bigint,
  read_timeout bigint
);
INSERT INTO services (id, name, retries, protocol, host, port, path, connect_timeout, write_timeout, read_timeout) VALUES
  ('6d9a6e3c-6f1a-4f0e-9d8b-000000000001', 's1', 5, 'https', 'example.invalid', 443, '/test', 60000, 60000, 60000),
  ('6d9a6e3c-6f1a-4f0e-9d8b-000000000002', 's2', 5, 'grpc', 'other.invalid', 9000, NULL, 60000, 60000, 60000);
"#;

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purposes; read the state letter after the comm field.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

fn group_members(pgid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        if let Ok(s) = std::fs::read_to_string(e.path().join("stat"))
            && let Some((_, rest)) = s.rsplit_once(')')
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // fields after comm: state ppid pgrp
            if f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" {
                v.push(pid);
            }
        }
    }
    v
}

fn rows(pg: &perflab::role::postgres::Postgres) -> String {
    pg.psql("SELECT name, protocol, host, port, coalesce(path, '-') FROM services ORDER BY name")
        .unwrap()
}

#[test]
fn postgres_starts_dumps_restores_patches_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    // PostgreSQL runs as `postgres` when we are root: it must be able to reach the dir.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let host: Arc<dyn Host> = Arc::new(LocalHost::new("local", tmp.path()).unwrap());
    let port = free_port();
    let opts = PostgresOptions {
        port,
        user: "kong".into(),
        database: "kong_tests".into(),
        version_bin_dir: None,
        password: None,
    };
    let mut pg = start_postgres(host.clone(), &tmp.path().join("pg"), opts).unwrap();
    let pid = pg.pid();
    assert!(alive(pid), "postmaster {pid} should run");
    assert_eq!(
        pg.dsn(),
        format!("postgresql://kong@127.0.0.1:{port}/kong_tests")
    );
    assert_eq!(pg.psql("SELECT current_user").unwrap().trim(), "kong");

    pg.psql(SCHEMA).unwrap();
    let original = rows(&pg);
    assert_eq!(
        original.trim(),
        "s1|https|example.invalid|443|/test\ns2|grpc|other.invalid|9000|-"
    );

    let dump = tmp.path().join("out/dump.sql");
    pg.save_pgdump(&dump).unwrap();
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("CREATE TABLE public.services"), "{text}");

    // The server's version decides the DROP DATABASE form a full restore uses (FORCE from 13).
    let version = pg.server_version_num().unwrap();
    assert!(version >= 100000, "{version}");
    assert_eq!(
        perflab::role::postgres::drop_database_sql("\"d\"", version).ends_with("WITH (FORCE)"),
        version >= 130000
    );

    // Change the data, then restore without patching: the dump's rows come back as they were.
    pg.psql("DELETE FROM services WHERE name = 's2'; UPDATE services SET port = 1")
        .unwrap();
    pg.load_pgdump(&dump, true, None).unwrap();
    assert_eq!(rows(&pg), original);

    // Restore with the patch: every service points at the lab's upstream, paths kept.
    pg.load_pgdump(&dump, false, Some(("127.0.0.1", 18088)))
        .unwrap();
    assert_eq!(
        rows(&pg).trim(),
        "s1|http|127.0.0.1|18088|/test\ns2|http|127.0.0.1|18088|-"
    );

    // Patching needs an upstream.
    let err = pg.load_pgdump(&dump, false, None).unwrap_err();
    assert!(err.to_string().contains("upstream"), "{err}");

    // A data-only dump in Kong's framework style loads into the existing schema.
    let data_only = tmp.path().join("data-only.sql");
    std::fs::write(
        &data_only,
        "TRUNCATE services CASCADE;\nINSERT INTO services (id, name, protocol, host, port, path) VALUES \
         ('6d9a6e3c-6f1a-4f0e-9d8b-000000000009', 'dump-svc', 'http', '172.17.0.15', 18088, '/test');\n",
    )
    .unwrap();
    pg.load_pgdump(&data_only, false, Some(("127.0.0.2", 8088)))
        .unwrap();
    assert_eq!(rows(&pg).trim(), "dump-svc|http|127.0.0.2|8088|/test");

    // A broken SQL statement reports PostgreSQL's own message.
    let err = pg.psql("SELECT * FROM no_such_table").unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");

    pg.stop().unwrap();
    assert!(!alive(pid), "postmaster {pid} still running");
    assert!(
        group_members(pid).is_empty(),
        "processes of group {pid} left"
    );
    pg.stop().unwrap(); // twice is fine
}

#[test]
fn a_busy_port_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let host: Arc<dyn Host> = Arc::new(LocalHost::new("local", tmp.path()).unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let opts = PostgresOptions {
        port,
        ..PostgresOptions::default()
    };
    let err = start_postgres(host, Path::new(&tmp.path().join("pg")), opts).unwrap_err();
    assert!(
        matches!(err, perflab::Error::PortInUse { port: p, .. } if p == port),
        "{err}"
    );
}

/// With a password (always on a non-loopback address; Kong's adapter always asks for one), TCP
/// logins need it (scram-sha-256): psql of the role connects through its 0600 password file,
/// a client without it is refused, and initdb's password file is gone.
#[test]
fn a_password_is_required_over_tcp_and_kept_private() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let host: Arc<dyn Host> = Arc::new(LocalHost::new("local", tmp.path()).unwrap());
    let password = perflab::role::postgres::generate_password().unwrap();
    assert_eq!(password.len(), 32);
    let opts = PostgresOptions {
        port: free_port(),
        password: Some(password.clone()),
        ..PostgresOptions::default()
    };
    let dir = tmp.path().join("pg");
    let mut pg = start_postgres(host.clone(), &dir, opts.clone()).unwrap();
    assert_eq!(pg.password(), Some(password.as_str()));
    assert_eq!(pg.psql("SELECT current_user").unwrap().trim(), "kong");
    let mode = std::fs::metadata(dir.join("pgpass"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "pgpass mode {mode:o}");
    assert!(
        !dir.join("pwfile").exists(),
        "initdb's password file was kept"
    );
    let hba = std::fs::read_to_string(dir.join("pg_hba.conf")).unwrap();
    assert!(hba.contains("127.0.0.1/32 scram-sha-256"), "{hba}");
    assert!(!hba.contains("samenet trust"), "{hba}");
    // The same client, without the password file, over TCP.
    let bin = std::process::Command::new("sh")
        .arg("-c")
        .arg("command -v psql || ls -d /usr/lib/postgresql/*/bin/psql | tail -n1")
        .output()
        .unwrap();
    let psql = String::from_utf8_lossy(&bin.stdout).trim().to_string();
    let denied = std::process::Command::new(&psql)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &opts.port.to_string(),
            "-U",
            "kong",
            "-d",
            "kong_tests",
        ])
        .args(["-w", "-X", "-c", "SELECT 1"])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        !denied.status.success(),
        "a login without the password was let in"
    );
    let msg = String::from_utf8_lossy(&denied.stderr);
    assert!(msg.contains("password"), "{msg}");
    pg.stop().unwrap();
}
