//! The terraform driver against real terraform and real sshd in network namespaces.
//!
//! Needs root, `terraform`, `/usr/sbin/sshd`, `ip`, `nginx`, `curl` and `wrk`. The network rule:
//! every address used here lies in a /16 guarded by an unreachable route (the netns module's
//! 10.231.0.0/16, or this file's own 10.233.0.0/16), and `ip route get` is checked for `via`
//! before any connection.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use perflab::driver::terraform::TerraformDriver;
use perflab::driver::{Driver, DriverOptions, Role};
use perflab::host::{Cmd, HostError};
use perflab::session::set_governor_performance;

use crate::util::{
    PERFLAB, Points, json, key_paths, load_lock, parsable_runs, printed_runs, repo_path,
    result_files, results_folders,
};

const LAB: &str = "tftest";
const OCTET: &str = "231";

fn modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform")
}

fn options(pairs: &[(&str, &str)]) -> DriverOptions {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

fn assert_no_via(addr: &str) {
    let (_, route) = sh(&format!("ip route get {addr}"));
    assert!(
        !route.split_whitespace().any(|w| w == "via"),
        "{addr} would leave through a gateway: {route}"
    );
}

fn keygen(dir: &Path) -> PathBuf {
    let key = dir.join("key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    key
}

/// Destroys the netns lab if a test fails half-way.
struct LabGuard(PathBuf);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if self.0.join("terraform.tfstate").is_file() {
            let rc = self.0.join(".terraformrc");
            let _ = std::fs::write(&rc, b"");
            let _ = Command::new("terraform")
                .args(["destroy", "-auto-approve", "-input=false", "-no-color"])
                .current_dir(&self.0)
                .env("CHECKPOINT_DISABLE", "1")
                .env("TF_IN_AUTOMATION", "1")
                .env("TF_CLI_CONFIG_FILE", &rc)
                .env("TF_VAR_lab_id", LAB)
                .env("TF_VAR_net_octet", OCTET)
                .output();
        }
    }
}

/// True while the process exists and is not a zombie (this machine's init reaps slowly).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn nginx_conf(dir: &Path, addr: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  log_format lab '$remote_addr $request_method $request_uri $content_length';\n  \
         access_log {d}/access.log lab;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  \
         fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n  \
         server {{ listen {addr}:18080; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n"
    )
}

#[test]
fn netns_lab_lifecycle() {
    let _g = load_lock();
    let tmp = tempfile::Builder::new()
        .prefix("pltf")
        .tempdir_in("/tmp")
        .unwrap();
    let state = tmp.path().join("state");
    let _guard = LabGuard(state.clone());
    let modules = modules_dir();
    let opts = options(&[
        ("provider", "netns"),
        ("lab", LAB),
        ("state-dir", state.to_str().unwrap()),
        ("modules-dir", modules.to_str().unwrap()),
        ("var.net_octet", OCTET),
        ("ssh-wait", "20"),
    ]);

    // Apply and connect.
    let mut d = TerraformDriver::new(&opts, "tfrun1").unwrap();
    let t = std::time::Instant::now();
    let outs = d.up().unwrap().clone();
    eprintln!("apply took {:?}", t.elapsed());
    assert!(!d.reused());
    assert!(d.apply_time().is_some());
    assert_eq!(outs.kong.internal_ip, "10.231.1.1");
    assert_eq!(outs.worker.internal_ip, "10.231.1.2");
    assert!(
        !modules.join("netns/terraform.tfstate").exists(),
        "the repo must stay clean"
    );
    for addr in [&outs.kong.ip, &outs.worker.ip, &outs.kong.internal_ip] {
        assert_no_via(addr);
    }
    let sshd_pids: Vec<u32> = ["kong", "worker"]
        .iter()
        .map(|h| {
            std::fs::read_to_string(state.join(format!("lab/sshd-{h}.pid")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    let gw = d.host(Role::Gateway, "default").unwrap();
    let worker = d.host(Role::Worker, "default").unwrap();
    let db = d.host(Role::Database, "default").unwrap();
    assert_eq!(gw.address(), "10.231.1.1");
    assert_eq!(worker.address(), "10.231.1.2");
    assert_eq!(
        db.address(),
        gw.address(),
        "no db machine: the database goes on kong"
    );
    assert_ne!(
        gw.lab_dir(),
        db.lab_dir(),
        "roles on one machine need their own dirs"
    );
    assert_ne!(
        gw.lab_dir(),
        worker.lab_dir(),
        "the netns hosts share a filesystem"
    );

    // run: exit code, separate streams, quoting, each host in its own namespace.
    for (h, ip) in [(&gw, "10.231.1.1"), (&worker, "10.231.1.2")] {
        let out = h
            .run(
                &Cmd::new("sh")
                    .arg("-c")
                    .arg("printf '%s\\n' \"$1\"; echo err >&2; ip -br addr; exit 7")
                    .arg("sh")
                    .arg("a b;$HOME 'q'"),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(out.code, Some(7));
        assert!(
            out.stdout_text().starts_with("a b;$HOME 'q'\n"),
            "{}",
            out.stdout_text()
        );
        assert!(out.stdout_text().contains(ip));
        assert_eq!(out.stderr_text(), "err\n");
    }
    let out = gw
        .run(
            &Cmd::new("pwd").cwd(gw.lab_dir()).env("X", "1"),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(out.stdout_text().trim(), gw.lab_dir().to_str().unwrap());
    match gw.run(&Cmd::new("sleep").arg("10"), Duration::from_secs(1)) {
        Err(HostError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    match gw.run(
        &Cmd::new("no-such-program-perflab"),
        Duration::from_secs(10),
    ) {
        Err(HostError::Spawn { reason, .. }) => assert!(reason.contains("not installed")),
        other => panic!("expected a spawn error, got {other:?}"),
    }
    assert!(gw.which("sh").is_some());

    // Files.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let f = worker.lab_dir().join("sub dir/data.bin");
    worker.write_file(&f, &data).unwrap();
    assert_eq!(worker.read_file(&f).unwrap(), data);
    assert!(matches!(
        gw.read_file(&gw.lab_dir().join("missing")),
        Err(HostError::File { .. })
    ));

    // spawn, running, stop by process group.
    let mut p = gw
        .spawn(
            &Cmd::new("sh").arg("-c").arg("sleep 60 & sleep 60"),
            &gw.lab_dir().join("logs/sleep.log"),
        )
        .unwrap();
    assert!(p.is_running());
    let pgid = gw
        .run(
            &Cmd::new("ps").args(["-o", "pgid=", "-p", &p.pid().to_string()]),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(pgid.stdout_text().trim(), p.pid().to_string());
    p.stop(Duration::from_secs(2)).unwrap();
    assert!(!p.is_running());
    assert_eq!(p.wait_timeout(Duration::from_secs(1)).unwrap(), Some(-15));
    let (_, group) = sh(&format!("ps -o pid= -g {} || true", p.pid()));
    assert!(group.trim().is_empty(), "group left: {group}");

    let mut q = worker
        .spawn(
            &Cmd::new("sh")
                .arg("-c")
                .arg("echo out; echo err >&2; exit 3"),
            &worker.lab_dir().join("q.log"),
        )
        .unwrap();
    assert_eq!(q.wait_timeout(Duration::from_secs(10)).unwrap(), Some(3));
    let log =
        String::from_utf8(worker.read_file(&worker.lab_dir().join("q.log")).unwrap()).unwrap();
    assert!(log.contains("out") && log.contains("err"), "{log}");
    // A handle dropped without a stop kills its group, as on every host.
    let dropped = worker
        .spawn(
            &Cmd::new("sh").arg("-c").arg("sleep 60 & sleep 60"),
            &worker.lab_dir().join("dropped.log"),
        )
        .unwrap();
    let pid = dropped.pid();
    drop(dropped);
    // Zombies do not count: this machine's PID 1 reaps orphans only now and then.
    let (_, group) = sh(&format!(
        "ps -o pid=,stat=,args= -g {pid} | awk '$2 !~ /^Z/' || true"
    ));
    assert!(
        group.trim().is_empty(),
        "a dropped program's group runs on: {group}"
    );
    assert!(
        worker
            .spawn(
                &Cmd::new("no-such-program-perflab"),
                &worker.lab_dir().join("x.log")
            )
            .is_err()
    );

    // A real nginx on kong, reached from the worker over the internal plane.
    let ndir = gw.lab_dir().join("nginx");
    gw.run(
        &Cmd::new("mkdir")
            .arg("-p")
            .arg(ndir.join("tmp").to_str().unwrap()),
        Duration::from_secs(10),
    )
    .unwrap();
    gw.write_file(
        &ndir.join("nginx.conf"),
        nginx_conf(&ndir, &gw.address()).as_bytes(),
    )
    .unwrap();
    let nginx = gw
        .spawn(
            &Cmd::new("nginx")
                .arg("-p")
                .arg(ndir.to_str().unwrap())
                .arg("-c")
                .arg(ndir.join("nginx.conf").to_str().unwrap()),
            &ndir.join("nginx.log"),
        )
        .unwrap();
    let url = format!("http://{}:18080/", gw.address());
    let status =
        perflab::host::poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
            worker
                .http_status(&url, Duration::from_secs(2))
                .ok()
                .filter(|s| *s == 200)
        });
    assert_eq!(status, Some(200), "nginx did not answer from the worker");
    let wrk = worker
        .run(
            &Cmd::new("wrk").args(["-t1", "-c2", "-d1s", &url]),
            Duration::from_secs(20),
        )
        .unwrap();
    assert!(
        wrk.success() && wrk.stdout_text().contains("Requests/sec"),
        "{}",
        wrk.combined_text()
    );
    // Admin API calls go from inside the lab: Kong's entity requests, sent through the worker
    // host to an HTTP server on the kong host's internal address, which the controller cannot
    // reach (a direct call from here fails). The server's access log names the worker as the
    // client of every request.
    let admin = format!("http://{}:18080", gw.address());
    assert!(
        perflab::http::request("GET", &url, None, Duration::from_secs(2)).is_err(),
        "the controller reached the internal plane"
    );
    let entities = perflab::entities::Entities {
        services: 2,
        routes_per_service: 1,
        ..Default::default()
    };
    let doc = perflab::role::gateway::kong::declarative::document(
        &entities,
        &["http://10.231.1.2:1".to_string()],
        perflab::role::gateway::kong::declarative::DEFAULT_SERVICE_PATH,
    )
    .unwrap();
    let reqs = perflab::role::gateway::kong::admin::requests(&doc);
    perflab::role::gateway::kong::admin::apply(
        worker.as_ref(),
        &admin,
        &reqs,
        Duration::from_secs(10),
    )
    .unwrap();
    let reply = worker
        .http_request(
            &perflab::host::HttpCall::json(
                "PATCH",
                format!("{admin}/upstreams/u1"),
                Some(b"{}".to_vec()),
            ),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok\n"[..]));
    assert!(reply.duration_s > 0.0 && reply.duration_s < 5.0);
    let log = String::from_utf8(gw.read_file(&ndir.join("access.log")).unwrap()).unwrap();
    let sent: Vec<&str> = log.lines().filter(|l| !l.contains(" GET ")).collect();
    assert_eq!(sent.len(), reqs.len() + 1, "{log}");
    for (line, r) in sent.iter().zip(&reqs) {
        assert!(
            line.starts_with(&format!("10.231.1.2 {} {} ", r.method, r.path)),
            "{line} (expected {} {} from the worker)",
            r.method,
            r.path
        );
    }
    assert!(
        sent.last()
            .unwrap()
            .starts_with("10.231.1.2 PATCH /upstreams/u1 2"),
        "{log}"
    );

    // CPU accounting over SSH: nginx's process group is seen on the kong host.
    let snap = gw.proc_snapshot().unwrap();
    assert!(snap.machine.total_s > 0.0);
    assert_eq!(
        snap.procs.get(&nginx.pid()).map(|p| p.pgrp),
        Some(nginx.pid())
    );
    // From the root namespace the internal plane is unreachable (guard route, no via).
    assert!(!sh("ip route get 10.231.1.1").0);

    // The governor record (the session's machine preparation, written against any host).
    let g = set_governor_performance(gw.as_ref());
    assert!(["set", "already", "unavailable", "not-permitted"].contains(&g.status.as_str()));

    let desc = d.describe();
    assert_eq!(desc["provider"], "netns");
    assert_eq!(desc["infrastructure"], "applied");
    assert_eq!(desc["toolchain"], "host packages");
    assert_eq!(desc["machines"]["kong"]["internal_ip"], "10.231.1.1");

    // Default teardown: the lab's processes stop (by pid), its dirs go, the machines stay.
    let nginx_pid = nginx.pid();
    assert!(pid_alive(nginx_pid));
    d.teardown(false).unwrap();
    assert!(!pid_alive(nginx_pid), "nginx survived teardown");
    assert!(!Path::new("/tmp/perflab-tfrun1").exists());
    let (_, ns) = sh("ip netns list");
    assert!(
        ns.contains("perflab-tftest-kong") && ns.contains("perflab-tftest-worker"),
        "{ns}"
    );

    // A second invocation reuses the machines: no new apply.
    let mut d2 = TerraformDriver::new(&opts, "tfrun2").unwrap();
    let w2 = d2.host(Role::Worker, "default").unwrap();
    assert!(d2.reused());
    assert!(d2.apply_time().is_none());
    assert_eq!(d2.describe()["infrastructure"], "reused");
    assert!(
        w2.run(&Cmd::new("true"), Duration::from_secs(10))
            .unwrap()
            .success()
    );

    // A wrong key is refused with ssh's reason.
    let keydir = tempfile::tempdir().unwrap();
    let wrong = keygen(keydir.path());
    let byo_state = tmp.path().join("byo");
    let mut byo = TerraformDriver::new(
        &options(&[
            ("provider", "bring-your-own"),
            ("state-dir", byo_state.to_str().unwrap()),
            ("modules-dir", modules.to_str().unwrap()),
            ("var.kong_ip", "10.231.0.2"),
            ("var.worker_ip", "10.231.0.6"),
            ("var.ssh_key_path", wrong.to_str().unwrap()),
            ("host-keys", "no"),
            ("ssh-wait", "1"),
        ]),
        "tfrun3",
    )
    .unwrap();
    assert_no_via("10.231.0.2");
    let e = byo
        .host(Role::Gateway, "default")
        .err()
        .expect("wrong key")
        .to_string();
    assert!(
        e.contains("10.231.0.2") && e.contains("ermission denied"),
        "{e}"
    );
    byo.teardown(true).unwrap();

    // Full teardown: no namespace, veth, guard route or sshd is left.
    let t = std::time::Instant::now();
    d2.teardown(true).unwrap();
    eprintln!("destroy took {:?}", t.elapsed());
    let (_, ns) = sh("ip netns list");
    assert!(!ns.contains("perflab-tftest"), "{ns}");
    let tag = &sha1_hex(LAB)[..6];
    let (_, links) = sh("ip -o link");
    assert!(!links.contains(&format!("pl{tag}")), "{links}");
    let (_, routes) = sh("ip route");
    assert!(!routes.contains("10.231."), "{routes}");
    for pid in sshd_pids {
        assert!(!pid_alive(pid), "sshd {pid} survived destroy");
    }
    assert!(!state.join("id_rsa").exists());
}

/// The veth tag is `substr(sha1(lab_id), 0, 6)` in the module; `sha1sum` gives the same.
fn sha1_hex(s: &str) -> String {
    let (_, out) = sh(&format!("printf %s {s} | sha1sum"));
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
fn bring_your_own_without_variables_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = TerraformDriver::new(
        &options(&[
            ("provider", "bring-your-own"),
            ("state-dir", tmp.path().to_str().unwrap()),
            ("modules-dir", modules_dir().to_str().unwrap()),
        ]),
        "tfbyo",
    )
    .unwrap();
    let e = d
        .host(Role::Worker, "default")
        .err()
        .expect("missing variables");
    assert!(matches!(e, perflab::Error::Usage(_)), "{e:?}");
    let e = e.to_string();
    for needed in [
        "kong_ip",
        "worker_ip",
        "ssh_key_path",
        "PERF_TEST_BYO_KONG_IP",
        "TF_VAR_worker_ip",
    ] {
        assert!(e.contains(needed), "{needed} missing in: {e}");
    }
}

/// Guards 10.233.0.0/16 for the unreachable-host test, and removes the route afterwards.
struct OwnGuardRoute;

impl OwnGuardRoute {
    fn add() -> Self {
        let (ok, out) = sh("ip route add unreachable 10.233.0.0/16");
        assert!(ok || out.contains("File exists"), "{out}");
        OwnGuardRoute
    }
}

impl Drop for OwnGuardRoute {
    fn drop(&mut self) {
        sh("ip route del unreachable 10.233.0.0/16");
    }
}

#[test]
fn unreachable_host_is_a_clear_error() {
    let _route = OwnGuardRoute::add();
    assert_no_via("10.233.0.2");
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path());
    let mut d = TerraformDriver::new(
        &options(&[
            ("provider", "bring-your-own"),
            ("state-dir", tmp.path().join("state").to_str().unwrap()),
            ("modules-dir", modules_dir().to_str().unwrap()),
            ("var.kong_ip", "10.233.0.2"),
            ("var.worker_ip", "10.233.0.6"),
            ("var.ssh_key_path", key.to_str().unwrap()),
            ("ssh-wait", "1"),
            ("ssh-connect-timeout", "1"),
        ]),
        "tfunreach",
    )
    .unwrap();
    let e = d
        .host(Role::Gateway, "default")
        .err()
        .expect("unreachable")
        .to_string();
    assert!(e.contains("10.233.0.2"), "{e}");
    assert!(e.contains("cannot connect"), "{e}");
    d.teardown(true).unwrap();
}

#[test]
fn module_without_required_outputs_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = repo_path("tests/fixtures/terraform");
    let mut d = TerraformDriver::new(
        &options(&[
            ("provider", "no-outputs"),
            ("state-dir", tmp.path().to_str().unwrap()),
            ("modules-dir", fixtures.to_str().unwrap()),
        ]),
        "tfnoout",
    )
    .unwrap();
    let e = d
        .host(Role::Gateway, "default")
        .err()
        .expect("no outputs")
        .to_string();
    for name in [
        "kong-ip",
        "kong-internal-ip",
        "worker-ip",
        "worker-internal-ip",
        "lacks required output",
    ] {
        assert!(e.contains(name), "{name} missing in: {e}");
    }
    d.teardown(true).unwrap();
}

/// `load_hosts=2` with a module that takes no `load_host_count` is refused before terraform
/// creates anything.
#[test]
fn load_hosts_with_a_module_without_the_count_is_refused_before_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform");
    let mut d = TerraformDriver::new(
        &options(&[
            ("provider", "no-outputs"),
            ("state-dir", tmp.path().to_str().unwrap()),
            ("modules-dir", fixtures.to_str().unwrap()),
            ("load_hosts", "2"),
        ]),
        "tfnocount",
    )
    .unwrap();
    assert_eq!(d.load_hosts(), 2);
    let e = d.host(Role::Worker, "load-2").err().expect("no count");
    assert!(matches!(e, perflab::Error::Usage(_)), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("load_hosts=2") && e.contains("load_host_count"),
        "{e}"
    );
    assert!(!tmp.path().join("terraform.tfstate").exists());
    d.teardown(true).unwrap();
}

// ---------------------------------------------------------------------------------------------
// End to end through the CLI binary: `perflab suite rps --driver terraform` on a netns lab.
// Every test has its own lab name, /16 and state dir, so they can run side by side.

/// A netns lab driven through the CLI; `Drop` destroys it (`perflab teardown --full`) and, as a
/// last resort, terraform directly.
struct CliLab {
    lab: String,
    octet: String,
    tmp: tempfile::TempDir,
}

impl CliLab {
    fn new(lab: &str, octet: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("pltfcli")
            .tempdir_in("/tmp")
            .unwrap();
        CliLab {
            lab: lab.to_string(),
            octet: octet.to_string(),
            tmp,
        }
    }

    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    fn output(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    fn driver_opts(&self) -> Vec<String> {
        let modules = modules_dir();
        [
            "provider=netns".to_string(),
            format!("lab={}", self.lab),
            format!("var.net_octet={}", self.octet),
            format!("state-dir={}", self.state().display()),
            format!("modules-dir={}", modules.display()),
            "ssh-wait=30".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["--driver-opt".to_string(), o])
        .collect()
    }

    /// The perflab command with the lab's driver options and a private cache dir (so `teardown`
    /// never touches anyone else's git checkouts).
    fn perflab(&self, args: &[&str]) -> Command {
        let mut c = Command::new(PERFLAB);
        c.args(args)
            .env("XDG_CACHE_HOME", self.tmp.path().join("cache"))
            .env("CHECKPOINT_DISABLE", "1");
        c
    }

    fn suite(&self, repeat: &str) -> Command {
        self.suite_with(repeat, &[])
    }

    /// [`CliLab::suite`] with more arguments (`--rate`, more `--driver-opt`s).
    fn suite_with(&self, repeat: &str, extra: &[&str]) -> Command {
        let out = self.output();
        let args = vec![
            "suite",
            "rps",
            "--repeat",
            repeat,
            "--tags",
            "simple",
            "--gateway",
            "nginx",
            "--driver",
            "terraform",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--cooldown-max",
            "0",
            "--connections",
            "20",
            "--threads",
            "1",
            "--plain",
            "--output",
            out.to_str().unwrap(),
        ];
        let opts = self.driver_opts();
        let mut c = self.perflab(&args);
        c.args(&opts).args(extra);
        c
    }

    fn full_teardown(&self) -> std::process::Output {
        let opts = self.driver_opts();
        self.perflab(&["teardown", "--driver", "terraform", "--full"])
            .args(&opts)
            .output()
            .unwrap()
    }

    fn tag(&self) -> String {
        sha1_hex(&self.lab)[..6].to_string()
    }

    /// Namespaces, host-side veths, guard route and sshd of this lab that still exist.
    fn leftovers(&self, sshd_pids: &[u32]) -> Vec<String> {
        let mut left = Vec::new();
        let (_, ns) = sh("ip netns list");
        if ns.contains(&format!("perflab-{}-", self.lab)) {
            left.push(format!("namespaces: {ns}"));
        }
        let (_, links) = sh("ip -o link");
        if links.contains(&format!("pl{}", self.tag())) {
            left.push(format!("veths: {links}"));
        }
        let (_, routes) = sh("ip route");
        if routes.contains(&format!("10.{}.", self.octet)) {
            left.push(format!("routes: {routes}"));
        }
        for pid in sshd_pids {
            if pid_alive(*pid) {
                left.push(format!("sshd {pid}"));
            }
        }
        left
    }

    /// The pids of the lab's sshd, one per host (kong, worker and any load host).
    fn sshd_pids(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir(self.state().join("lab")) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("sshd-") && name.ends_with(".pid")
            })
            .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .collect()
    }
}

impl Drop for CliLab {
    fn drop(&mut self) {
        let _ = self.full_teardown();
        let _guard = LabGuardFor {
            state: self.state(),
            lab: self.lab.clone(),
            octet: self.octet.clone(),
        };
    }
}

/// Like [`LabGuard`], for any lab name and /16.
struct LabGuardFor {
    state: PathBuf,
    lab: String,
    octet: String,
}

impl Drop for LabGuardFor {
    fn drop(&mut self) {
        if self.state.join("terraform.tfstate").is_file() {
            let rc = self.state.join(".terraformrc");
            let _ = std::fs::write(&rc, b"");
            let _ = Command::new("terraform")
                .args(["destroy", "-auto-approve", "-input=false", "-no-color"])
                .current_dir(&self.state)
                .env("CHECKPOINT_DISABLE", "1")
                .env("TF_IN_AUTOMATION", "1")
                .env("TF_CLI_CONFIG_FILE", &rc)
                .env("TF_VAR_lab_id", &self.lab)
                .env("TF_VAR_net_octet", &self.octet)
                .output();
        }
    }
}

#[test]
fn cli_suite_runs_reuses_and_destroys_the_lab() {
    let _g = load_lock();
    let lab = CliLab::new("tfcli", "232");

    // 1. A full cycle: apply, roles over SSH, one measured run, results.
    let out = lab.suite("1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "suite failed: {stderr}");
    let dirs = results_folders(&lab.output());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let results = result_files(&dirs[0]);
    assert_eq!(results.len(), 1, "{results:?}\n{stderr}");
    let rec = json(&results[0]);
    assert_eq!(rec["driver"], "terraform");
    assert!(rec["rps"].as_f64().unwrap() > 0.0, "{rec}");
    assert!(rec["requests"].as_u64().unwrap() > 0);
    // Load went worker → gateway over the internal plane.
    let url = rec["url"].as_str().unwrap();
    assert!(url.starts_with("http://10.232.1.1:"), "{url}");
    assert!(rec["cpu"]["gateway_s"].as_f64().unwrap() > 0.0, "{rec}");
    assert!(rec["cpu"]["upstream_s"].as_f64().unwrap() > 0.0, "{rec}");
    assert!(rec["rps_per_gateway_cpu_s"].as_f64().is_some());
    let run_dir = results[0].parent().unwrap();
    let upstream_conf =
        std::fs::read_to_string(run_dir.join("config/upstream-nginx.conf")).unwrap();
    assert!(
        upstream_conf.contains("listen 10.232.1.2:"),
        "{upstream_conf}"
    );
    let gw_conf = std::fs::read_to_string(run_dir.join("config/gateway-nginx.conf")).unwrap();
    assert!(gw_conf.contains("server 10.232.1.2:"), "{gw_conf}");
    let prep = json(&run_dir.join("machine-prep.json"));
    assert_eq!(prep["machine"], "gateway");
    assert!(prep["cool_down"]["cores"].as_u64().unwrap() >= 1, "{prep}");
    assert!(prep["governor"]["status"].is_string(), "{prep}");
    let manifest = json(&dirs[0].join("manifest.json"));
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["driver_info"]["infrastructure"], "applied");
    assert_eq!(manifest["driver_info"]["provider"], "netns");

    // Same shape as a local run's result.
    let local_out = lab.tmp.path().join("local-out");
    let local = lab
        .perflab(&[
            "suite",
            "rps",
            "--tags",
            "simple",
            "--gateway",
            "nginx",
            "--driver",
            "local",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--cooldown-max",
            "0",
            "--connections",
            "20",
            "--threads",
            "1",
            "--plain",
            "--output",
            local_out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        local.status.success(),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    let local_rec = json(&result_files(&results_folders(&local_out)[0])[0]);
    assert_eq!(
        key_paths(&rec),
        key_paths(&local_rec),
        "result shapes differ"
    );

    // 2. Default teardown kept the lab; the next run reuses it: no new apply.
    let applied = std::fs::read(lab.state().join("perflab-applied.json")).unwrap();
    let apply_log = std::fs::metadata(lab.state().join("terraform-apply.log"))
        .unwrap()
        .modified()
        .unwrap();
    let (_, ns) = sh("ip netns list");
    assert!(ns.contains("perflab-tfcli-kong"), "{ns}");
    let out = lab.suite("1").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dirs = results_folders(&lab.output());
    assert_eq!(dirs.len(), 2);
    let manifest = json(&dirs[1].join("manifest.json"));
    assert_eq!(manifest["driver_info"]["infrastructure"], "reused");
    assert!(manifest["driver_info"]["apply_s"].is_null());
    assert_eq!(result_files(&dirs[1]).len(), 1);
    assert_eq!(
        std::fs::read(lab.state().join("perflab-applied.json")).unwrap(),
        applied
    );
    assert_eq!(
        std::fs::metadata(lab.state().join("terraform-apply.log"))
            .unwrap()
            .modified()
            .unwrap(),
        apply_log,
        "terraform apply ran again"
    );

    // 3. teardown --full leaves no namespace, veth, route or sshd.
    let sshd = lab.sshd_pids();
    assert_eq!(sshd.len(), 2);
    let out = lab.full_teardown();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("destroyed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left = lab.leftovers(&sshd);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Inode of a network namespace (`/run/netns/NAME`), as `/proc/PID/ns/net` names it.
fn netns_id(name: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/run/netns/{name}")).ok()?;
    Some(format!("net:[{}]", m.ino()))
}

/// Processes (pid, cmdline) that are in one of `netns` or whose command line mentions `needle`,
/// except the lab's sshd listeners and their per-connection children.
fn lab_processes(netns: &[String], needle: &str, sshd: &[u32]) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if !pid_alive(pid) || sshd.contains(&pid) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let ns = std::fs::read_link(e.path().join("ns/net"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let in_lab_ns = netns.contains(&ns);
        if in_lab_ns && cmdline.starts_with("sshd:") {
            continue;
        }
        if in_lab_ns || (cmdline.contains("/tmp/perflab-") && cmdline.contains(needle)) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// SIGINT (to the process group, as a terminal sends it), SIGTERM and SIGKILL at seeded points
/// of a suite on the netns lab (the lab applied by the same invocation, so a point may fall in
/// `terraform apply`). After `teardown` the lab's machines run nothing of it and hold no lab
/// dir; after `teardown --full` no namespace, veth, route or sshd is left; every printed run
/// is on disk and parses.
#[test]
fn cli_interrupts_at_seeded_points_leave_nothing_after_teardown() {
    let _g = load_lock();
    use nix::sys::signal::Signal;
    let lab = CliLab::new("tfint", "234");
    let mut points = Points::from_env();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL] {
        let _ = std::fs::remove_dir_all(lab.output());
        let mut child = {
            use std::os::unix::process::CommandExt;
            let mut c = lab.suite("3");
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .process_group(0);
            c.spawn().unwrap()
        };
        let pid = child.id();
        let at = points.delay(0.5, 9.0);
        let start = std::time::Instant::now();
        while start.elapsed() < at && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let ended_first = child.try_wait().unwrap().is_some();
        let pgid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
        if !ended_first {
            match sig {
                // Signalled with killpg directly, never through a `kill` command line.
                Signal::SIGINT => nix::sys::signal::killpg(pgid, sig).unwrap(),
                _ => nix::sys::signal::kill(pgid, sig).unwrap(),
            }
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !ended_first && sig != Signal::SIGKILL {
            assert_eq!(out.status.code(), Some(130), "{sig} at {at:?}: {stderr}");
        }
        let netns: Vec<String> = ["kong", "worker"]
            .iter()
            .filter_map(|h| netns_id(&format!("perflab-tfint-{h}")))
            .collect();
        let needle = format!("-{pid}/");
        let sshd = lab.sshd_pids();
        // Orphans before any teardown (sshd's per-connection processes end when the closed
        // connection is noticed; the remote shell stops its lab's programs then).
        std::thread::sleep(Duration::from_secs(3));
        let before = lab_processes(&netns, &needle, &sshd);
        let (_, dirs_before) = sh(&format!("ls -d /tmp/perflab-*-{pid} 2>/dev/null"));
        eprintln!(
            "interrupt: {sig} at {:.2}s{}: {} orphan process(es), {} lab dir(s) before teardown",
            at.as_secs_f64(),
            if ended_first { " (after the end)" } else { "" },
            before.len(),
            dirs_before.lines().count()
        );
        for p in &before {
            eprintln!("interrupt:   orphan {p:?}");
        }
        let t = lab
            .perflab(&["teardown", "--driver", "terraform"])
            .args(lab.driver_opts())
            .output()
            .unwrap();
        let t_out = String::from_utf8_lossy(&t.stdout);
        assert!(
            t.status.success(),
            "{t_out}{}",
            String::from_utf8_lossy(&t.stderr)
        );
        eprint!("{t_out}");
        let mut left = lab_processes(&netns, &needle, &sshd);
        for _ in 0..50 {
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            left = lab_processes(&netns, &needle, &sshd);
        }
        assert!(left.is_empty(), "{sig}: left running: {left:?}\n{stderr}");
        let (_, dirs) = sh(&format!("ls -d /tmp/perflab-*-{pid} 2>/dev/null"));
        assert!(dirs.trim().is_empty(), "{sig}: lab dirs left: {dirs}");
        let journals = std::fs::read_dir(lab.tmp.path().join("cache/perflab/labs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(journals, 0, "{sig}: journals left after teardown");
        // Every run printed as finished is on disk and parses.
        let printed = printed_runs(&stderr);
        let stored = parsable_runs(&lab.output());
        assert!(
            stored >= printed,
            "{sig}: printed {printed}, stored {stored}"
        );
        eprintln!("interrupt: {sig}: {printed} printed run(s), {stored} stored and parsable");
        let full = lab.full_teardown();
        assert!(
            full.status.success(),
            "{}",
            String::from_utf8_lossy(&full.stderr)
        );
        let gone = lab.leftovers(&sshd);
        assert!(gone.is_empty(), "{sig}: after teardown --full: {gone:?}");
    }
}

#[test]
fn cli_multiplexed_compare_runs_on_the_netns_lab() {
    let _g = load_lock();
    let lab = CliLab::new("tfmux", "233");
    let out = lab.output();
    let mut c = lab.perflab(&[
        "compare",
        "current",
        "current",
        "--suite",
        "rps",
        "--tags",
        "simple",
        "--gateway",
        "nginx",
        "--driver",
        "terraform",
        "--budget",
        "40s",
        "--burst",
        "1",
        "--segment",
        "8",
        "--warmup",
        "0",
        "--connections",
        "20",
        "--threads",
        "1",
        "--plain",
        "--output",
        out.to_str().unwrap(),
    ]);
    c.args(lab.driver_opts());
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let teardown = lab.full_teardown();
    assert!(o.status.success(), "compare failed: {stderr}");
    assert!(teardown.status.success());
    let dirs = results_folders(&out);
    let design = json(&dirs[0].join("design.json"));
    let case = design["cases"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert!(case["segments"].as_u64().unwrap() >= 2, "{design}");
    let runs: Vec<serde_json::Value> = result_files(&dirs[0]).iter().map(|p| json(p)).collect();
    assert!(runs.len() >= 8, "{stderr}");
    let mut urls = std::collections::BTreeSet::new();
    for r in &runs {
        assert_eq!(r["driver"], "terraform");
        // Load went worker → gateway over the internal plane, to the burst's own instance.
        let url = r["url"].as_str().unwrap();
        assert!(url.starts_with("http://10.233.1.1:"), "{url}");
        urls.insert((
            r["burst"]["segment"].as_u64().unwrap(),
            r["burst"]["instance"].as_str().unwrap().to_string(),
            url.to_string(),
        ));
        assert!(r["cpu"]["gateway_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    // Two instances up at once in each segment: two distinct ports per segment.
    let first_segment: Vec<_> = urls.iter().filter(|(s, _, _)| *s == 0).collect();
    assert_eq!(first_segment.len(), 2, "{urls:?}");
    assert_ne!(first_segment[0].2, first_segment[1].2);
}

/// Packets sent by the internal-plane link (`int0`) of a lab namespace.
fn int0_tx_packets(netns: &str) -> u64 {
    let (ok, out) = sh(&format!("ip -n {netns} -s -j link show int0"));
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

/// Two load hosts on the netns lab (`--driver-opt load_hosts=2`): the module adds a namespace
/// `load-2` with its own addresses and sshd; an open-loop run splits the rate between the worker
/// and load-2, each sends its share from its own namespace, and the run keeps both hosts'
/// histograms (in `open-load.json`) and their merge (`latency.hdr`). wrk, whose percentiles
/// cannot be merged, runs on the first load host and says so. `teardown --full` removes every
/// namespace and sshd.
#[test]
fn cli_open_loop_runs_on_two_load_hosts_of_the_netns_lab() {
    use perflab::role::load::histogram;
    let lab = CliLab::new("tfload", "237");
    let two = ["--driver-opt", "load_hosts=2"];
    let out = lab
        .suite_with("1", &[&two[..], &["--rate", "400"]].concat())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "suite failed: {stderr}");
    let dirs = results_folders(&lab.output());
    let files = result_files(&dirs[0]);
    assert_eq!(files.len(), 1, "{stderr}");
    let rec = json(&files[0]);
    let manifest = json(&dirs[0].join("manifest.json"));
    let machines = &manifest["driver_info"]["machines"];
    assert_eq!(
        machines["load"][0]["internal_ip"], "10.237.1.3",
        "{machines}"
    );
    assert_no_via("10.237.0.10");

    // The rate was split: each host asked for half and sent about half.
    let ol = &rec["open_loop"];
    assert_eq!(ol["load_hosts"], 2, "{rec}");
    assert_eq!(ol["rate_asked"], 400.0);
    let hosts = ol["hosts"].as_array().unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(names, ["worker", "load-2"]);
    let achieved: Vec<f64> = hosts
        .iter()
        .map(|h| h["rate_achieved"].as_f64().unwrap())
        .collect();
    for h in hosts {
        assert_eq!(h["rate_asked"], 200.0, "{h}");
        assert!(h["cpu_s"].as_f64().unwrap() > 0.0, "{h}");
        assert!(h["load_saturated"].is_boolean(), "{h}");
    }
    let share = achieved[1] / (achieved[0] + achieved[1]);
    assert!((0.4..=0.6).contains(&share), "shares {achieved:?}");

    // Both hosts' histograms are in the run folder; the run's histogram is their merge.
    let run_dir = files[0].parent().unwrap();
    let reports: Vec<_> = std::fs::read_to_string(run_dir.join("open-load.json"))
        .unwrap()
        .lines()
        .map(|l| perflab::role::load::open::parse_report(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    let parts: Vec<_> = reports
        .iter()
        .map(|r| histogram::decode_base64(&r.histogram).unwrap())
        .collect();
    let merged = histogram::decode(&std::fs::read(run_dir.join("latency.hdr")).unwrap()).unwrap();
    assert_eq!(merged.len(), parts[0].len() + parts[1].len());
    assert_eq!(merged.len(), rec["requests"].as_u64().unwrap());
    let union = histogram::merge(&parts);
    let p99 = histogram::percentile_ms(&merged, 99.0).unwrap();
    assert_eq!(Some(p99), histogram::percentile_ms(&union, 99.0));
    assert_eq!(rec["latency_ms"]["p99"].as_f64(), Some(p99));
    // load-2 sent its share from its own namespace (at least one packet per request).
    let sent_2 = reports[1].sent;
    assert!(sent_2 > 0);
    assert!(
        int0_tx_packets("perflab-tfload-load-2") >= sent_2,
        "load-2 sent {sent_2} requests but its link sent fewer packets"
    );
    for (h, p) in hosts.iter().zip(&parts) {
        eprintln!(
            "two load hosts: {} asked {} req/s, achieved {:.1} req/s, {} requests, own p99 {:.2} ms",
            h["host"].as_str().unwrap(),
            h["rate_asked"],
            h["rate_achieved"].as_f64().unwrap(),
            p.len(),
            histogram::percentile_ms(p, 99.0).unwrap()
        );
    }
    eprintln!(
        "two load hosts: merged {} requests, p99 {p99:.2} ms",
        merged.len()
    );

    // wrk on the same (reused) lab runs on the first load host only, and says so.
    let out = lab.suite_with("1", &two).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wrk suite failed: {stderr}");
    let dirs = results_folders(&lab.output());
    let rec = json(&result_files(&dirs[1])[0]);
    assert!(rec["open_loop"].is_null(), "{rec}");
    assert!(rec["requests"].as_u64().unwrap() > 0);
    assert!(
        rec["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("wrk ran on one load host of 2")),
        "{rec}"
    );

    // teardown --full leaves no namespace (load-2 and the switch included), veth, route or sshd.
    let sshd = lab.sshd_pids();
    assert_eq!(sshd.len(), 3, "{sshd:?}");
    let out = lab.full_teardown();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = lab.leftovers(&sshd);
    assert!(left.is_empty(), "left behind: {left:?}");
}
