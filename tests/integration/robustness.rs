//! Robustness of the lab on the local driver, with real nginx, HAProxy and wrk (issue 18): bad
//! input of every kind is refused with a message naming it and leaves nothing behind, a panic and
//! a late SIGTERM still end in order, a gateway that dies during a run is detected and flagged,
//! and secrets passed on the command line reach no file of the results folder.
//!
//! As in tests/e2e.rs, each perflab child gets its own TMPDIR, which every process the lab starts
//! inherits, so "nothing left running" is checked by scanning `/proc/*/environ` for it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::util::{
    FAST, Lab, Points, json, live_kong, load_lock, parsable_runs, printed_runs, skip, stderr,
    wait_for,
};

/// The only run folder of a results folder.
fn only_run(dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

const CASE_HEAD: &str = "[case]\nname = \"c\"\ngateway = \"nginx\"\n";

#[test]
fn bad_inputs_are_refused_naming_the_input_and_leave_nothing() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.out();
    let a_file = lab.root().join("a-file");
    std::fs::write(&a_file, "not a folder").unwrap();
    let a_file = a_file.display().to_string();
    // (extra args after `suite rps`, or a case file; exit status; words the message must hold)
    let flags: &[(&[&str], i32, &[&str])] = &[
        (
            &["--duration", "-1"],
            2,
            &["'-1'", "--duration", "from 1 to 86400"],
        ),
        (&["--duration", "inf"], 2, &["'inf'", "--duration"]),
        (&["--duration", "1e300"], 2, &["'1e300'", "--duration"]),
        (&["--duration", "0"], 2, &["'0'", "--duration"]),
        (
            &["--cooldown-max", "NaN"],
            2,
            &["'NaN'", "--cooldown-max", "from 0 to 3600"],
        ),
        (&["--cooldown-max", "-5"], 2, &["'-5'", "--cooldown-max"]),
        (&["--warmup", "inf"], 2, &["'inf'", "--warmup"]),
        (&["--warmup", "-1"], 2, &["'-1'", "--warmup"]),
        (
            &["--repeat", "4000000000"],
            2,
            &["'4000000000'", "--repeat", "from 1 to 10000"],
        ),
        (&["--repeat", "0"], 2, &["'0'", "--repeat"]),
        (&["--repeat", "-3"], 2, &["'-3'", "--repeat", "negative"]),
        (&["--connections", "-5"], 2, &["'-5'", "--connections"]),
        (
            &["--threads", "0"],
            2,
            &["'0'", "--threads", "from 1 to 1024"],
        ),
        (
            &["--noisy-pct", "101"],
            2,
            &["'101'", "--noisy-pct", "from 0 to 100"],
        ),
        (&["--profile-hz", "0"], 2, &["'0'", "--profile-hz"]),
        (
            &["--port-base", "65500"],
            2,
            &["'65500'", "--port-base", "PORT+100"],
        ),
        (&["--port-base", "-1"], 2, &["'-1'", "--port-base"]),
        (
            &["--driver-opt", "novalue"],
            2,
            &["\"novalue\"", "KEY=VALUE"],
        ),
        (
            &["--output", &a_file],
            2,
            &[&a_file, "is a file, not a folder"],
        ),
    ];
    for (extra, code, needles) in flags {
        // Without FAST: a flag may be given once (nothing runs when the test passes).
        let mut args = vec!["suite", "rps", "--tags", "baseline"];
        if !extra.contains(&"--output") {
            args.extend_from_slice(&["--output", &out]);
        }
        args.extend_from_slice(extra);
        check(&lab, &args, *code, needles);
    }
    let compare: &[(&[&str], &[&str])] = &[
        (&["--noise-band", "50"], &["'50'", "--noise-band"]),
        (&["--noise-band", "-1"], &["'-1'", "--noise-band"]),
        (
            &["--fail-on-regression", "-1"],
            &["'-1'", "--fail-on-regression"],
        ),
        (
            &["--fail-on-regression", "inf"],
            &["'inf'", "--fail-on-regression"],
        ),
    ];
    for (extra, needles) in compare {
        let mut args = vec!["compare", "current", "current", "--output", &out];
        args.extend_from_slice(extra);
        check(&lab, &args, 2, needles);
    }
    let report_dir = lab.root().join("report");
    std::fs::create_dir_all(&report_dir).unwrap();
    let r = report_dir.display().to_string();
    check(
        &lab,
        &["report", &r, "--noise-band", "NaN"],
        2,
        &["'NaN'", "--noise-band"],
    );
    check(
        &lab,
        &["reproduce", &r, "--repeat", "0"],
        2,
        &["'0'", "--repeat"],
    );
    // capacity's numbers: negative ones reach perflab's own bounds, not clap's "unexpected
    // argument".
    for (flag, value, words) in [
        ("--target-ms", "-1", "--target-ms must be a positive number"),
        (
            "--target-ms",
            "inf",
            "--target-ms must be a positive number",
        ),
        (
            "--percentile",
            "-3",
            "--percentile must be above 0 and below 100",
        ),
        (
            "--start-rate",
            "-5",
            "--start-rate and --max-rate must satisfy",
        ),
        (
            "--precision",
            "NaN",
            "--precision must be from 0.1 to 100 percent",
        ),
    ] {
        let mut args = vec!["capacity", "rps", "--tags", "baseline"];
        if flag != "--target-ms" {
            args.extend(["--target-ms", "10"]);
        }
        args.extend([flag, value]);
        check(&lab, &args, 2, &[words]);
    }
    // Case files: the file, the field and the bound are named.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "dur-inf",
            "[case.load]\nduration = inf\n",
            &[
                "load.duration",
                "duration must be a finite number of seconds from 1 to 86400",
                "(got inf)",
            ],
        ),
        (
            "dur-huge",
            "[case.load]\nduration = 1e300\n",
            &["duration must be", "from 1 to 86400"],
        ),
        (
            "warm-nan",
            "[case.load]\nwarmup = nan\n",
            &["warmup must be a finite number of seconds from 0 to 3600"],
        ),
        (
            "body-neg",
            "[case.upstream]\nbody_bytes = -5\n",
            &[
                "body-neg.toml:5:",
                "field `body_bytes`",
                "from 0 to 1073741824",
            ],
        ),
        (
            "body-huge",
            "[case.upstream]\nbody_bytes = 9000000000\n",
            &["upstream.body_bytes must be from 0 to 1073741824"],
        ),
        (
            "ports",
            "[case.upstream]\nports = 500\n",
            &["upstream.ports must be from 1 to 100"],
        ),
        (
            "conn-neg",
            "[case.load]\nconnections = -1\n",
            &["conn-neg.toml:5:", "field `connections`"],
        ),
        (
            "threads-big",
            "[case.load]\nthreads = 5000\nconnections = 6000\n",
            &["threads must be from 1 to 1024"],
        ),
        (
            "timeout",
            "[case.load]\ntimeout = 0\n",
            &["timeout must be from 1 to 3600"],
        ),
        (
            "repeats",
            "repeats = 4000000000\n",
            &["repeats must be from 1 to 10000"],
        ),
        (
            "workers",
            "workers = 0\n",
            &["workers must be from 1 to 1024"],
        ),
        (
            "routes",
            "[case.entities]\nservices = 4000000000\n",
            &["routes.toml:5:", "services must be from 1 to 100000"],
        ),
    ];
    for (name, body, needles) in cases {
        let text = format!("{CASE_HEAD}{body}");
        let dir = lab.suite(name, &text);
        let mut args = vec!["suite", dir.as_str(), "--output", &out];
        args.push("--plain");
        let file = format!("{name}.toml");
        let mut n: Vec<&str> = vec![&file];
        n.extend_from_slice(needles);
        check(&lab, &args, 2, &n);
    }
    // Nothing above made a results folder.
    assert!(lab.results_dirs().is_empty(), "{:?}", lab.results_dirs());

    // A missing gateway program: the missing-tool status, said once.
    let dir = lab.suite(
        "nobin",
        "[case]\nname = \"nobin\"\ngateways = [\"nginx\", \"haproxy\"]\n[case.gateway_settings]\nbinary = \"/nonexistent/gateway-bin\"\n[case.load]\nconnections = 10\nthreads = 1\n",
    );
    for g in ["nginx", "haproxy"] {
        let mut args = vec!["suite", dir.as_str(), "--gateway", g, "--output", &out];
        args.extend_from_slice(FAST);
        let o = check(
            &lab,
            &args,
            3,
            &["/nonexistent/gateway-bin", "not installed"],
        );
        assert_eq!(
            stderr(&o).matches("not installed").count(),
            1,
            "said once: {}",
            stderr(&o)
        );
    }
    // A damaged manifest: `report` says so and fails.
    let damaged = lab.root().join("damaged");
    std::fs::create_dir_all(damaged.join("runs")).unwrap();
    std::fs::write(
        damaged.join("manifest.json"),
        "{\"schema\": \"perflab.manifest/1\", ",
    )
    .unwrap();
    let d = damaged.display().to_string();
    check(
        &lab,
        &["report", &d],
        2,
        &["manifest.json is damaged", "EOF"],
    );
    check(
        &lab,
        &["report", &a_file],
        2,
        &["not a perflab results folder"],
    );
    lab.assert_nothing_left();
}

fn check(lab: &Lab, args: &[&str], code: i32, needles: &[&str]) -> Output {
    let o = lab.run(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "perflab {}: {err}",
        args.join(" ")
    );
    for n in needles {
        assert!(
            err.contains(n),
            "perflab {}: stderr lacks {n:?}:\n{err}",
            args.join(" ")
        );
    }
    assert!(!err.contains("panicked"), "{err}");
    lab.assert_nothing_left();
    o
}

#[test]
fn haproxy_refusing_its_config_shows_its_alerts_and_keeps_the_config() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.out();
    let dir = lab.suite(
        "refused",
        "[case]\nname = \"refused\"\ngateway = \"haproxy\"\n[case.gateway_settings]\nextra_config = \"bogus_keyword on\"\n[case.load]\nconnections = 10\nthreads = 1\n",
    );
    let mut args = vec!["suite", dir.as_str(), "--output", &out];
    args.extend_from_slice(FAST);
    let o = check(
        &lab,
        &args,
        4,
        &[
            "haproxy refused its configuration",
            "ALERT",
            "bogus_keyword",
            "kept as",
        ],
    );
    let run = only_run(&lab.results_dir());
    let kept = std::fs::read_to_string(run.join("refused-haproxy.cfg")).unwrap();
    assert!(kept.contains("bogus_keyword on"), "{kept}");
    let msg = std::fs::read_to_string(run.join("refused-message.txt")).unwrap();
    assert!(msg.contains("ALERT"), "{msg}");
    assert!(stderr(&o).contains(&run.join("refused-haproxy.cfg").display().to_string()));
    assert!(
        json(&lab.results_dir().join("manifest.json"))["status"]
            .as_str()
            .unwrap()
            .starts_with("failed: haproxy refused")
    );
}

#[test]
fn a_busy_gateway_port_is_named_on_the_gateway_host() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.out();
    // A listener on the gateway's port (PORT+100); the upstream's PORT stays free.
    let (busy, base) = loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p > 1124 && std::net::TcpListener::bind(("127.0.0.1", p - 100)).is_ok() {
            break (l, p - 100);
        }
    };
    let base = base.to_string();
    let mut args = vec![
        "suite",
        "rps",
        "--tags",
        "simple-proxy",
        "--gateway",
        "nginx",
        "--port-base",
        &base,
        "--no-pin",
        "--output",
        &out,
    ];
    args.extend_from_slice(FAST);
    let port = busy.local_addr().unwrap().port();
    check(&lab, &args, 4, &[&format!("port {port} on gateway")]);
    drop(busy);
}

#[test]
fn a_panic_tears_down_and_marks_the_results_failed() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.out();
    let args = [
        "suite",
        "rps",
        "--tags",
        "baseline",
        "--output",
        &out,
        "--duration",
        "1",
        "--repeat",
        "2",
        "--warmup",
        "0",
        "--cooldown-max",
        "0",
        "--plain",
    ];
    let mut c = lab.cmd(&args);
    c.env("PERFLAB_DEBUG_PANIC_AT_RUN", "2");
    let o = lab.run_with(c, &args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(70), "{err}");
    assert!(
        err.contains("internal error") && err.contains("deliberate panic"),
        "{err}"
    );
    let dir = lab.results_dir();
    let status = json(&dir.join("manifest.json"))["status"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(status.starts_with("failed: internal error"), "{status}");
    assert!(
        only_run(&dir).join("result.json").is_file(),
        "the first run is kept"
    );
    lab.assert_nothing_left();
}

/// Whether one of the lab's processes is wrk.
fn wrk_runs(lab: &Lab) -> bool {
    lab.processes().iter().any(|(_, _, c)| is_wrk(c))
}

/// A wrk that drives load: perflab always passes `--latency` to it, which the fingerprint's
/// short `wrk -v` probe (also a `wrk` process of the lab, for a moment) does not have.
fn is_wrk(cmd: &str) -> bool {
    let mut words = cmd.split_whitespace();
    words
        .next()
        .is_some_and(|p| p.ends_with("/wrk") || p == "wrk")
        && words.any(|w| w == "--latency")
}

#[test]
fn sigterm_during_the_last_run_ends_interrupted() {
    let _g = load_lock();
    // During the load, and just after it (files written, gateway stopping).
    for after_load in [false, true] {
        let lab = Lab::new();
        let out = lab.out();
        let args = [
            "suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
            "--duration",
            "2",
            "--repeat",
            "1",
            "--warmup",
            "0",
            "--cooldown-max",
            "0",
            "--plain",
            "--no-pin",
            "--output",
            &out,
        ];
        let (mut child, _err) = lab.spawn(&args);
        wait_for(&mut child, "wrk runs", || wrk_runs(&lab).then_some(()));
        if after_load {
            wait_for(&mut child, "wrk ends", || (!wrk_runs(&lab)).then_some(()));
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "after_load={after_load}");
        assert_eq!(
            json(&lab.results_dir().join("manifest.json"))["status"],
            "interrupted",
            "after_load={after_load}"
        );
        lab.assert_nothing_left();
    }
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_marks_the_results_interrupted() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.out();
    let args = [
        "suite",
        "rps",
        "--tags",
        "simple-proxy",
        "--gateway",
        "nginx",
        "--duration",
        "5",
        "--repeat",
        "2",
        "--warmup",
        "0",
        "--cooldown-max",
        "0",
        "--plain",
        "--no-pin",
        "--output",
        &out,
    ];
    let (mut child, _err) = lab.spawn(&args);
    wait_for(&mut child, "wrk runs", || wrk_runs(&lab).then_some(()));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        json(&lab.results_dir().join("manifest.json"))["status"],
        "interrupted"
    );
    lab.assert_nothing_left();
}

#[test]
fn interrupts_at_seeded_points_leave_nothing_after_teardown() {
    let _g = load_lock();
    let mut points = Points::from_env();
    let signals = [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGKILL,
        nix::sys::signal::Signal::SIGKILL,
    ];
    for sig in signals {
        let lab = Lab::new();
        let out = lab.out();
        let args = [
            "suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
            "--duration",
            "1",
            "--repeat",
            "3",
            "--warmup",
            "0",
            "--cooldown-max",
            "0",
            "--plain",
            "--no-pin",
            "--output",
            &out,
        ];
        let at = points.delay(0.0, 5.0);
        let (mut child, err) = lab.spawn(&args);
        let start = Instant::now();
        while start.elapsed() < at && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let finished_first = child.try_wait().unwrap().is_some();
        if !finished_first {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        }
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(&err).unwrap();
        if !finished_first && sig != nix::sys::signal::Signal::SIGKILL {
            // A signal after the last run was written may still end in 130 (status
            // `interrupted`): never 0 while the lab was stopping, never a crash.
            assert_eq!(status.code(), Some(130), "{sig} at {at:?}:\n{text}");
        }
        // What the kernel and the lab's own handlers left before any teardown.
        std::thread::sleep(Duration::from_millis(500));
        let orphans = lab.leftovers();
        let journals = std::fs::read_dir(lab.root().join("cache/labs"))
            .map(|d| d.count())
            .unwrap_or(0);
        eprintln!(
            "interrupt: {sig} at {:.2}s{}: {} orphan process(es) before teardown, {journals} journal(s)",
            at.as_secs_f64(),
            if finished_first {
                " (after the end)"
            } else {
                ""
            },
            orphans.len()
        );
        for o in &orphans {
            eprintln!("interrupt:   orphan {o}");
        }
        if sig != nix::sys::signal::Signal::SIGKILL {
            assert!(orphans.is_empty(), "{sig}: left running: {orphans:#?}");
            assert_eq!(journals, 0, "{sig}: an orderly end keeps its journal");
        }
        let o = lab.run(&["teardown", "--driver", "local"]);
        assert!(o.status.success(), "{}", stderr(&o));
        lab.assert_nothing_left();
        if journals > 0
            && let Some(d) = lab.results_dirs().pop()
        {
            let status = json(&d.join("manifest.json"))["status"].clone();
            assert!(
                status != "running",
                "{sig}: the killed lab's results stay running"
            );
        }
        let tmp_left: Vec<_> = std::fs::read_dir(lab.tmp())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(tmp_left.is_empty(), "{sig}: lab folders left: {tmp_left:?}");
        let journals_left = std::fs::read_dir(lab.root().join("cache/labs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(journals_left, 0, "{sig}: journals left");
        let printed = printed_runs(&text);
        let stored = parsable_runs(&lab.output());
        assert!(
            stored >= printed,
            "{sig} at {at:?}: {printed} run(s) printed, {stored} on disk and parsable"
        );
        eprintln!("interrupt: {sig}: {printed} printed run(s), {stored} stored and parsable");
    }
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The main process (nginx's master; HAProxy's only process).
    Main,
    /// One nginx worker (nginx starts another in its place).
    Worker,
    /// The whole process group.
    Group,
}

fn kill_gateway_during_run(gateway: &str, what: Kill, keep_going: bool) {
    let lab = Lab::new();
    let out = lab.out();
    let mut args = vec![
        "suite",
        "rps",
        "--tags",
        "simple-proxy",
        "--gateway",
        gateway,
        "--duration",
        "3",
        "--repeat",
        "1",
        "--warmup",
        "0",
        "--cooldown-max",
        "0",
        "--plain",
        "--no-pin",
        "--output",
        &out,
    ];
    if keep_going {
        args.push("--keep-going");
    }
    let (mut child, err_file) = lab.spawn(&args);
    wait_for(&mut child, "wrk runs", || wrk_runs(&lab).then_some(()));
    std::thread::sleep(Duration::from_millis(700));
    let procs = lab.processes();
    let main = procs
        .iter()
        .find(|(_, _, c)| c.contains("gateway-default") && !is_wrk(c))
        .unwrap_or_else(|| panic!("no gateway process in {procs:#?}"))
        .0;
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;
    match what {
        Kill::Main => kill(Pid::from_raw(main), Signal::SIGKILL).unwrap(),
        Kill::Worker => {
            let worker = procs
                .iter()
                .find(|(pid, pgrp, _)| *pgrp == main && *pid != main)
                .unwrap_or_else(|| panic!("no worker of {main} in {procs:#?}"))
                .0;
            kill(Pid::from_raw(worker), Signal::SIGKILL).unwrap()
        }
        Kill::Group => killpg(Pid::from_raw(main), Signal::SIGKILL).unwrap(),
    }
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&err_file).unwrap();
    eprintln!("{gateway} {what:?}: {err}");
    assert_eq!(
        status.code(),
        Some(if keep_going { 0 } else { 5 }),
        "{gateway} {what:?}: {err}"
    );
    assert!(err.contains("the gateway died during the run"), "{err}");
    let dir = lab.results_dir();
    let manifest = json(&dir.join("manifest.json"));
    assert_eq!(manifest["status"], "complete");
    assert_eq!(
        manifest["gateway_deaths"].as_array().map(Vec::len),
        Some(1),
        "{manifest}"
    );
    let run = only_run(&dir);
    let rec = json(&run.join("result.json"));
    assert_eq!(rec["flags"]["gateway_died"], true, "{rec}");
    let gw_s = &rec["cpu"]["gateway_s"];
    assert!(gw_s.is_null() || gw_s.as_f64().unwrap() >= 0.0, "{rec}");
    assert!(rec["cpu"]["upstream_s"].as_f64().unwrap() >= 0.0, "{rec}");
    let notes = rec["notes"].as_array().unwrap();
    assert!(!notes.is_empty());
    assert!(run.join("gateway-error.log").is_file());
    if let Kill::Worker = what {
        let log = std::fs::read_to_string(run.join("gateway-error.log")).unwrap();
        assert!(log.contains("exited on signal 9"), "{log}");
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("gateway-died"), "{summary}");
    // Left out of the statistics: no row for the case.
    let stats = json(&dir.join("summary.json"));
    assert!(!stats.to_string().contains("\"runs\":1"), "{stats}");
    lab.assert_nothing_left();
}

#[test]
fn nginx_master_worker_or_group_dying_is_flagged() {
    let _g = load_lock();
    kill_gateway_during_run("nginx", Kill::Main, false);
    kill_gateway_during_run("nginx", Kill::Worker, false);
    kill_gateway_during_run("nginx", Kill::Group, true);
}

#[test]
fn haproxy_dying_is_flagged() {
    let _g = load_lock();
    kill_gateway_during_run("haproxy", Kill::Main, false);
    kill_gateway_during_run("haproxy", Kill::Group, true);
}

#[test]
fn secrets_reach_no_file_of_the_results_folder() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.out();
    let secrets = [
        "sEcReT-api-token-0451",
        "hunter2-fake-password",
        "another-fake-token-9931",
        "env-only-secret-5520",
    ];
    let opt1 = format!("var.api_token={}", secrets[0]);
    let opt2 = format!("--driver-opt=password={}", secrets[1]);
    let opt3 = format!("github_token={}", secrets[2]);
    let mut args = vec![
        "suite",
        "rps",
        "--tags",
        "simple-proxy",
        "--driver-opt",
        &opt1,
        &opt2,
        "--driver-opt",
        &opt3,
        "--output",
        &out,
    ];
    args.extend_from_slice(FAST);
    let mut c = lab.cmd(&args);
    c.env("TF_VAR_api_token", secrets[3])
        .env("PERF_TEST_DIGITALOCEAN_TOKEN", secrets[3]);
    let o = lab.run_with(c, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = lab.results_dir();
    // Re-render too: reports must not bring them back.
    let d = dir.display().to_string();
    let r = lab.run(&["report", &d]);
    assert!(r.status.success());
    for o in [&o, &r] {
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
        for s in &secrets {
            assert!(!text.contains(s), "{s} printed:\n{text}");
        }
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    assert!(files.len() > 10, "{files:?}");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        for s in &secrets {
            assert!(
                !data.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s} found in {}",
                f.display()
            );
        }
    }
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(manifest.contains("var.api_token=<redacted>"), "{manifest}");
    // The runs themselves are healthy: no false gateway death.
    for run in std::fs::read_dir(dir.join("runs")).unwrap().flatten() {
        let rec = json(&run.path().join("result.json"));
        assert_eq!(rec["flags"]["gateway_died"], false, "{rec}");
        assert!(rec["cpu"]["gateway_s"].as_f64().unwrap() > 0.0, "{rec}");
    }
    lab.assert_nothing_left();
}

/// The password perflab generates for Kong's own PostgreSQL (scram-sha-256) is written into
/// kong.conf on the lab host, and the run folder keeps a copy of that file: the copy holds
/// `<redacted>`, and no file of the results folder holds the password. Needs Kong
/// (`PERFLAB_KONG_PREFIX` or `kong` on PATH); prints SKIPPED otherwise.
#[test]
fn kongs_generated_database_password_reaches_no_results_file() {
    if let Err(why) = live_kong() {
        skip("the Kong password test", &why);
        return;
    }
    let _g = load_lock();
    let lab = Lab::new();
    // PostgreSQL runs as `postgres` when we are root: it must reach the lab dir; and its socket
    // path (in the lab dir) must stay under 108 bytes: a short TMPDIR.
    use std::os::unix::fs::PermissionsExt;
    let short = tempfile::Builder::new()
        .prefix("plk")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(short.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let out = lab.out();
    let mut args = vec![
        "suite",
        "kong",
        "--tags",
        "single-route",
        "--no-pin",
        "--output",
        &out,
    ];
    args.extend_from_slice(FAST);
    let mut c = lab.cmd(&args);
    c.env("TMPDIR", short.path());
    let o = lab.run_with(c, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = lab.results_dir();
    let mut stack = vec![dir.clone()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            for line in text.lines().filter(|l| l.contains("pg_password")) {
                seen += 1;
                assert!(
                    line.contains("<redacted>"),
                    "{}: {line}",
                    e.path().display()
                );
            }
        }
    }
    assert!(
        seen > 0,
        "the run folder keeps kong.conf: its pg_password line was expected"
    );
    let left: Vec<_> = std::fs::read_dir(short.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "lab folders left: {left:?}");
}

/// The log channel shows warnings by default and `-q` hides them: a lab killed with SIGKILL
/// leaves its journal, and the next lab warns about it on stderr (src/logging.rs).
#[test]
fn a_killed_labs_leftovers_are_warned_about_by_default_and_not_with_quiet() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.out();
    let suite = lab.suite(
        "direct",
        "[case]\nname = \"direct\"\ngateway = \"baseline\"\n",
    );
    let mut args = vec!["suite", suite.as_str(), "--no-pin", "--output", &out];
    let (mut child, _) = lab.spawn(&[&args[..], &["--duration", "60", "--plain"]].concat());
    let journals = lab.path("cache/labs");
    wait_for(&mut child, "the lab's journal", || {
        std::fs::read_dir(&journals)
            .is_ok_and(|mut d| d.next().is_some())
            .then_some(())
    });
    wait_for(&mut child, "wrk running", || {
        lab.processes()
            .iter()
            .any(|(_, _, c)| is_wrk(c))
            .then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    args.extend_from_slice(FAST);
    let warning = "perflab: warning: 1 earlier lab(s) ended without cleaning up";
    let o = lab.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
    let o = lab.run(&[&args[..], &["-q"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let o = lab.run(&["teardown", "--driver", "local"]);
    assert!(o.status.success(), "{}", stderr(&o));
    lab.assert_nothing_left();
}
