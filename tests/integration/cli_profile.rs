//! Flame graphs through the real CLI: `perflab suite flamegraph` (profiled cases), `perflab
//! compare --flamegraph` (extra profiled runs per version, a differential graph) and `perflab
//! report` re-rendering the graphs from the stored folded stacks. Real nginx, wrk and perf on
//! loopback; each perflab child gets its own TMPDIR and PERFLAB_CACHE_DIR.
//!
//! The tests skip (with a printed reason) only when `perf` is not installed or the kernel
//! refuses it to this user.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::util::{Lab, json, load_lock, only_results_folder, perf_usable, runs, text};

/// `perflab ARGS…` in `lab` with the shared quick-run flags after `args`; asserts it succeeded.
fn perflab_ok(lab: &Lab, args: &[&str]) -> Output {
    let out = lab
        .cmd(args)
        .args([
            "--cooldown-max",
            "0",
            "--warmup",
            "0",
            "--plain",
            "--output",
        ])
        .arg(lab.output())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "perflab {args:?} failed:\n{}",
        text(&out)
    );
    out
}

fn is_flamegraph_svg(p: &Path) -> bool {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    s.starts_with("<?xml") && s.contains("<svg") && s.contains("samples")
}

/// Checks a profiled run's folder and record; returns its folded stacks.
fn check_profiled_run(dir: &Path, r: &Value, mode: &str) -> String {
    assert_eq!(r["flags"]["profiled"], true, "{r}");
    let p = &r["profile"];
    assert_eq!(p["tool"], "perf");
    assert_eq!(p["mode"]["perf"], mode, "{p}");
    assert_eq!(p["folded"], "profile.folded");
    let samples = p["samples"].as_u64().unwrap();
    assert!(samples > 0, "{p}");
    let folded = std::fs::read_to_string(dir.join("profile.folded")).unwrap();
    assert_eq!(
        perflab::report::flamegraph::total_count(&folded),
        samples,
        "the folded counts are the samples"
    );
    assert!(is_flamegraph_svg(&dir.join("profile.svg")));
    folded
}

#[test]
fn suite_flamegraph_writes_profiles_and_keeps_them_out_of_the_summary() {
    if !perf_usable("flame graphs through the CLI") {
        return;
    }
    let _g = load_lock();
    let lab = Lab::new();
    let out = perflab_ok(
        &lab,
        &[
            "suite",
            "flamegraph",
            "--tags",
            "simple",
            "--gateway",
            "nginx",
            "--duration",
            "2",
        ],
    );
    let dir = only_results_folder(&lab.output());
    let all = runs(&dir);
    assert_eq!(all.len(), 1, "one profiled run of simple-proxy@nginx");
    let (run_dir, r) = &all[0];
    assert_eq!(r["case"], "simple-proxy@nginx");
    let folded = check_profiled_run(run_dir, r, "fp");
    // fp stacks of a stripped nginx still show the kernel's network path.
    assert!(folded.lines().any(|l| l.starts_with("nginx;")), "{folded}");
    let fg = dir.join("flamegraphs/simple-proxy@nginx-current.svg");
    assert!(is_flamegraph_svg(&fg), "{}", fg.display());
    assert_eq!(
        std::fs::read_to_string(dir.join("flamegraphs/simple-proxy@nginx-current.folded")).unwrap(),
        folded
    );
    // Profiled throughput is not statistics: the summary has no row for it.
    let summary = json(&dir.join("summary.json"));
    assert_eq!(summary, serde_json::json!([]), "{summary}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("flame graphs: 1 files"), "{stdout}");
}

#[test]
fn compare_with_flamegraph_dwarf_writes_both_and_a_differential_and_report_rerenders_them() {
    if !perf_usable("flame graphs through the CLI") {
        return;
    }
    let _g = load_lock();
    let lab = Lab::new();
    perflab_ok(
        &lab,
        &[
            "compare",
            "current",
            "current",
            "--design",
            "restart",
            "--suite",
            "rps",
            "--tags",
            "simple-proxy",
            "--gateway",
            "nginx",
            "--duration",
            "1",
            "--repeat",
            "1",
            "--flamegraph",
            "--call-graph",
            "dwarf",
            "--profile-hz",
            "199",
        ],
    );
    let dir = only_results_folder(&lab.output());
    let all = runs(&dir);
    // One measured run per version, then one extra profiled run per version.
    let order: Vec<(String, bool)> = all
        .iter()
        .map(|(_, r)| {
            (
                r["version"].as_str().unwrap().to_string(),
                r["flags"]["profiled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("current".to_string(), false),
            ("current#2".to_string(), false),
            ("current".to_string(), true),
            ("current#2".to_string(), true),
        ]
    );
    for (d, r) in all.iter().filter(|(_, r)| r["flags"]["profiled"] == true) {
        let folded = check_profiled_run(d, r, "dwarf");
        // DWARF unwinding reaches nginx's own functions in a stripped binary.
        assert!(folded.contains(";ngx_"), "no ngx_ frame:\n{folded}");
    }
    // The summary's statistics come from the unprofiled runs only.
    let summary = json(&dir.join("summary.json"));
    let rows = summary.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{summary}");
    for row in rows {
        let v = row["version"].as_str().unwrap();
        let (_, measured) = all
            .iter()
            .find(|(_, r)| r["version"] == v && r["flags"]["profiled"] == false)
            .unwrap();
        assert_eq!(row["rps"]["n"], 1, "{row}");
        assert_eq!(row["rps"]["mean"], measured["rps"], "{row}");
    }
    let fg = dir.join("flamegraphs");
    let names = [
        "simple-proxy@nginx-current.svg",
        "simple-proxy@nginx-current_2.svg",
        "simple-proxy@nginx-diff-current_2-vs-current.svg",
    ];
    let before: Vec<Vec<u8>> = names
        .iter()
        .map(|n| {
            let p = fg.join(n);
            assert!(is_flamegraph_svg(&p), "{}", p.display());
            std::fs::read(p).unwrap()
        })
        .collect();

    // `perflab report` re-renders them from the runs' folded stacks, byte for byte.
    std::fs::remove_dir_all(&fg).unwrap();
    let out = lab.perflab().arg("report").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("flame graphs: 3 files"),
        "{}",
        text(&out)
    );
    for (n, b) in names.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(fg.join(n)).unwrap(),
            b,
            "{n} re-rendered differently"
        );
    }
}
