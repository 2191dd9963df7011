//! The docker driver against a real Docker engine.
//!
//! The engine is the lab's private dockerd on unix:///run/perflab-docker.sock; when it does not
//! answer, `scripts/start-dockerd.sh` starts it, and a failure to start it fails the tests (CI
//! installs docker.io). Images are built from this machine's binaries; nothing is pulled.
//! Every test uses its own lab id and removes what it made; containers use host networking or a
//! lab-owned internal network, and traffic goes only to loopback or the lab's containers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use perflab::driver::docker::{self, DockerDriver, LAB_LABEL, runtime};
use perflab::driver::{Driver, DriverOptions, Role};
use perflab::host::{Cmd, Host, HostError};
use perflab::image::{self, ImageInfo};

use crate::util::{
    PERFLAB, Points, free_port, json, key_paths, load_lock, only_results_folder, parsable_runs,
    printed_runs, repo_path, result_files, text, wait_for,
};

const SOCK: &str = "/run/perflab-docker.sock";
const ENGINE: &str = "unix:///run/perflab-docker.sock";

/// Starts the private engine when it does not answer (once per test binary).
fn engine() -> &'static str {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let answers = runtime().block_on(docker::connect(Some(ENGINE))).is_ok();
        if !answers {
            let script = repo_path("scripts/start-dockerd.sh");
            let out = std::process::Command::new("sh")
                .arg(&script)
                .output()
                .expect("run scripts/start-dockerd.sh");
            assert!(
                out.status.success(),
                "cannot start dockerd on {SOCK}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
    ENGINE
}

/// The lab image built from this machine's binaries, once per test binary.
fn lab_image() -> &'static ImageInfo {
    static IMAGE: OnceLock<ImageInfo> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let engine = engine();
        let bins = image::default_binaries().expect("the lab's binaries are installed");
        for b in ["nginx", "wrk", "curl"] {
            assert!(
                bins.iter().any(|x| x == b),
                "{b} must be installed for these tests"
            );
        }
        let names: Vec<&str> = bins.iter().map(String::as_str).collect();
        image::image_build_with(Some(engine), &names).expect("image build")
    })
}

fn lab_id(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

fn driver(test: &str, extra: &[(&str, &str)]) -> DockerDriver {
    let mut o = DriverOptions::new();
    o.insert("image".into(), lab_image().tag.clone());
    for (k, v) in extra {
        o.insert(k.to_string(), v.to_string());
    }
    DockerDriver::with_engine(&o, &lab_id(test), Some(engine())).expect("docker driver")
}

/// Removes a lab's objects even when a test fails half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker::remove_leftovers(Some(ENGINE), Some(&self.0));
    }
}

fn labelled(lab: &str) -> Vec<docker::Leftover> {
    docker::find_leftovers(Some(engine()), Some(lab)).expect("list by label")
}

fn nginx_conf(dir: &Path, listen: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         server {{ listen {listen}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n"
    )
}

fn start_nginx(host: &dyn Host, listen: &str) -> Box<dyn perflab::host::Proc> {
    let dir = host.lab_dir().join("nginx");
    let conf = dir.join("nginx.conf");
    host.write_file(&conf, nginx_conf(&dir, listen).as_bytes())
        .unwrap();
    host.spawn(
        &Cmd::new("nginx")
            .args(["-e", "stderr", "-p"])
            .arg(dir.display().to_string())
            .arg("-c")
            .arg(conf.display().to_string()),
        &dir.join("nginx.log"),
    )
    .expect("spawn nginx")
}

fn wait_http(host: &dyn Host, url: &str) -> u16 {
    perflab::host::poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        host.http_status(url, Duration::from_secs(2))
            .ok()
            .filter(|s| *s == 200)
    })
    .unwrap_or(0)
}

#[test]
fn image_build_uses_this_machines_binaries_and_is_reused() {
    let info = lab_image();
    assert!(info.id.starts_with("sha256:"), "{info:?}");
    assert!(info.tag.starts_with("perflab/lab:"), "{info:?}");
    let nginx = info.binaries.iter().find(|b| b.name == "nginx").unwrap();
    assert_eq!(nginx.sha256.len(), 64);
    // Identical binaries: the same content-addressed image, reused.
    let again = image::image_build_with(
        Some(engine()),
        &info
            .binaries
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(again.id, info.id);
    assert_eq!(again.tag, info.tag);
    assert!(again.reused);
}

#[test]
fn image_load_reads_a_docker_save_tarball() {
    let info = lab_image();
    // `docker save` of the lab image stands in for a nix-built image tarball.
    let saved: Vec<u8> = runtime().block_on(async {
        use futures_util::TryStreamExt;
        let dk = docker::connect(Some(engine())).await.unwrap();
        dk.export_image(&info.tag)
            .map_ok(|b| b.to_vec())
            .try_concat()
            .await
            .unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    std::fs::write(&path, saved).unwrap();
    let loaded = image::image_load(Some(engine()), &path).unwrap();
    assert_eq!(loaded.id, info.id);
    assert_eq!(loaded.tag, info.tag);
    let bad = dir.path().join("not-an-image.tar");
    std::fs::write(&bad, b"hello").unwrap();
    assert!(image::image_load(Some(engine()), &bad).is_err());
}

#[test]
fn container_hosts_run_spawn_files_http_wrk_and_cpu() {
    let _g = load_lock();
    let mut d = driver("e2e", &[]);
    let lab = d.lab_id().to_string();
    let _cleanup = Cleanup(lab.clone());
    let gw = d.host(Role::Gateway, "default").unwrap();
    let worker = d.host(Role::Worker, "default").unwrap();
    assert_eq!(gw.address(), "127.0.0.1");
    assert!(gw.lab_dir().starts_with("/perflab"));
    // The same host again for the same role.
    assert!(std::sync::Arc::ptr_eq(
        &gw,
        &d.host(Role::Gateway, "default").unwrap()
    ));

    // run: exit code and separate streams; env and cwd.
    let out = gw
        .run(
            &Cmd::new("sh")
                .arg("-c")
                .arg("echo out; echo err >&2; echo \"$GREETING\"; pwd; exit 3")
                .env("GREETING", "hello there")
                .cwd("/tmp"),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout_text(), "out\nhello there\n/tmp\n");
    assert_eq!(out.stderr_text(), "err\n");

    // run: a timeout kills the whole group.
    let err = gw
        .run(
            &Cmd::new("sh").arg("-c").arg("sleep 31 & sleep 32"),
            Duration::from_secs(1),
        )
        .unwrap_err();
    assert!(matches!(err, HostError::Timeout { .. }), "{err}");
    // Background leftovers of a finished command are stopped, as on the local host.
    let out = gw
        .run(
            &Cmd::new("sh").arg("-c").arg("sleep 33 & echo hi"),
            Duration::from_secs(20),
        )
        .unwrap();
    assert_eq!(out.stdout_text(), "hi\n");
    let procs = gw
        .run(
            &Cmd::new("sh")
                .arg("-c")
                .arg("for p in /proc/[0-9]*; do cat $p/cmdline; echo; done"),
            Duration::from_secs(10),
        )
        .unwrap();
    let text = String::from_utf8_lossy(&procs.stdout).replace('\0', " ");
    assert!(
        !text.contains("sleep 31") && !text.contains("sleep 32") && !text.contains("sleep 33"),
        "{text}"
    );

    // spawn: exit status of a background process, and stop of one that runs.
    let log = gw.lab_dir().join("logs/seven.log");
    let mut p = gw
        .spawn(&Cmd::new("sh").arg("-c").arg("echo to-log; exit 7"), &log)
        .unwrap();
    assert_eq!(p.wait_timeout(Duration::from_secs(10)).unwrap(), Some(7));
    assert_eq!(gw.read_file(&log).unwrap(), b"to-log\n");
    let mut p = gw
        .spawn(
            &Cmd::new("sleep").arg("100"),
            &gw.lab_dir().join("sleep.log"),
        )
        .unwrap();
    assert!(p.is_running());
    assert_eq!(p.wait_timeout(Duration::from_millis(200)).unwrap(), None);
    p.stop(Duration::from_secs(5)).unwrap();
    assert!(!p.is_running());
    assert_eq!(p.wait_timeout(Duration::from_secs(1)).unwrap(), Some(-15));
    // A handle dropped without a stop kills its group, as on every host.
    let dropped = gw
        .spawn(
            &Cmd::new("sh").arg("-c").arg("sleep 102 & sleep 102"),
            &gw.lab_dir().join("dropped.log"),
        )
        .unwrap();
    let pid = dropped.pid().to_string();
    drop(dropped);
    let group = gw
        .run(
            &Cmd::new("sh").arg("-c").arg(
                r#"for s in /proc/[0-9]*/stat; do { read -r l < "$s"; } 2>/dev/null || continue; set -- ${l##*) }; [ "$3" = "$0" ] && [ "$1" != Z ] && echo "$s"; done; true"#,
            ).arg(&pid),
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(
        group.stdout_text().trim().is_empty(),
        "a dropped program's group runs on: {}",
        group.stdout_text()
    );

    // Files: write, read back, missing file, remove.
    let f = gw.lab_dir().join("sub/dir/file.txt");
    gw.write_file(&f, b"line one\n\xffbinary").unwrap();
    assert_eq!(gw.read_file(&f).unwrap(), b"line one\n\xffbinary");
    gw.write_file(&f, b"replaced").unwrap();
    assert_eq!(gw.read_file(&f).unwrap(), b"replaced");
    let missing = gw.read_file(&gw.lab_dir().join("nope")).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
    gw.remove_dir_all(&gw.lab_dir().join("sub")).unwrap();
    assert!(gw.read_file(&f).is_err());
    assert_eq!(gw.which("nginx").as_deref(), Some("/usr/sbin/nginx"));
    assert_eq!(gw.which("no-such-program"), None);

    // nginx in the gateway container on loopback; reached from the worker container.
    let port = free_port();
    let mut nginx = start_nginx(gw.as_ref(), &format!("127.0.0.1:{port}"));
    let url = format!("http://{}:{port}/", gw.address());
    assert_eq!(
        wait_http(worker.as_ref(), &url),
        200,
        "nginx log: {}",
        String::from_utf8_lossy(
            &gw.read_file(&gw.lab_dir().join("nginx/nginx.log"))
                .unwrap_or_default()
        )
    );
    assert!(nginx.is_running());
    // One HTTP request with a body from the worker container (curl there): status, body, time.
    let reply = worker
        .http_request(
            &perflab::host::HttpCall::json("PATCH", url.clone(), Some(b"@{\"a\": 1}".to_vec())),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok\n"[..]));
    assert!(
        reply.duration_s > 0.0 && reply.duration_s < 5.0,
        "{reply:?}"
    );
    let refused = worker
        .http_request(
            &perflab::host::HttpCall::get(format!("http://127.0.0.1:{}/", free_port())),
            Duration::from_secs(5),
        )
        .unwrap_err();
    assert!(refused.to_string().contains("no HTTP answer"), "{refused}");

    // wrk from the worker container, 2 s.
    let before = gw.proc_snapshot().unwrap();
    let wrk = worker
        .run(
            &Cmd::new("wrk").args(["-t1", "-c4", "-d2s"]).arg(&url),
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(wrk.success(), "{}", wrk.combined_text());
    let rps: f64 = wrk
        .stdout_text()
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .expect("a Requests/sec line")
        .trim()
        .parse()
        .unwrap();
    assert!(rps > 0.0, "{}", wrk.stdout_text());
    let after = gw.proc_snapshot().unwrap();

    // The nginx group (master + worker) is visible in the container's /proc and used CPU.
    let group: Vec<_> = after
        .procs
        .values()
        .filter(|p| p.pgrp == nginx.pid())
        .collect();
    assert!(group.len() >= 2, "nginx group {}: {group:?}", nginx.pid());
    assert!(
        after.group_seconds(nginx.pid()) > before.group_seconds(nginx.pid()),
        "nginx used no CPU while serving {rps} requests/s"
    );
    assert!(after.machine.total_s > before.machine.total_s);

    // Stop: the whole group goes.
    nginx.stop(Duration::from_secs(5)).unwrap();
    assert!(!nginx.is_running());
    // nginx's fast shutdown on TERM exits 0.
    assert_eq!(nginx.wait_timeout(Duration::from_secs(1)).unwrap(), Some(0));
    assert!(
        gw.proc_snapshot()
            .unwrap()
            .procs
            .values()
            .all(|p| p.pgrp != nginx.pid())
    );

    let desc = d.describe();
    assert_eq!(desc["network"], "host");
    assert_eq!(desc["image_id"], lab_image().id.as_str());
    assert!(desc["engine"]["version"].is_string(), "{desc}");
    // No container-level pinning by default: the session pins roles with taskset inside.
    assert!(desc["cpuset"]["gateway"].is_null(), "{desc}");
    assert!(desc["cpuset"]["worker"].is_null(), "{desc}");

    assert_eq!(labelled(&lab).len(), 2);
    // A partial teardown stops processes and removes the lab's files, keeping the containers.
    let _keep = gw
        .spawn(&Cmd::new("sleep").arg("101"), &gw.lab_dir().join("s.log"))
        .unwrap();
    d.teardown(false).unwrap();
    assert!(
        gw.read_file(&gw.lab_dir().join("nginx/nginx.conf"))
            .is_err()
    );
    let text = String::from_utf8_lossy(
        &gw.run(
            &Cmd::new("sh")
                .arg("-c")
                .arg("for p in /proc/[0-9]*; do cat $p/cmdline; echo; done"),
            Duration::from_secs(10),
        )
        .unwrap()
        .stdout,
    )
    .replace('\0', " ");
    assert!(!text.contains("sleep 101"), "{text}");
    assert_eq!(labelled(&lab).len(), 2);
    d.teardown(true).unwrap();
    assert!(labelled(&lab).is_empty());
}

#[test]
fn bridge_network_is_lab_owned_and_removed() {
    let mut d = driver(
        "bridge",
        &[("network", "bridge"), ("cpuset.gateway", "none")],
    );
    let lab = d.lab_id().to_string();
    let _cleanup = Cleanup(lab.clone());
    let gw = d.host(Role::Gateway, "default").unwrap();
    let worker = d.host(Role::Worker, "default").unwrap();
    assert_ne!(gw.address(), "127.0.0.1");
    assert_ne!(gw.address(), worker.address());
    let mut nginx = start_nginx(gw.as_ref(), "8080");
    let url = format!("http://{}:8080/", gw.address());
    assert_eq!(wait_http(worker.as_ref(), &url), 200);
    nginx.stop(Duration::from_secs(5)).unwrap();
    let desc = d.describe();
    assert_eq!(desc["network"], "bridge");
    assert!(desc["cpuset"]["gateway"].is_null());
    let kinds: Vec<&str> = labelled(&lab).iter().map(|l| l.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "network").count(), 1);
    d.teardown(true).unwrap();
    assert!(labelled(&lab).is_empty());
}

#[test]
fn a_killed_lab_leaves_leftovers_that_teardown_finds_and_removes() {
    let lab;
    {
        let mut d = driver("killed", &[("network", "bridge")]);
        lab = d.lab_id().to_string();
        d.host(Role::Gateway, "default").unwrap();
        d.host(Role::Worker, "default").unwrap();
        // Forgotten without teardown or drop, as when the lab's process dies.
        std::mem::forget(d);
    }
    let _cleanup = Cleanup(lab.clone());
    let found = labelled(&lab);
    assert_eq!(found.iter().filter(|l| l.kind == "container").count(), 2);
    assert_eq!(found.iter().filter(|l| l.kind == "network").count(), 1);
    assert!(found.iter().all(|l| l.lab == lab));
    let warning = docker::leftover_warning(&found).unwrap();
    assert!(warning.contains(&lab) && warning.contains("perflab teardown"));
    // The lab's journal names it and its engine, for `perflab teardown`.
    let journal = perflab::journal::journals_dir().join(format!("{lab}.json"));
    let record: perflab::journal::Record =
        serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    assert_eq!(record.docker_host.as_deref(), Some(engine()));
    let _ = std::fs::remove_file(&journal);
    let removed = docker::remove_leftovers(Some(engine()), Some(&lab)).unwrap();
    assert_eq!(removed.len(), 3);
    assert!(labelled(&lab).is_empty());
    // Nothing labelled with this lab id is left in the engine, checked directly with bollard.
    runtime().block_on(async {
        let dk = docker::connect(Some(engine())).await.unwrap();
        let filters = std::collections::HashMap::from([(
            "label".to_string(),
            vec![format!("{LAB_LABEL}={lab}")],
        )]);
        let cs = dk
            .list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .unwrap();
        assert!(cs.is_empty());
        let ns = dk
            .list_networks(Some(
                bollard::query_parameters::ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .unwrap();
        assert!(ns.is_empty());
    });
}

#[test]
fn no_engine_names_where_it_looked() {
    let missing = "unix:///run/perflab-no-such-engine.sock";
    let mut o = DriverOptions::new();
    o.insert("image".into(), "perflab/lab:latest".into());
    let e = DockerDriver::with_engine(&o, "t-noengine", Some(missing))
        .err()
        .unwrap();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("/run/perflab-no-such-engine.sock") && msg.contains("start-dockerd.sh"),
        "{msg}"
    );
    assert_eq!(e.exit_code(), perflab::error::EXIT_MISSING_TOOL);
    let e = image::image_build_with(Some(missing), &["sh"]).unwrap_err();
    assert!(e.to_string().contains("perflab-no-such-engine.sock"), "{e}");
    let e = DockerDriver::with_engine(&o, "t-noengine", Some("ftp://x"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("unix://"), "{e}");
}

#[test]
fn a_missing_image_says_how_to_make_one() {
    let mut o = DriverOptions::new();
    o.insert("image".into(), "perflab/none:nope".into());
    // Never pull in tests: the reference would go to Docker Hub.
    o.insert("pull".into(), "never".into());
    let e = DockerDriver::with_engine(&o, "t-noimage", Some(engine()))
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("perflab/none:nope") && msg.contains("perflab image build"),
        "{msg}"
    );
}

#[test]
fn an_image_without_the_program_gives_a_clear_spawn_error() {
    engine();
    // A minimal image: the required tools only, no nginx.
    let rootfs = image::build_rootfs_tar(image::REQUIRED_BINARIES).unwrap();
    let tag = format!("perflab/test-minimal:{}", &rootfs.sha256[..16]);
    runtime().block_on(async {
        let dk = docker::connect(Some(engine())).await.unwrap();
        if image::image_id(&dk, &tag).await.unwrap().is_none() {
            image::import_image(&dk, rootfs.tar, &tag, &BTreeMap::new())
                .await
                .unwrap();
        }
    });
    let mut o = DriverOptions::new();
    o.insert("image".into(), tag.clone());
    let mut d = DockerDriver::with_engine(&o, &lab_id("minimal"), Some(engine())).unwrap();
    let _cleanup = Cleanup(d.lab_id().to_string());
    let gw = d.host(Role::Gateway, "default").unwrap();
    let e = match gw.spawn(&Cmd::new("nginx"), &gw.lab_dir().join("nginx.log")) {
        Err(e) => e,
        Ok(_) => panic!("nginx started in an image without it"),
    };
    let msg = e.to_string();
    assert!(
        matches!(e, HostError::Spawn { .. })
            && msg.contains("`nginx` is not in the container image")
            && msg.contains(&tag)
            && msg.contains("perflab image build"),
        "{msg}"
    );
    let e = gw
        .run(
            &Cmd::new("wrk").cpus(Some(vec![0])),
            Duration::from_secs(10),
        )
        .unwrap_err();
    assert!(e.to_string().contains("`taskset` is not in"), "{e}");
    let e = gw
        .run(&Cmd::new("wrk"), Duration::from_secs(10))
        .unwrap_err();
    assert!(e.to_string().contains("`wrk` is not in"), "{e}");
    // The basics work.
    let out = gw
        .run(&Cmd::new("cat").arg("/etc/passwd"), Duration::from_secs(10))
        .unwrap();
    assert!(out.stdout_text().contains("nobody"));
    d.teardown(true).unwrap();
    assert!(labelled(d.lab_id()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The CLI end to end: `perflab suite … --driver docker` as a user runs it.

/// `perflab` with the private engine, a private cache dir, and the suites of this checkout.
fn perflab_cli(cache: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(PERFLAB);
    c.env("DOCKER_HOST", engine())
        .env("PERFLAB_CACHE_DIR", cache)
        .env_remove("PERF_TEST_DRIVER")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// The short-run flags every CLI test uses (`--repeat` is given separately).
const QUICK: &[&str] = &[
    "--duration",
    "1",
    "--warmup",
    "0",
    "--cooldown-max",
    "0",
    "--plain",
];

fn image_opt() -> String {
    format!("image={}", lab_image().tag)
}

/// The lab id a run recorded in its manifest, once the driver is set up.
fn manifest_lab(dir: &Path) -> Option<String> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).ok()?).ok()?;
    m["driver_info"]["lab_id"].as_str().map(str::to_string)
}

#[test]
fn cli_suite_on_docker_gives_the_same_results_as_local_and_leaves_nothing() {
    let _g = load_lock();
    let tmp = tempfile::tempdir().unwrap();
    let run = |driver: &str, extra: &[String]| {
        let output = tmp.path().join(driver);
        let out = perflab_cli(tmp.path())
            .args(["suite", "rps", "--tags", "simple-proxy", "--driver", driver])
            .args(QUICK)
            .args(["--repeat", "1"])
            .args(extra)
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        only_results_folder(&output)
    };
    let docker_dir = run("docker", &["--driver-opt".into(), image_opt()]);
    let local_dir = run("local", &[]);

    let manifest = json(&docker_dir.join("manifest.json"));
    let info = &manifest["driver_info"];
    assert_eq!(info["driver"], "docker", "{info}");
    assert_eq!(info["image_id"], lab_image().id.as_str(), "{info}");
    assert_eq!(info["network"], "host", "{info}");
    let lab = info["lab_id"].as_str().unwrap().to_string();
    let _cleanup = Cleanup(lab.clone());
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));

    let docker_runs = result_files(&docker_dir);
    let local_runs = result_files(&local_dir);
    assert_eq!(docker_runs.len(), 2, "{docker_runs:?}");
    assert_eq!(local_runs.len(), 2, "{local_runs:?}");
    for (d, l) in docker_runs.iter().zip(&local_runs) {
        let (d, l) = (json(d), json(l));
        assert_eq!(key_paths(&d), key_paths(&l), "docker {d}\nlocal {l}");
        assert_eq!(d["case"], l["case"]);
        assert_eq!(d["driver"], "docker");
        assert!(d["requests"].as_u64().unwrap() > 0, "{d}");
        // The gateway's CPU is counted in its own container's PID namespace.
        assert!(d["cpu"]["gateway_s"].as_f64().unwrap() > 0.0, "{d}");
        assert!(d["cpu"]["upstream_s"].as_f64().unwrap() > 0.0, "{d}");
        assert!(d["rps_per_gateway_cpu_s"].as_f64().unwrap() > 0.0, "{d}");
        assert!(d["cpu"]["cores"].as_u64().unwrap() >= 1, "{d}");
    }
}

#[test]
fn cli_a_refused_gateway_config_fails_the_run_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("bogus");
    std::fs::create_dir(&suite).unwrap();
    std::fs::write(
        suite.join("bogus.toml"),
        "[case]\nname = \"bogus\"\ngateways = [\"nginx\"]\n\
         [case.gateway_settings]\nextra_config = \"bogus_directive on;\"\n\
         [case.load]\nconnections = 10\nthreads = 1\n",
    )
    .unwrap();
    let output = tmp.path().join("out");
    let out = perflab_cli(tmp.path())
        .arg("suite")
        .arg(&suite)
        .args(["--driver", "docker", "--driver-opt", &image_opt()])
        .args(QUICK)
        .args(["--repeat", "1"])
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("bogus_directive"), "{all}");
    let dir = only_results_folder(&output);
    let lab = manifest_lab(&dir).expect("the lab was set up before the run failed");
    let _cleanup = Cleanup(lab.clone());
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
    let manifest = json(&dir.join("manifest.json"));
    assert!(
        manifest["status"].as_str().unwrap().starts_with("failed"),
        "{manifest}"
    );
}

/// Starts `perflab suite` on docker in the background (simple-proxy on nginx, `repeat` runs).
fn spawn_suite(tmp: &Path, repeat: &str) -> (std::process::Child, std::path::PathBuf) {
    let output = tmp.join("out");
    let child = perflab_cli(tmp)
        .args([
            "suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
        ])
        .args(["--driver", "docker", "--driver-opt", &image_opt()])
        .args(QUICK)
        .args(["--repeat", repeat])
        .arg("--output")
        .arg(&output)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (child, output)
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

#[test]
fn cli_ctrl_c_mid_run_keeps_finished_runs_and_leaves_nothing() {
    let _g = load_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, output) = spawn_suite(tmp.path(), "3");
    let dir = wait_for(&mut child, "the results folder", || {
        std::fs::read_dir(&output)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| perflab::store::is_results_folder(p))
    });
    wait_for(&mut child, "the first result.json", || {
        (!result_files(&dir).is_empty()).then_some(())
    });
    let lab = manifest_lab(&dir).unwrap();
    let _cleanup = Cleanup(lab.clone());
    signal(&child, "-INT");
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!result_files(&dir).is_empty());
    assert_eq!(json(&dir.join("manifest.json"))["status"], "interrupted");
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
}

#[test]
fn cli_teardown_removes_what_a_killed_run_left() {
    let _g = load_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, output) = spawn_suite(tmp.path(), "3");
    let lab = wait_for(&mut child, "the lab's containers", || {
        let dir = std::fs::read_dir(&output)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| perflab::store::is_results_folder(p))?;
        manifest_lab(&dir)
    });
    let _cleanup = Cleanup(lab.clone());
    signal(&child, "-KILL");
    child.wait().unwrap();
    let left = labelled(&lab);
    assert!(
        left.iter().filter(|l| l.kind == "container").count() >= 2,
        "{left:?}"
    );
    // Only this lab's objects: other labs may be running on the same engine.
    let out = perflab_cli(tmp.path())
        .args(["teardown", "--driver", "docker", "--driver-opt"])
        .arg(format!("lab={lab}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("docker: removed"),
        "{}",
        text(&out)
    );
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
}

/// SIGINT, SIGTERM and SIGKILL at seeded random points of a suite (`PERFLAB_TEST_SEED=N`
/// replays): after `perflab teardown` no container, network or volume of the lab, no local
/// process of it and no journal is left, and every run printed as finished is on disk and parses.
#[test]
fn cli_interrupts_at_seeded_points_leave_nothing_after_teardown() {
    let _g = load_lock();
    use nix::sys::signal::Signal;
    let mut points = Points::from_env();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL] {
        let at = points.delay(0.3, 7.3);
        let tmp = tempfile::tempdir().unwrap();
        let (mut child, output) = spawn_suite(tmp.path(), "3");
        let journals = tmp.path().join("labs");
        let mut labs = std::collections::BTreeSet::new();
        let start = std::time::Instant::now();
        while start.elapsed() < at && child.try_wait().unwrap().is_none() {
            // The journal names the lab before its first container exists.
            for e in std::fs::read_dir(&journals).into_iter().flatten().flatten() {
                if let Some(id) = e.file_name().to_string_lossy().strip_suffix(".json") {
                    labs.insert(id.to_string());
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _cleanups: Vec<Cleanup> = labs.iter().map(|l| Cleanup(l.clone())).collect();
        let ended_first = child.try_wait().unwrap().is_some();
        if !ended_first {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if !ended_first && sig != Signal::SIGKILL {
            assert_eq!(out.status.code(), Some(130), "{sig} at {at:?}: {err}");
        }
        let before: usize = labs.iter().map(|l| labelled(l).len()).sum();
        if sig != Signal::SIGKILL {
            // An orderly end cleans up and removes its journal itself.
            let j = std::fs::read_dir(&journals).map(|d| d.count()).unwrap_or(0);
            assert_eq!(
                (before, j),
                (0, 0),
                "{sig}: objects and journals left: {err}"
            );
        }
        eprintln!(
            "interrupt: {sig} at {:.2}s{}: {before} Docker object(s) of the lab before teardown",
            at.as_secs_f64(),
            if ended_first { " (after the end)" } else { "" },
        );
        for lab in labs
            .iter()
            .map(String::as_str)
            .chain(["none"])
            .take(labs.len().max(1))
        {
            let t = perflab_cli(tmp.path())
                .args(["teardown", "--driver", "docker", "--driver-opt"])
                .arg(format!("lab={lab}"))
                .output()
                .unwrap();
            assert_eq!(t.status.code(), Some(0), "{}", text(&t));
            eprint!("{}", String::from_utf8_lossy(&t.stdout));
        }
        for lab in &labs {
            assert!(labelled(lab).is_empty(), "{sig}: {:?}", labelled(lab));
        }
        let left = std::fs::read_dir(&journals).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "{sig}: journals left");
        let printed = printed_runs(&err);
        let stored = parsable_runs(&output);
        assert!(
            stored >= printed,
            "{sig}: printed {printed}, stored {stored}"
        );
        eprintln!("interrupt: {sig}: {printed} printed run(s), {stored} stored and parsable");
    }
}

#[test]
fn cli_bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = |extra: &[&str], docker_host: Option<&str>| {
        let mut c = perflab_cli(tmp.path());
        if let Some(h) = docker_host {
            c.env("DOCKER_HOST", h);
        }
        let out = c
            .args([
                "suite",
                "rps",
                "--tags",
                "simple-proxy",
                "--gateway",
                "nginx",
            ])
            .args(["--driver", "docker"])
            .args(extra)
            .args(QUICK)
            .args(["--repeat", "1"])
            .arg("--output")
            .arg(tmp.path().join("out"))
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    // No engine.
    let (code, all) = suite(&[], Some("unix:///nonexistent.sock"));
    assert_eq!(code, Some(3), "{all}");
    assert!(
        all.contains("/nonexistent.sock") && all.contains("DOCKER_HOST"),
        "{all}"
    );
    // An image the engine does not have.
    // (pull=never: a missing reference must not send the engine to Docker Hub.)
    let (code, all) = suite(
        &["--driver-opt", "image=nope:1", "--driver-opt", "pull=never"],
        None,
    );
    assert_eq!(code, Some(3), "{all}");
    assert!(
        all.contains("nope:1") && all.contains("perflab image build"),
        "{all}"
    );
    // An image without wrk and nginx.
    let rootfs = image::build_rootfs_tar(image::REQUIRED_BINARIES).unwrap();
    let tag = format!("perflab/test-minimal:{}", &rootfs.sha256[..16]);
    runtime().block_on(async {
        let dk = docker::connect(Some(engine())).await.unwrap();
        if image::image_id(&dk, &tag).await.unwrap().is_none() {
            image::import_image(&dk, rootfs.tar, &tag, &BTreeMap::new())
                .await
                .unwrap();
        }
    });
    let (code, all) = suite(&["--driver-opt", &format!("image={tag}")], None);
    assert_eq!(code, Some(3), "{all}");
    assert!(all.contains("wrk") && all.contains(&tag), "{all}");
}

// ---------------------------------------------------------------------------------------------
// Versions as images: `image:<ref>` pulled from a registry on loopback, Kong releases, and
// `git:` trees copied into the gateway's container.

/// A real registry (Debian's `docker-registry`, the CNCF distribution registry) listening on
/// loopback with storage in a temporary directory; stopped by pid on drop. The engine treats
/// 127.0.0.0/8 registries as insecure (plain HTTP) without configuration.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry is installed (scripts/install-deps.sh)");
        let reg = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "registry did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        reg
    }

    fn reference(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes the lab image to `reference` in the registry, then removes that tag from the engine
/// so that using the reference needs a pull.
fn push_lab_image(reference: &str) {
    use futures_util::TryStreamExt;
    let (repo, tag) = reference.rsplit_once(':').unwrap();
    let lab = lab_image().id.clone();
    runtime().block_on(async {
        let dk = docker::connect(Some(engine())).await.unwrap();
        image::tag_image(&dk, &lab, reference).await.unwrap();
        dk.push_image(
            repo,
            Some(
                bollard::query_parameters::PushImageOptionsBuilder::default()
                    .tag(tag)
                    .build(),
            ),
            Some(bollard::auth::DockerCredentials::default()),
        )
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
        dk.remove_image(
            reference,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .unwrap();
        assert!(image::image_id(&dk, reference).await.unwrap().is_none());
    });
}

fn remove_image_ref(reference: &str) {
    runtime().block_on(async {
        let dk = docker::connect(Some(engine())).await.unwrap();
        let _ = dk
            .remove_image(
                reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    });
}

/// `perflab suite rps` (simple-proxy on nginx, one 1 s run) on docker, version `image:REFERENCE`.
fn suite_with_image_version(tmp: &Path, reference: &str, output: &Path) -> std::process::Output {
    perflab_cli(tmp)
        .args([
            "suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
        ])
        .args(["--driver", "docker", "--driver-opt", &image_opt()])
        .args(["--version", &format!("image:{reference}")])
        .args(QUICK)
        .args(["--repeat", "1"])
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

#[test]
fn cli_image_versions_are_pulled_from_a_registry_and_run_the_gateway() {
    let _g = load_lock();
    let registry = Registry::start();
    let reference = registry.reference("perflab-test/gateway:v1");
    push_lab_image(&reference);
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("out");
    let out = suite_with_image_version(tmp.path(), &reference, &output);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = only_results_folder(&output);
    let manifest = json(&dir.join("manifest.json"));
    let info = &manifest["driver_info"];
    let lab = info["lab_id"].as_str().unwrap().to_string();
    let _cleanup = Cleanup(lab.clone());
    let lab_id = lab_image().id.clone();
    // Pulled: the engine has the reference now, and the result says which image ran.
    let pulled = runtime().block_on(async {
        let dk = docker::connect(Some(engine())).await.unwrap();
        image::image_id(&dk, &reference).await.unwrap()
    });
    assert_eq!(pulled.as_deref(), Some(lab_id.as_str()));
    assert_eq!(
        info["version_images"][0]["reference"],
        reference.as_str(),
        "{info}"
    );
    assert_eq!(
        info["version_images"][0]["id"],
        lab_image().id.as_str(),
        "{info}"
    );
    // The fingerprint has the tools of the version's image, hashed in its container.
    let tools = &manifest["fingerprint"]["tools"][format!("gateway image:{reference}")];
    assert_eq!(tools["nginx"]["found"], true, "{tools}");
    assert_eq!(
        tools["nginx"]["sha256"], manifest["fingerprint"]["tools"]["worker"]["nginx"]["sha256"],
        "{tools}"
    );
    let runs = result_files(&dir);
    let gateway_run = runs
        .iter()
        .map(|p| json(p))
        .find(|r| r["case"].as_str().unwrap_or("").contains("simple-proxy"))
        .expect("a simple-proxy run");
    assert!(
        gateway_run["requests"].as_u64().unwrap() > 0,
        "{gateway_run}"
    );
    let detail = gateway_run["version_detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("image {reference} {lab_id}")),
        "{detail}"
    );
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
    remove_image_ref(&reference);

    // A reference the registry does not have: a clear error, exit 3, nothing left behind.
    let missing = registry.reference("perflab-test/none:v1");
    let out = suite_with_image_version(tmp.path(), &missing, &tmp.path().join("out-missing"));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains(&missing) && all.contains("pulling it failed"),
        "{all}"
    );
    let failed = only_results_folder(&tmp.path().join("out-missing"));
    let failed_lab = manifest_lab(&failed).expect("the lab was set up before the pull failed");
    let _cleanup_failed = Cleanup(failed_lab.clone());
    assert!(
        labelled(&failed_lab).is_empty(),
        "{:?}",
        labelled(&failed_lab)
    );
}

#[test]
fn cli_image_versions_need_the_docker_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let out = perflab_cli(tmp.path())
        .args([
            "suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
        ])
        .args(["--version", "image:perflab/lab:latest"])
        .args(QUICK)
        .arg("--output")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("--driver docker"), "{all}");
    assert!(!tmp.path().join("out").exists() || results_count(&tmp.path().join("out")) == 0);
}

fn results_count(output: &Path) -> usize {
    std::fs::read_dir(output).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn kong_releases_resolve_to_kong_images_on_docker() {
    // pull=never: the engine must not go to Docker Hub; the error names the image it wanted.
    let mut d = driver("kong-release", &[("pull", "never")]);
    let _cleanup = Cleanup(d.lab_id().to_string());
    let adapter = perflab::role::gateway::GatewayKind::Kong
        .require_adapter()
        .unwrap();
    let settings = toml::Table::new();
    for (version, wanted) in [
        ("3.9.1", "kong:3.9.1"),
        ("3.10.0-rc.1", "kong/kong:3.10.0-rc.1"),
    ] {
        let image = adapter
            .container_image(version, None, &settings)
            .unwrap()
            .expect("a release runs from an image");
        assert_eq!(image.reference, wanted);
        let e = match d.host_from_image(Role::Gateway, "default", &image) {
            Ok(_) => panic!("{wanted} is not in the engine"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(wanted) && e.contains("pull=never"), "{e}");
    }
    assert!(labelled(d.lab_id()).is_empty());
    d.teardown(true).unwrap();
}

#[test]
fn cli_git_versions_are_copied_into_the_gateway_container() {
    let _g = load_lock();
    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gateway-repo");
    let fixture = |n: &str| std::fs::read_to_string(Path::new(FIXTURE).join(n)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("gateway");
    let suite = tmp.path().join("suite");
    std::fs::create_dir_all(&suite).unwrap();
    std::fs::write(suite.join("gzip-body.toml"), fixture("case.toml")).unwrap();
    // One commit with the fixture gateway: perflab.toml and its nginx template.
    let repo = git2::Repository::init(&repo_dir).unwrap();
    let mut conf = repo.treebuilder(None).unwrap();
    let blob = repo.blob(fixture("nginx.conf.in").as_bytes()).unwrap();
    conf.insert("nginx.conf.in", blob, 0o100644).unwrap();
    let conf = conf.write().unwrap();
    let mut top = repo.treebuilder(None).unwrap();
    let desc = repo.blob(fixture("perflab.toml").as_bytes()).unwrap();
    top.insert("perflab.toml", desc, 0o100644).unwrap();
    top.insert("conf", conf, 0o040000).unwrap();
    let tree = repo.find_tree(top.write().unwrap()).unwrap();
    let sig =
        git2::Signature::new("t", "t@example.invalid", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let commit = repo
        .commit(Some("refs/heads/main"), &sig, &sig, "A", &tree, &[])
        .unwrap();

    let output = tmp.path().join("out");
    let out = perflab_cli(tmp.path())
        .arg("suite")
        .arg(&suite)
        .args(["--driver", "docker", "--driver-opt", &image_opt()])
        .args(["--version", "git:main", "--repo"])
        .arg(&repo_dir)
        .args(QUICK)
        .args(["--repeat", "1", "--noisy-pct", "100"])
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = only_results_folder(&output);
    let lab = manifest_lab(&dir).unwrap();
    let _cleanup = Cleanup(lab.clone());
    let runs = result_files(&dir);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let r = json(&runs[0]);
    assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["version_detail"]
            .as_str()
            .unwrap()
            .contains(&commit.to_string()),
        "{r}"
    );
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL in the lab's database container (Kong's traditional and hybrid modes on docker).

#[test]
fn session_postgres_runs_in_the_database_container_and_pgdumps_round_trip() {
    let d = driver("postgres", &[]);
    let lab = d.lab_id().to_string();
    let _cleanup = Cleanup(lab.clone());
    let mut s = perflab::session::Session::new();
    s.lab_id = lab.clone();
    s.use_driver_instance(Box::new(d)).unwrap();
    s.start_upstream("location = /test { return 200; }")
        .unwrap();
    let dsn = s.start_postgres().unwrap();
    assert!(dsn.starts_with("postgresql://kong@127.0.0.1:"), "{dsn}");
    // It runs in the database container: its data directory is there.
    let host = s.host(Role::Database, "default").unwrap();
    let pg = s.postgres().unwrap();
    assert!(host.name().starts_with("database"), "{}", host.name());
    let pidfile = host
        .read_file(&pg.dir().join("data/postmaster.pid"))
        .unwrap();
    assert!(!pidfile.is_empty());
    pg.psql(
        "CREATE TABLE services (id serial PRIMARY KEY, name text UNIQUE, protocol text, \
         host text, port bigint, path text); \
         INSERT INTO services (name, protocol, host, port, path) VALUES \
         ('s1', 'https', 'example.invalid', 443, '/test')",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.sql");
    s.save_pgdump(&dump).unwrap();
    assert!(
        std::fs::read_to_string(&dump)
            .unwrap()
            .contains("CREATE TABLE public.services")
    );
    // Restored and patched: the service points at the lab's upstream.
    s.load_pgdump(&dump, false).unwrap();
    let row = s
        .postgres()
        .unwrap()
        .psql("SELECT protocol, host, path FROM services WHERE name = 's1'")
        .unwrap();
    assert_eq!(row.trim(), "http|127.0.0.1|/test");
    s.teardown(true).unwrap();
    drop(s);
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
}

#[test]
fn cli_compare_of_two_image_versions_runs_each_in_its_own_container() {
    let _g = load_lock();
    // Two names for the lab image, local only (pull=never: nothing is fetched).
    let (a, b) = ("perflab-test/gw-a:1", "perflab-test/gw-b:1");
    let lab_id = lab_image().id.clone();
    runtime().block_on(async {
        let dk = docker::connect(Some(engine())).await.unwrap();
        image::tag_image(&dk, &lab_id, a).await.unwrap();
        image::tag_image(&dk, &lab_id, b).await.unwrap();
    });
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("out");
    let out = perflab_cli(tmp.path())
        .args(["compare", &format!("image:{a}"), &format!("image:{b}")])
        .args(["--design", "restart"])
        .args([
            "--suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
        ])
        .args(["--driver", "docker", "--driver-opt", &image_opt()])
        .args(["--driver-opt", "pull=never"])
        .args(QUICK)
        .args(["--repeat", "2", "--noisy-pct", "100", "--include-flagged"])
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = only_results_folder(&output);
    let manifest = json(&dir.join("manifest.json"));
    let info = &manifest["driver_info"];
    let lab = info["lab_id"].as_str().unwrap().to_string();
    let _cleanup = Cleanup(lab.clone());
    let refs: Vec<&str> = info["version_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, [a, b], "{info}");
    let containers = info["containers"].as_object().unwrap();
    for suffix in ["gateway-default-image1", "gateway-default-image2"] {
        assert!(
            containers.keys().any(|k| k.ends_with(suffix)),
            "{suffix} in {info}"
        );
    }
    // Interleaved runs, each recording the image it ran.
    let runs: Vec<serde_json::Value> = result_files(&dir).iter().map(|p| json(p)).collect();
    assert_eq!(runs.len(), 4, "{runs:?}");
    for r in &runs {
        let version = r["version"].as_str().unwrap();
        let image = version.strip_prefix("image:").unwrap();
        assert!(
            r["version_detail"]
                .as_str()
                .unwrap()
                .contains(&format!("image {image} ")),
            "{r}"
        );
    }
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
    remove_image_ref(a);
    remove_image_ref(b);
}

#[test]
fn cli_multiplexed_compare_runs_both_versions_in_containers_at_once() {
    let _g = load_lock();
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("out");
    let out = perflab_cli(tmp.path())
        .args(["compare", "current", "current", "--order-seed", "7"])
        .args([
            "--suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
        ])
        .args(["--driver", "docker", "--driver-opt", &image_opt()])
        // 50 s: room for two segments even when a loaded machine makes a block take 10 s.
        .args(["--budget", "50s", "--burst", "1", "--segment", "6"])
        .args(["--warmup", "0", "--plain"])
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = only_results_folder(&output);
    let manifest = json(&dir.join("manifest.json"));
    let lab = manifest["driver_info"]["lab_id"]
        .as_str()
        .unwrap()
        .to_string();
    let _cleanup = Cleanup(lab.clone());
    let design = json(&dir.join("design.json"));
    assert_eq!(design["options"]["order_seed"], 7);
    let case = &design["cases"]["simple-proxy@nginx"];
    assert!(case["segments"].as_u64().unwrap() >= 2, "{design}");
    // One container per version instance, and every burst charged to its own instance.
    let containers = manifest["driver_info"]["containers"].as_object().unwrap();
    for suffix in ["gateway-v0", "gateway-v1"] {
        assert!(
            containers.keys().any(|k| k.ends_with(suffix)),
            "{suffix} in {}",
            manifest["driver_info"]
        );
    }
    let runs: Vec<serde_json::Value> = result_files(&dir).iter().map(|p| json(p)).collect();
    assert!(runs.len() >= 8, "{}", runs.len());
    for r in &runs {
        let v = if r["version"] == "current" {
            "v0"
        } else {
            "v1"
        };
        assert_eq!(r["burst"]["instance"], v, "{r}");
        assert!(r["cpu"]["gateway_s"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["driver"], "docker");
    }
    let compare = json(&dir.join("compare.json"));
    let rps = compare["cases"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "rps")
        .cloned()
        .unwrap();
    assert_eq!(rps["method"], "multiplexed-blocks");
    assert!(rps["design"]["blocks"].as_u64().unwrap() >= 2, "{rps}");
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
}

#[test]
fn cli_open_loop_load_runs_on_two_load_host_containers_and_merges() {
    let _g = load_lock();
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("out");
    let out = perflab_cli(tmp.path())
        .args([
            "suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
        ])
        .args(["--driver", "docker", "--driver-opt", &image_opt()])
        .args(["--driver-opt", "load_hosts=2"])
        .args(["--rate", "400", "--connections", "10", "--threads", "1"])
        .args(QUICK)
        .args(["--repeat", "1"])
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let all = text(&out);
    let dir = only_results_folder(&output);
    let _cleanup = manifest_lab(&dir).map(Cleanup);
    assert!(out.status.success(), "{all}");
    let files = result_files(&dir);
    assert_eq!(files.len(), 1, "{all}");
    let rec = json(&files[0]);
    let ol = &rec["open_loop"];
    assert_eq!(ol["load_hosts"], 2, "{rec}");
    let hosts = ol["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    assert!(
        hosts[1]["host"].as_str().unwrap().contains("load-2"),
        "{hosts:?}"
    );
    assert!(hosts.iter().all(|h| h["rate_asked"] == 200.0));
    // Each container ran perflab's generator (copied in), and the run's histogram holds both.
    let h = perflab::role::load::histogram::decode(
        &std::fs::read(files[0].with_file_name("latency.hdr")).unwrap(),
    )
    .unwrap();
    assert_eq!(h.len(), rec["requests"].as_u64().unwrap());
    assert_eq!(
        std::fs::read_to_string(files[0].with_file_name("open-load.json"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}
