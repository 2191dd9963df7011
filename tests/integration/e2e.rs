//! End-to-end tests of the core lab on the local driver, with real nginx, HAProxy and wrk:
//! a suite run checked on disk, Ctrl-C, and every kind of bad input.
//!
//! Each perflab child gets its own TMPDIR. Every process the lab starts inherits it, so "nothing
//! left running" is checked by scanning `/proc/*/environ` for that TMPDIR.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{FAST, Lab, PERFLAB, json, load_lock, repo_path, stderr};

fn args<'a>(head: &[&'a str], lab_out: &'a str) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.extend_from_slice(FAST);
    v.extend_from_slice(&["--output", lab_out]);
    v
}

#[test]
fn suite_run_is_kept_on_disk_and_reported() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.output().display().to_string();
    let o = lab.run(&args(
        &["suite", "rps", "--tags", "baseline,simple-proxy"],
        &out,
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    for case in ["baseline", "simple-proxy@nginx", "simple-proxy@haproxy"] {
        assert!(table.contains(case), "table lacks {case}:\n{table}");
    }
    let dir = lab.results_dir();
    let manifest = json(&dir.join("manifest.json"));
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["runs_planned"], 3);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 3);
    for r in &runs {
        let rec = json(&r.join("result.json"));
        assert_eq!(rec["schema"], "perflab.run/1");
        assert!(rec["rps"].as_f64().unwrap() > 0.0, "{rec}");
        assert!(rec["requests"].as_u64().unwrap() > 0);
        assert!(
            rec["latency_ms"]["p99"].as_f64().is_some(),
            "--latency percentiles present"
        );
        assert_eq!(rec["errors"]["non_2xx_3xx"], 0, "{}", r.display());
        let raw = std::fs::read_to_string(r.join("wrk.txt")).unwrap();
        assert!(raw.contains("Requests/sec:"), "raw wrk output kept");
        assert!(r.join("config/upstream-nginx.conf").is_file());
        assert!(r.join("upstream-error.log").is_file());
        // The machine preparation runs on the local driver too: one bounded cool-down gate and
        // the governor's state, recorded (this machine has no cpufreq, or no right to change it).
        let prep = json(&r.join("machine-prep.json"));
        let machine = if rec["gateway"] == "baseline" {
            "worker"
        } else {
            "gateway"
        };
        assert_eq!(prep["machine"], machine, "{prep}");
        assert!(prep["cool_down"]["cores"].as_u64().unwrap() >= 1, "{prep}");
        assert!(
            prep["cool_down"]["waited_s"].as_f64().unwrap() >= 0.0,
            "{prep}"
        );
        assert!(
            ["set", "already", "unavailable", "not-permitted"]
                .contains(&prep["governor"]["status"].as_str().unwrap()),
            "{prep}"
        );
        if rec["gateway"] == "baseline" {
            assert!(rec["rps_per_gateway_cpu_s"].is_null());
        } else {
            assert!(
                rec["rps_per_gateway_cpu_s"].as_f64().unwrap() > 0.0,
                "{rec}"
            );
            assert!(rec["cpu"]["gateway_s"].as_f64().unwrap() > 0.0);
            assert!(r.join("gateway-error.log").is_file());
            let conf = std::fs::read_dir(r.join("config")).unwrap().count();
            assert_eq!(conf, 2, "gateway and upstream configs kept");
        }
    }
    assert!(dir.join("summary.md").is_file());
    assert!(dir.join("summary.json").is_file());
    assert!(dir.join("charts/rps.svg").is_file() && dir.join("charts/rps.json").is_file());
    // `report` re-renders everything from the store.
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    std::fs::remove_file(dir.join("summary.md")).unwrap();
    std::fs::remove_dir_all(dir.join("charts")).unwrap();
    let o = lab.run(&["report", &dir.display().to_string()]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(dir.join("summary.md")).unwrap(), md);
    assert!(dir.join("charts/rps.svg").is_file());
    lab.assert_nothing_left();
}

#[test]
fn sigint_keeps_finished_runs_and_leaves_nothing_running() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.output().display().to_string();
    let mut child = lab
        .cmd(&[
            "suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
            "--duration",
            "2",
            "--repeat",
            "5",
            "--warmup",
            "0",
            "--cooldown-max",
            "0",
            "--plain",
            "--output",
            &out,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let first_result = loop {
        let found = std::fs::read_dir(lab.output())
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_dir(e.path().join("runs")).ok())
            .and_then(|runs| {
                runs.flatten()
                    .map(|r| r.path().join("result.json"))
                    .find(|p| p.is_file())
            });
        if let Some(p) = found {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no run finished");
        assert!(child.try_wait().unwrap().is_none(), "perflab ended early");
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted exit status");
    assert!(first_result.is_file(), "finished run kept");
    let dir = lab.results_dir();
    assert_eq!(json(&dir.join("manifest.json"))["status"], "interrupted");
    let finished = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .filter(|r| r.path().join("result.json").is_file())
        .count();
    assert!((1..5).contains(&finished), "{finished} runs finished");
    lab.assert_nothing_left();
}

fn assert_bad_input(lab: &Lab, args: &[&str], code: i32, needle: &str) {
    let o = lab.run(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "perflab {}: {}",
        args.join(" "),
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(needle),
        "perflab {}: stderr lacks {needle:?}:\n{}",
        args.join(" "),
        stderr(&o)
    );
    lab.assert_nothing_left();
}

#[test]
fn bad_input_is_refused_clearly() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.output().display().to_string();
    let bad_toml = lab.suite_dir(
        "custom",
        &[("bad.toml", "[case]\nname = \"x\"\ngateway = nginx\n")],
    );
    assert_bad_input(&lab, &args(&["suite", &bad_toml], &out), 2, "bad.toml:3:");
    assert_bad_input(
        &lab,
        &args(&["suite", "rps", "--gateway", "envoyy"], &out),
        2,
        "invalid value 'envoyy' for '--gateway <GATEWAY>'",
    );
    assert_bad_input(
        &lab,
        &args(&["suite", "rps", "--driver", "vagrant"], &out),
        2,
        "invalid value 'vagrant' for '--driver <DRIVER>'",
    );
    assert_bad_input(
        &lab,
        &args(&["suite", "rps", "--tags", "no-such-tag"], &out),
        2,
        "no case has tag \"no-such-tag\"",
    );
    assert_bad_input(
        &lab,
        &args(
            &["suite", "rps", "--connections", "1", "--threads", "4"],
            &out,
        ),
        2,
        "connections (1) must be at least threads (4)",
    );
    assert_bad_input(
        &lab,
        &args(&["suite", "no-such-suite"], &out),
        2,
        "unknown suite \"no-such-suite\"",
    );
}

#[test]
fn lab_failures_name_their_cause_and_clean_up() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.output().display().to_string();
    // A port in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let mut a = args(
        &["suite", "rps", "--tags", "baseline", "--port-base", &port],
        &out,
    );
    a.push("--no-pin");
    assert_bad_input(&lab, &a, 4, &format!("port {port}"));
    drop(busy);
    // A gateway config the gateway refuses: its own message comes through.
    let refused = lab.suite_dir("custom", &[(
        "refused.toml",
        "[case]\nname = \"refused\"\ngateways = [\"nginx\", \"haproxy\"]\n[case.gateway_settings]\nextra_config = \"bogus_directive on;\"\n[case.load]\nconnections = 10\nthreads = 1\n",
    )]);
    assert_bad_input(
        &lab,
        &args(&["suite", &refused, "--gateway", "nginx"], &out),
        4,
        "unknown directive \"bogus_directive\"",
    );
    assert_bad_input(
        &lab,
        &args(&["suite", &refused, "--gateway", "haproxy"], &out),
        4,
        "haproxy refused its configuration",
    );
    // A Lua script wrk cannot load: wrk prints the error and runs its default request with
    // exit status 0; the run must fail, not count requests the case did not ask for.
    let broken = lab.suite_dir("broken-script", &[(
        "broken.toml",
        "[case]\nname = \"broken\"\ngateway = \"baseline\"\n[case.load]\nconnections = 2\nthreads = 1\nscript = \"request = function(\\n  return 1\\nend\\n\"\n",
    )]);
    assert_bad_input(
        &lab,
        &args(&["suite", &broken], &out),
        4,
        "wrk could not load the case's Lua script",
    );
}

#[test]
fn missing_wrk_or_nginx_is_reported_with_how_to_install() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.output().display().to_string();
    let base = ["sh", "taskset", "getconf", "cat", "readlink"];
    for (missing, present) in [("wrk", "nginx"), ("nginx", "wrk")] {
        let mut tools = base.to_vec();
        tools.push(present);
        let bin = lab.path_with(&tools);
        let o = lab
            .cmd(&args(&["suite", "rps", "--tags", "baseline"], &out))
            .env("PATH", &bin)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(
            err.contains(&format!("{missing} not found")) && err.contains("apt-get install"),
            "{err}"
        );
    }
    lab.assert_nothing_left();
}

#[test]
fn import_wrk_prints_json_and_names_refused_addresses() {
    let lab = Lab::new();
    let fixtures = repo_path("tests/fixtures/wrk");
    let o = lab.run(&[
        "import",
        "wrk",
        &fixtures.join("latency.txt").display().to_string(),
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = std::fs::read_to_string(fixtures.join("latency.txt")).unwrap();
    let rps_line = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .unwrap();
    let rps: f64 = rps_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(v["rps"].as_f64().unwrap(), rps);
    for k in ["mean", "stdev", "max", "p50", "p75", "p90", "p99"] {
        assert!(v["latency_ms"][k].is_number(), "latency_ms.{k}");
    }
    let refused = fixtures.join("connect-refused.txt");
    let o = lab.run(&["import", "wrk", &refused.display().to_string()]);
    assert_eq!(o.status.code(), Some(4));
    let addr = std::fs::read_to_string(&refused).unwrap();
    let addr = addr
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap()
        .to_string();
    assert!(stderr(&o).contains(&addr), "{}", stderr(&o));
}

#[test]
fn an_installed_perflab_finds_suites_in_its_share_folder() {
    // The layout the flake installs: <prefix>/bin/perflab and <prefix>/share/perflab/suites.
    let lab = Lab::new();
    let prefix = lab.root().join("prefix");
    let suites = prefix.join("share/perflab/suites/installed-only");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(&suites).unwrap();
    let exe = prefix.join("bin/perflab");
    std::fs::copy(PERFLAB, &exe).unwrap();
    // A case file with an error: loading it names the file, so nothing needs to run.
    std::fs::write(
        suites.join("bad.toml"),
        "[case]\nname = \"x\"\ngateway = nginx\n",
    )
    .unwrap();
    let elsewhere = lab.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = Command::new(&exe)
        .args(["suite", "installed-only", "--output"])
        .arg(lab.output())
        .current_dir(&elsewhere)
        .env("TMPDIR", lab.tmp())
        .env_remove("PERFLAB_SUITES_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("share/perflab/suites/installed-only/bad.toml:3:"),
        "{err}"
    );
}

/// An integration test, not a unit test: it needs wrk and nginx installed (unit tests must run
/// in a build sandbox without the lab's programs).
#[test]
fn tools_asked_in_one_command_match_tool_by_tool() {
    use perflab::fingerprint::{tool_info, tools_of};
    let dir = tempfile::tempdir().unwrap();
    let host = perflab::host::LocalHost::new("local", dir.path()).unwrap();
    let batched = tools_of(&host);
    for t in perflab::tools::on_lab_hosts() {
        assert_eq!(
            batched[t.program],
            tool_info(&host, t.program, t.version_args),
            "{}: {batched:#?}",
            t.program
        );
    }
    // wrk and nginx are on every machine the integration tests run on.
    assert!(batched["wrk"].found, "{batched:#?}");
    assert!(batched["nginx"].found, "{batched:#?}");
}

/// Actions during load on real nginx and HAProxy under wrk: reloads every 2 s, an HTTP request
/// to the proxy listener and a scrape, each recorded with the traffic around it.
#[test]
fn actions_during_load_are_recorded_with_the_traffic_around_them() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.output().display().to_string();
    let suite = lab.suite_dir(
        "custom",
        &[(
            "reload.toml",
            r#"
[case]
name = "reload"
gateways = ["nginx", "haproxy"]

[case.load]
duration = 10
connections = 20
threads = 2

[[case.during]]
at = 2
every = 5
action = "reload"

[[case.during]]
at = 3.5
action = "http"
method = "POST"
path = "/perflab-health"
body = '{"weight": 50}'
port = "proxy"

[[case.during]]
at = 8.5
action = "scrape"
path = "/perflab-health"
port = "proxy"
"#,
        )],
    );
    let o = lab.run(&[
        "suite",
        &suite,
        "--repeat",
        "1",
        "--warmup",
        "0",
        "--cooldown-max",
        "0",
        "--plain",
        "--output",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = lab.results_dir();
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2);
    for r in &runs {
        let rec = json(&r.join("result.json"));
        let during = &rec["during"];
        let actions = during["actions"].as_array().unwrap();
        let kinds: Vec<&str> = actions
            .iter()
            .map(|a| a["action"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["reload", "http", "reload", "scrape"], "{during}");
        for a in actions {
            assert_eq!(a["ok"], true, "{a}");
            let late = a["started_s"].as_f64().unwrap() - a["scheduled_s"].as_f64().unwrap();
            assert!((0.0..1.0).contains(&late), "{a}");
            let w = &a["window"];
            assert!(w["responses"].as_u64().unwrap() > 0, "{a}");
            assert!(w["p99_ms"].as_f64().is_some(), "latency is timed: {a}");
        }
        assert_eq!(actions[1]["status"], 200);
        // The health endpoint answers the same to the POST and the scrape ("ok" from nginx,
        // HAProxy's monitor page).
        let answer = actions[1]["answer"].as_str().unwrap();
        assert!(
            answer.contains("ok") || answer.contains("ready"),
            "{answer}"
        );
        let saved = actions[3]["saved"].as_str().unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join(saved)).unwrap(),
            answer,
            "the scrape's answer is kept"
        );
        let outside = &during["outside"];
        assert!(outside["responses"].as_u64().unwrap() > 0, "{during}");
        assert!(outside["p99_ms"].as_f64().is_some(), "{during}");
        assert!(during["series"].as_array().unwrap().len() >= 90);
        assert_eq!(rec["flags"]["gateway_died"], false, "{rec}");
        assert!(
            rec["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n.as_str().unwrap().contains("a reload replaced")),
            "{rec}"
        );
        // What reloading under load did, for the record (the machine is shared).
        for a in actions.iter().filter(|a| a["action"] == "reload") {
            eprintln!(
                "{} reload at {:.2}s: window errors {} lost {} of {}, p99 {:.2} ms; outside errors {} lost {} of {}, p99 {:.2} ms; wrk socket errors {}",
                rec["gateway"],
                a["started_s"].as_f64().unwrap(),
                a["window"]["errors"],
                a["window"]["lost"],
                a["window"]["responses"],
                a["window"]["p99_ms"].as_f64().unwrap(),
                outside["errors"],
                outside["lost"],
                outside["responses"],
                outside["p99_ms"].as_f64().unwrap_or(f64::NAN),
                rec["errors"],
            );
        }
    }
    // The report: a "config change under load" chart per run, the actions in summary.md.
    let charts: Vec<String> = std::fs::read_dir(dir.join("charts"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("change-") && n.ends_with(".svg"))
        .collect();
    assert_eq!(charts.len(), 2, "{charts:?}");
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("## Actions during load"), "{md}");
    assert!(md.contains("| POST /perflab-health | 200 |"), "{md}");
    assert!(md.contains("*(away from actions)*"), "{md}");
    lab.assert_nothing_left();
}

/// Bad `[[case.during]]` entries are refused before anything starts, with the file, the action
/// and the field named; a multiplexed comparison refuses cases with actions.
#[test]
fn bad_actions_during_load_are_refused_clearly() {
    let _g = load_lock();
    let lab = Lab::new();
    let out = lab.output().display().to_string();
    let case = |during: &str| {
        format!(
            "[case]\nname = \"d\"\ngateway = \"nginx\"\n[case.load]\nduration = 5\n[[case.during]]\n{during}\n"
        )
    };
    let bad = [
        ("at = 1\naction = \"restart\"", "unknown variant `restart`"),
        (
            "at = -1\naction = \"reload\"",
            "d.toml:6: case \"d\" (nginx): during[1].at must be",
        ),
        (
            "at = 1\nevery = 0\naction = \"reload\"",
            "during[1].every must be at least 0.1",
        ),
        ("at = 5\naction = \"reload\"", "before the end of the load"),
        (
            "at = 1\naction = \"http\"\nmethod = \"PATCH\"\npath = \"/x\"",
            "gateway nginx has no admin listener",
        ),
        ("at = 1\naction = \"scrape\"", "path is needed"),
    ];
    for (during, needle) in bad {
        let dir = lab.suite_dir("custom", &[("d.toml", &case(during))]);
        let o = lab.run(&[
            "suite",
            &dir,
            "--repeat",
            "1",
            "--warmup",
            "0",
            "--cooldown-max",
            "0",
            "--plain",
            "--output",
            &out,
        ]);
        assert_eq!(o.status.code(), Some(2), "{during}: {}", stderr(&o));
        assert!(stderr(&o).contains("d.toml:"), "{}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{during}: {}", stderr(&o));
    }
    // A valid case whose action the command line's --duration cuts off.
    let dir = lab.suite_dir(
        "custom",
        &[("d.toml", &case("at = 3\naction = \"reload\""))],
    );
    assert_bad_input(
        &lab,
        &args(&["suite", &dir], &out),
        2,
        "after the command line's --duration 1s",
    );
    // The multiplexed design does not run actions during load.
    let dir = lab.suite_dir(
        "custom",
        &[("d.toml", &case("at = 1\naction = \"reload\""))],
    );
    assert_bad_input(
        &lab,
        &[
            "compare", "current", "current", "--suite", &dir, "--plain", "--output", &out,
        ],
        2,
        "--design restart",
    );
    assert!(
        !lab.output().exists() || lab.output().read_dir().unwrap().next().is_none(),
        "nothing was started"
    );
}
