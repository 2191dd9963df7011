//! Reproducibility through the real CLI: the fingerprint in `manifest.json` is checked against
//! this machine (kernel, CPUs, the sha256 of the wrk and nginx binaries actually resolved, …),
//! `perflab reproduce` re-runs a stored results folder or a single run, and `perflab doctor`
//! reports a missing tool.
//!
//! Every perflab child gets its own TMPDIR and PERFLAB_CACHE_DIR, `--cooldown-max 0 --warmup 0`,
//! 1 s runs, loopback only (the local driver). Load-running tests take a lock: the machine has
//! two shared cores.
//!
//! About the verdict assertion in `reproducing_a_folder_gives_no_change_per_gateway_cpu_second`:
//! a reproduction is not interleaved with the recorded runs (they ran earlier), so anything that
//! changes the machine's load between the two invocations moves raw throughput. On the
//! project's shared 2-core machine, five back-to-back record/reproduce pairs (3 × 1 s repeats,
//! 10% band) gave raw `rps` ratios of 0.68–1.24 (two `slower` verdicts), while requests per
//! gateway CPU-second stayed at 0.90–1.15 with every 95% CI reaching into the band (all `no
//! change`); under heavy load from other work it once moved to 0.73. Tests must not fail because
//! a machine is busy, so the test asserts the verdict only for `rps_per_gateway_cpu_s` with a
//! ±50% band (not `slower`, not `faster`; the CI rule only gives a verdict when the whole
//! interval is outside the band) — a check that reproduce's plumbing is right, not a measurement
//! of reproducibility, which `bench/` does — prints the raw `rps` verdict, and checks the deterministic parts exactly: the
//! recorded and new means against the `result.json` files, the verdict rule against the printed
//! interval, which cases were re-run, and that the environment is reported unchanged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::{Lab, PERFLAB, json, load_lock, only_results_folder, runs, text};

/// `perflab suite rps` over `tags` on nginx, 1 s runs, into the lab's folder `output`; returns
/// the results folder.
fn record(lab: &Lab, tags: &str, repeat: u32, output: &str) -> PathBuf {
    let out = run(lab.perflab().args([
        "suite",
        "rps",
        "--tags",
        tags,
        "--gateway",
        "nginx",
        "--duration",
        "1",
        "--repeat",
        &repeat.to_string(),
        "--cooldown-max",
        "0",
        "--warmup",
        "0",
        "--plain",
        "--output",
        lab.path(output).to_str().unwrap(),
    ]));
    assert!(out.status.success(), "suite failed:\n{}", text(&out));
    only_results_folder(&lab.path(output))
}

fn run(c: &mut Command) -> Output {
    c.output().expect("perflab starts")
}

fn sha256_file(p: &Path) -> String {
    let d = Sha256::digest(std::fs::read(p).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn fingerprint_is_true_on_this_machine() {
    let _g = load_lock();
    let lab = Lab::new();
    let mut cmd = lab.perflab();
    cmd.env("PERFLAB_NIXPKGS_REV", "0123456789abcdef-test");
    let out = run(cmd.args([
        "suite",
        "rps",
        "--tags",
        "simple-proxy",
        "--gateway",
        "nginx",
        "--duration",
        "1",
        "--repeat",
        "1",
        "--cooldown-max",
        "0",
        "--warmup",
        "0",
        "--plain",
        "--output",
        lab.path("out").to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let dir = only_results_folder(&lab.path("out"));
    let m = json(&dir.join("manifest.json"));
    let fp = &m["fingerprint"];

    // The machine.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let nproc = Command::new("nproc").output().unwrap();
    let nproc: u64 = String::from_utf8_lossy(&nproc.stdout)
        .trim()
        .parse()
        .unwrap();
    for role in ["gateway", "worker"] {
        let h = &fp["hosts"][role];
        assert_eq!(
            h["kernel"].as_str(),
            read_trim("/proc/sys/kernel/osrelease").as_deref(),
            "{role}"
        );
        assert_eq!(h["cpus_online"].as_u64(), Some(nproc), "{role}");
        assert_eq!(h["cpu_model"].as_str(), model.as_deref(), "{role}");
        assert!(
            h["cores"].as_u64().is_some_and(|c| c >= 1 && c <= nproc),
            "{h}"
        );
        assert!(h["smt"].is_boolean(), "{h}");
        assert_eq!(
            h["governor"].as_str(),
            read_trim("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").as_deref()
        );
        assert_eq!(
            h["thp"].as_str(),
            read_trim("/sys/kernel/mm/transparent_hugepage/enabled").as_deref()
        );
        for key in ["load_before", "load_after"] {
            let l = h[key]
                .as_str()
                .unwrap_or_else(|| panic!("{role} {key}: {h}"));
            let avgs: Vec<f64> = l
                .split_whitespace()
                .take(3)
                .map(|x| x.parse().unwrap())
                .collect();
            assert_eq!(avgs.len(), 3, "{l}");
        }
        let runtime = h["container"]["runtime"].as_str().unwrap();
        if Path::new("/.dockerenv").exists() {
            assert_eq!(runtime, "docker");
        }
    }
    assert_eq!(fp["network"], "loopback");
    assert_eq!(fp["driver"]["driver"], "local");

    // Tools: the recorded path, the file it resolves to, and that file's sha256.
    for tool in ["wrk", "nginx"] {
        let t = &fp["tools"]["worker"][tool];
        let path = which::which(tool).unwrap();
        let real = std::fs::canonicalize(&path).unwrap();
        assert_eq!(t["path"].as_str(), path.to_str(), "{t}");
        assert_eq!(t["resolved"].as_str(), real.to_str(), "{t}");
        assert_eq!(t["sha256"].as_str().unwrap(), sha256_file(&real), "{t}");
        assert!(!t["version"].as_str().unwrap().is_empty(), "{t}");
    }
    assert_eq!(fp["tools"]["gateway"], fp["tools"]["worker"], "one machine");

    // perflab itself, and the nixpkgs revision the flake's wrapper sets.
    let p = &fp["perflab"];
    assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(p["nixpkgs_rev"], "0123456789abcdef-test");
    assert_eq!(
        p["binary_sha256"].as_str().unwrap(),
        sha256_file(Path::new(PERFLAB))
    );
    let head = git2::Repository::discover(env!("CARGO_MANIFEST_DIR"))
        .unwrap()
        .head()
        .unwrap()
        .target()
        .unwrap()
        .to_string();
    assert_eq!(p["commit"].as_str(), Some(head.as_str()));

    // The gateway as it reported itself, and the exact commands.
    let nginx_v = Command::new("nginx").arg("-v").output().unwrap();
    let nginx_v = String::from_utf8_lossy(&nginx_v.stderr);
    let nginx_v = nginx_v.trim().rsplit(' ').next().unwrap().to_string(); // nginx/1.22.1
    let reported = fp["gateway_versions"]["current"].as_array().unwrap();
    assert!(
        reported
            .iter()
            .any(|r| r.as_str().unwrap() == format!("nginx: {nginx_v}")),
        "{reported:?} vs {nginx_v}"
    );
    let command: Vec<&str> = m["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&command[1..4], ["suite", "rps", "--tags"]);
    let loads = fp["load_commands"].as_array().unwrap();
    for (_, r) in runs(&dir) {
        let lc = r["load_command"].as_str().unwrap();
        assert!(
            lc.starts_with(fp["tools"]["worker"]["wrk"]["path"].as_str().unwrap()),
            "{lc}"
        );
        assert!(loads.iter().any(|l| l == lc), "{lc} not in {loads:?}");
    }
}

/// Parses `perflab reproduce`'s table: (case, metric) → (recorded, now, ratio, lo, hi, verdict).
type Row = (f64, f64, f64, f64, f64, String);

fn parse_table(stdout: &str) -> Vec<(String, String, Row)> {
    let mut rows = Vec::new();
    for line in stdout
        .lines()
        .skip_while(|l| !l.starts_with("case "))
        .skip(1)
    {
        let Some((head, rest)) = line.split_once('[') else {
            break;
        };
        let (ci, verdict) = rest.split_once(']').unwrap();
        let (lo, hi) = ci.split_once(',').unwrap();
        let f: Vec<&str> = head.split_whitespace().collect();
        let n = f.len();
        rows.push((
            f[0].to_string(),
            f[n - 4].to_string(),
            (
                f[n - 3].parse().unwrap(),
                f[n - 2].parse().unwrap(),
                f[n - 1].parse().unwrap(),
                lo.trim().parse().unwrap(),
                hi.trim().parse().unwrap(),
                verdict.trim().to_string(),
            ),
        ));
    }
    rows
}

fn mean_of(runs: &[(PathBuf, Value)], case: &str, key: &str) -> f64 {
    let v: Vec<f64> = runs
        .iter()
        .filter(|(_, r)| r["case"] == case && r["flags"]["profiled"] == false)
        .map(|(_, r)| r[key].as_f64().unwrap())
        .collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn reproducing_a_folder_gives_no_change_per_gateway_cpu_second() {
    let _g = load_lock();
    let lab = Lab::new();
    let recorded = record(&lab, "simple-proxy,baseline", 3, "out");
    let out = run(lab.perflab().args([
        "reproduce",
        recorded.to_str().unwrap(),
        "--noise-band",
        "50",
        "--include-flagged",
        "--output",
        lab.path("again").to_str().unwrap(),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    let now = only_results_folder(&lab.path("again"));
    let (old_runs, new_runs) = (runs(&recorded), runs(&now));
    assert_eq!(old_runs.len(), 6);
    assert_eq!(new_runs.len(), 6, "same cases and repeats as recorded");
    let rows = parse_table(&stdout);
    let cases: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        cases.into_iter().collect::<Vec<_>>(),
        ["baseline", "simple-proxy@nginx"],
        "{stdout}"
    );
    for (case, metric, (rec, now_v, ratio, lo, hi, verdict)) in &rows {
        // The columns are the runs' means, both sides read from the stored result.json files.
        if metric == "rps" || metric == "rps_per_gateway_cpu_s" {
            assert!(
                (rec - mean_of(&old_runs, case, metric)).abs() < 0.01,
                "{case} {metric}"
            );
            assert!(
                (now_v - mean_of(&new_runs, case, metric)).abs() < 0.01,
                "{case} {metric}"
            );
        }
        assert!(*ratio > 0.0 && lo <= hi, "{case} {metric}");
        // Only rps (the primary metric) gets a verdict, following the interval and the 50% band;
        // the other metrics are described.
        let higher_is_better = metric.starts_with("rps");
        let expected = if metric != "rps" {
            "descriptive"
        } else if *lo > 1.50 {
            if higher_is_better { "faster" } else { "slower" }
        } else if *hi < 0.50 {
            if higher_is_better { "slower" } else { "faster" }
        } else {
            "no change"
        };
        assert!(
            verdict == expected || verdict == "inconclusive",
            "{case} {metric}: {verdict} with CI [{lo}, {hi}]\n{stdout}"
        );
    }
    let per_cpu = rows
        .iter()
        .find(|r| r.0 == "simple-proxy@nginx" && r.1 == "rps_per_gateway_cpu_s")
        .unwrap_or_else(|| panic!("no rps_per_gateway_cpu_s row:\n{stdout}"));
    let raw = rows
        .iter()
        .find(|r| r.0 == "simple-proxy@nginx" && r.1 == "rps")
        .unwrap();
    eprintln!(
        "reproduce: rps ratio {:.3} ({}), rps per gateway CPU-s ratio {:.3} ({})",
        raw.2.2, raw.2.5, per_cpu.2.2, per_cpu.2.5
    );
    assert!(
        per_cpu.2.5 != "slower" && per_cpu.2.5 != "faster",
        "requests per gateway CPU-second changed beyond the 50% band on a reproduction:\n{stdout}"
    );
    assert!(
        stdout.contains("environment: same as recorded"),
        "same machine, same binaries:\n{stdout}"
    );
    let m = json(&now.join("manifest.json"));
    assert_eq!(m["kind"], "reproduce");
    assert_eq!(
        m["options"]["reproducing"].as_str(),
        recorded.to_str(),
        "the new manifest points to what it reproduces"
    );
}

#[test]
fn reproducing_one_result_reruns_only_that_case_and_warns_about_the_environment() {
    let _g = load_lock();
    let lab = Lab::new();
    let recorded = record(&lab, "simple-proxy,baseline", 1, "out");
    let (one, rec) = runs(&recorded)
        .into_iter()
        .find(|(_, r)| r["case"] == "simple-proxy@nginx")
        .unwrap();
    // Make the recorded environment differ: as if it had run on another kernel with another wrk.
    let mpath = recorded.join("manifest.json");
    let mut m = json(&mpath);
    m["fingerprint"]["hosts"]["gateway"]["kernel"] = "0.0.0-recorded".into();
    m["fingerprint"]["tools"]["worker"]["wrk"]["sha256"] = "00".repeat(32).into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let out = run(lab.perflab().args([
        "reproduce",
        one.join("result.json").to_str().unwrap(),
        "--noise-band",
        "10",
        "--include-flagged",
        "--output",
        lab.path("again").to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let now = only_results_folder(&lab.path("again"));
    let new_runs = runs(&now);
    assert_eq!(
        new_runs.len(),
        1,
        "only the chosen run's case, as often as recorded"
    );
    assert_eq!(new_runs[0].1["case"], rec["case"]);
    let m_now = json(&now.join("manifest.json"));
    assert_eq!(m_now["cases"], serde_json::json!(["simple-proxy@nginx"]));
    assert!(
        parse_table(&stdout)
            .iter()
            .all(|r| r.0 == "simple-proxy@nginx"),
        "{stdout}"
    );
    let kernel = read_trim("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        stdout.contains("warning: the recorded result ran in a different environment"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("gateway kernel: 0.0.0-recorded → {kernel}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("worker tool wrk: sha256 0000000000000000 → "),
        "{stdout}"
    );
}

#[test]
fn doctor_reports_a_missing_tool_with_its_install_hint() {
    // PATH holds only a few programs: nginx but not wrk.
    let lab = Lab::new();
    let bin = lab.path_with(&["sh", "nginx", "readlink", "sha256sum", "cat"]);
    let out = run(lab.perflab().env("PATH", &bin).arg("doctor"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let line = |program: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(program))
            .unwrap_or_else(|| panic!("no {program} line:\n{stdout}"))
            .to_string()
    };
    let wrk = line("wrk");
    assert!(
        wrk.contains("MISSING") && wrk.contains("install: apt-get install wrk"),
        "{wrk}"
    );
    let nginx = line("nginx");
    assert!(nginx.contains(" ok "), "{nginx}");
    assert!(
        nginx.contains(bin.join("nginx").to_str().unwrap()),
        "{nginx}"
    );
    assert!(stdout.contains("local driver: NOT ready"), "{stdout}");
    // The fingerprint section lists what was found, with hashes, and not what is missing.
    let fp = stdout
        .split("fingerprint of this machine")
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint section:\n{stdout}"));
    let kernel = read_trim("/proc/sys/kernel/osrelease").unwrap();
    assert!(fp.contains(&format!("kernel {kernel}")), "{fp}");
    let nginx_real = std::fs::canonicalize(which::which("nginx").unwrap()).unwrap();
    assert!(
        fp.contains(&format!(
            "{} sha256 {}",
            nginx_real.display(),
            &sha256_file(&nginx_real)[..16]
        )),
        "{fp}"
    );
    assert!(!fp.contains(" wrk "), "{fp}");
}

#[test]
fn doctor_finds_postgresql_of_any_version_and_gives_nix_hints_under_nix() {
    let lab = Lab::new();
    let bin = lab.path_with(&["sh", "readlink", "sha256sum", "cat"]);
    let out = run(lab
        .perflab()
        .env("PATH", &bin)
        .env("IN_NIX_SHELL", "impure")
        .arg("doctor"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("running under Nix"), "{stdout}");
    let line = |program: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(program))
            .unwrap_or_else(|| panic!("no {program} line:\n{stdout}"))
            .to_string()
    };
    let wrk = line("wrk");
    assert!(wrk.contains("nix shell nixpkgs#wrk"), "{wrk}");
    // PostgreSQL's server programs live off PATH in /usr/lib/postgresql/<major>/bin.
    let pg = stdout
        .lines()
        .find(|l| l.starts_with("kong (PostgreSQL)"))
        .unwrap_or_else(|| panic!("no pg_ctl line:\n{stdout}"));
    assert!(
        pg.contains(" ok ") && pg.contains("/usr/lib/postgresql/") && pg.contains("/bin/pg_ctl"),
        "{pg}"
    );
}
