//! The profiler role against real programs: perf records a real nginx (own prefix, loopback,
//! one worker) while real wrk loads it; the profile is folded, rendered and diffed. SystemTap is
//! checked for real (it cannot run on the project's kernels, so the clear failure is tested), and
//! perf's refusal under `perf_event_paranoid` is produced for real by running perf as `nobody`.
//!
//! The tests skip (with a printed reason) only when `perf` is not installed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use perflab::Error;
use perflab::host::{Cmd, Host, LocalHost, Proc, poll_until};
use perflab::report::flamegraph::{
    differential_folded, render_differential, render_flamegraph, write_profile,
};
use perflab::role::profiler::{
    CallGraph, Profile, ProfileMode, ProfilerOptions, StapxxOptions, perf_refusal_message,
    read_perf_event_paranoid, start_profiler, start_stapxx, systemtap_blockers,
};

use crate::util::{free_port, is_root, load_lock, perf_usable, skip};

/// A real nginx with its own prefix, one worker, on a free loopback port.
struct Nginx {
    host: Arc<dyn Host>,
    proc: Box<dyn Proc>,
    port: u16,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Nginx {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let host: Arc<dyn Host> = Arc::new(LocalHost::new("local", &dir.join("lab")).unwrap());
        let port = free_port();
        let prefix = dir.join("nginx");
        for d in ["logs", "tmp", "html"] {
            std::fs::create_dir_all(prefix.join(d)).unwrap();
        }
        // A 256 KiB static file: served with sendfile, a different kernel path than `return`.
        std::fs::write(prefix.join("html/big.bin"), vec![b'x'; 256 * 1024]).unwrap();
        let p = prefix.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n\
               client_body_temp_path {p}/tmp/body; proxy_temp_path {p}/tmp/proxy;\n\
               fastcgi_temp_path {p}/tmp/fcgi; uwsgi_temp_path {p}/tmp/uwsgi; scgi_temp_path {p}/tmp/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {p}/html;\n\
                 location = / {{ return 200 \"hello\\n\"; }}\n  }}\n}}\n"
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let cmd = Cmd::new("nginx")
            .arg("-p")
            .arg(prefix.display().to_string())
            .arg("-e")
            .arg(prefix.join("logs/error.log").display().to_string())
            .arg("-c")
            .arg(conf_path.display().to_string());
        let mut proc = host.spawn(&cmd, &dir.join("nginx.out")).unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        let up = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
            assert!(
                proc.is_running(),
                "nginx exited: {}",
                std::fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default()
            );
            (host.http_status(&url, Duration::from_secs(2)).ok() == Some(200)).then_some(())
        });
        assert!(up.is_some(), "nginx did not answer on {url}");
        // Master and worker in the group.
        let pgid = proc.pid();
        let both = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let snap = host.proc_snapshot().ok()?;
            (snap.procs.values().filter(|p| p.pgrp == pgid).count() >= 2).then_some(())
        });
        assert!(both.is_some(), "nginx worker did not appear");
        Nginx {
            host,
            proc,
            port,
            dir,
            _tmp: tmp,
        }
    }

    fn pgid(&self) -> u32 {
        self.proc.pid()
    }

    /// wrk for `secs` seconds against `path`.
    fn load(&self, path: &str, secs: u32) {
        let out = self
            .host
            .run(
                &Cmd::new("wrk")
                    .args(["-t1", "-c10"])
                    .arg(format!("-d{secs}s"))
                    .arg(format!("http://127.0.0.1:{}{path}", self.port)),
                Duration::from_secs(u64::from(secs) + 30),
            )
            .unwrap();
        assert!(out.success(), "wrk failed: {}", out.combined_text());
        assert!(
            out.stdout_text().contains("requests in"),
            "{}",
            out.stdout_text()
        );
    }

    /// Profiles the nginx group while wrk loads `path`.
    fn profile(&self, name: &str, path: &str, opts: ProfilerOptions) -> Profile {
        let running = start_profiler(
            self.host.clone(),
            self.pgid(),
            &self.dir.join(name),
            opts.clone(),
        )
        .unwrap();
        assert_eq!(running.pids().len(), 2, "master + one worker");
        self.load(path, 2);
        let profile = running.stop_and_collect().unwrap();
        assert_eq!(profile.mode, ProfileMode::Perf(opts.call_graph));
        assert_eq!(profile.event, "cpu-clock");
        assert!(self.dir.join(name).join("perf.data").exists());
        profile
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.proc.stop(Duration::from_secs(5));
    }
}

fn frames(folded: &str) -> Vec<&str> {
    folded
        .lines()
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s))
        .flat_map(|s| s.split(';'))
        .collect()
}

/// `rgb(R,G,B)` fills of an SVG.
fn fills(svg: &str) -> Vec<(u8, u8, u8)> {
    svg.split("rgb(")
        .skip(1)
        .filter_map(|s| {
            let inner = s.split(')').next()?;
            let v: Vec<u8> = inner
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect()
}

#[test]
fn perf_profiles_nginx_under_wrk_and_renders_flame_graphs() {
    if !perf_usable("perf profiles nginx under wrk and renders flame graphs") {
        return;
    }
    let _g = load_lock();
    let nginx = Nginx::start();
    let opts = ProfilerOptions {
        frequency_hz: 499,
        ..ProfilerOptions::default()
    };
    let small = nginx.profile("small", "/", opts.clone());

    eprintln!(
        "fp profile: {} samples, {} stacks",
        small.samples,
        small.folded.lines().count()
    );
    assert!(!small.folded.trim().is_empty());
    assert!(small.samples > 20, "only {} samples", small.samples);
    let f = frames(&small.folded);
    assert!(f.contains(&"nginx"), "root frame is the process name");
    let net: Vec<&&str> = f
        .iter()
        .filter(|x| x.starts_with("tcp_") || x.starts_with("__sys_") || x.contains("sendto"))
        .collect();
    assert!(
        !net.is_empty(),
        "no kernel network frames:\n{}",
        small.folded
    );
    eprintln!("kernel network frames seen: {:?}", {
        let mut n = net.clone();
        n.sort();
        n.dedup();
        n.into_iter().take(12).collect::<Vec<_>>()
    });

    // Stored as folded stacks + SVG.
    let store = nginx.dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let title = "nginx under wrk <fp> & friends";
    let (folded_path, svg_path) = write_profile(&store, "small", &small.folded, title).unwrap();
    assert_eq!(std::fs::read_to_string(&folded_path).unwrap(), small.folded);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<?xml"), "{}", &svg[..100.min(svg.len())]);
    assert!(
        svg.contains("nginx under wrk &lt;fp&gt; &amp; friends"),
        "title missing"
    );
    assert!(svg.contains("samples"));
    // Deterministic rendering.
    let again = store.join("again.svg");
    render_flamegraph(&small.folded, title, &again).unwrap();
    assert_eq!(std::fs::read_to_string(&again).unwrap(), svg);

    // A second real profile with a different workload (256 KiB file via sendfile), diffed.
    let big = nginx.profile("big", "/big.bin", opts);
    assert!(big.samples > 20, "only {} samples", big.samples);
    let diff = differential_folded(&small.folded, &big.folded).unwrap();
    let rows: Vec<(u64, u64)> = diff
        .lines()
        .filter_map(|l| {
            let mut it = l.rsplitn(3, ' ');
            let after = it.next()?.parse().ok()?;
            let before = it.next()?.parse().ok()?;
            Some((before, after))
        })
        .collect();
    assert!(rows.iter().any(|&(b, a)| b == 0 && a > 0), "no new stacks");
    assert!(rows.iter().any(|&(b, a)| b > a), "nothing shrank");
    let diff_svg = store.join("diff.svg");
    render_differential(&small.folded, &big.folded, "small → big", &diff_svg).unwrap();
    let svg = std::fs::read_to_string(&diff_svg).unwrap();
    assert!(svg.contains("small → big"));
    let fills = fills(&svg);
    let red = fills.iter().any(|&(r, g, b)| r == 255 && g == b && g < 250);
    let blue = fills.iter().any(|&(r, g, b)| b == 255 && r == g && r < 250);
    assert!(red && blue, "differential graph lacks red or blue frames");
}

#[test]
fn dwarf_mode_recovers_nginx_frames() {
    if !perf_usable("dwarf mode recovers nginx frames") {
        return;
    }
    let _g = load_lock();
    let nginx = Nginx::start();
    let opts = ProfilerOptions {
        frequency_hz: 199,
        call_graph: CallGraph::Dwarf,
        ..ProfilerOptions::default()
    };
    let p = nginx.profile("dwarf", "/", opts);
    eprintln!(
        "dwarf profile: {} samples, {} stacks",
        p.samples,
        p.folded.lines().count()
    );
    assert!(p.samples > 10, "only {} samples", p.samples);
    // Full user-space stacks: nginx's own functions below the event loop.
    let f = frames(&p.folded);
    assert!(f.iter().any(|x| x.starts_with("ngx_")), "{}", p.folded);
    let deep = p
        .folded
        .lines()
        .filter(|l| l.matches("ngx_").count() >= 3)
        .count();
    assert!(deep > 0, "no stack with 3+ nginx frames:\n{}", p.folded);
}

#[test]
fn fixed_duration_profile_ends_by_itself() {
    if !perf_usable("fixed duration profile ends by itself") {
        return;
    }
    let _g = load_lock();
    let nginx = Nginx::start();
    let opts = ProfilerOptions {
        frequency_hz: 499,
        duration: Some(Duration::from_secs(1)),
        ..ProfilerOptions::default()
    };
    let running = start_profiler(
        nginx.host.clone(),
        nginx.pgid(),
        &nginx.dir.join("timed"),
        opts,
    )
    .unwrap();
    nginx.load("/", 2);
    let p = running.wait_and_collect(Duration::from_secs(60)).unwrap();
    assert!(p.samples > 0);
    let log = std::fs::read_to_string(nginx.dir.join("timed/perf-record.log")).unwrap();
    assert!(log.contains("Captured and wrote"), "{log}");
}

#[test]
fn a_group_without_processes_is_a_clear_error() {
    if !perf_usable("a group without processes is a clear error") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host: Arc<dyn Host> = Arc::new(LocalHost::new("local", tmp.path()).unwrap());
    // pid_max is at most 2^22: no process group has this id.
    let e = start_profiler(host, 4_194_400, tmp.path(), ProfilerOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Lab(_)), "{e}");
    assert!(e.to_string().contains("no processes"), "{e}");
}

#[test]
fn stapxx_fails_with_the_reasons_and_points_to_perf() {
    let tmp = tempfile::tempdir().unwrap();
    let host: Arc<dyn Host> = Arc::new(LocalHost::new("local", tmp.path()).unwrap());
    let opts = StapxxOptions::new(std::process::id(), tmp.path());
    let blockers = systemtap_blockers(host.as_ref(), &opts.stapxx_dir).unwrap();
    eprintln!("SystemTap blockers here: {:?}", blockers.all());
    if blockers.kernel.is_empty() {
        skip(
            "stapxx failure",
            "this kernel could run SystemTap; the failure path is not reachable",
        );
        return;
    }
    let e = start_stapxx(host, "lj-lua-stacks.sxx", &opts).unwrap_err();
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(matches!(e, Error::Lab(_)));
    assert!(
        msg.starts_with("SystemTap cannot run on host local: "),
        "{msg}"
    );
    assert!(msg.contains("start_profiler"), "{msg}");
    for b in &blockers.kernel {
        assert!(msg.contains(b.as_str()), "{msg}");
    }
}

/// perf's refusal, live: perf as an unprivileged user, aimed at a root-owned process, is
/// recognised and explained with this host's setting. (The recorded refusal is a unit test of
/// `perf_refusal_message`, fixture tests/fixtures/perf/refusal-paranoid-2.txt.)
#[test]
fn perf_refusal_is_explained() {
    if !perf_usable("the live refusal") {
        return;
    }
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    if !is_root() || which::which("runuser").is_err() || paranoid.is_none_or(|p| p < 2) {
        skip(
            "the live refusal",
            "needs root, runuser and perf_event_paranoid >= 2",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host = LocalHost::new("local", tmp.path()).unwrap();
    // nobody must be able to create perf's output file before perf opens its events.
    let out_dir = tmp.path().join("nobody");
    std::fs::create_dir(&out_dir).unwrap();
    let out_dir_s = out_dir.display().to_string();
    host.run(
        &Cmd::new("chmod").arg("0777").arg(&out_dir_s),
        Duration::from_secs(10),
    )
    .unwrap();
    let target = std::process::id(); // this test process runs as root
    let out = host
        .run(
            &Cmd::new("runuser")
                .args(["-u", "nobody", "--", "perf", "record"])
                .args([
                    "-e",
                    "cpu-clock",
                    "-g",
                    "-p",
                    &target.to_string(),
                    "-o",
                    &format!("{out_dir_s}/perf.data"),
                    "--",
                    "sleep",
                    "0.1",
                ]),
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(!out.success(), "perf as nobody was not refused");
    let text = out.combined_text();
    let m = perf_refusal_message("local", &text, read_perf_event_paranoid(&host))
        .unwrap_or_else(|| panic!("not recognised as a refusal: {text}"));
    assert!(
        m.contains(&format!("perf_event_paranoid is {}", paranoid.unwrap())),
        "{m}"
    );
}
