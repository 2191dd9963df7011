//! `perflab compare` end to end, through the real binary: a gateway repository made with git2 in
//! a temporary directory (templates in tests/fixtures/gateway-repo), whose `perflab.toml` starts
//! a real nginx as a reverse proxy in front of perflab's real upstream nginx, loaded by real wrk
//! on loopback.
//!
//! Commit `A` proxies plainly; commit `B` adds `gzip_comp_level 9` for every response, and the
//! case's clients send `Accept-Encoding: gzip`, so `B` costs several times more gateway CPU per
//! request: a regression large enough to be seen in a few seconds on a shared machine.
//!
//! The multiplexed design (the default) is checked for what it promises: both versions up at
//! once, bursts in the order the recorded seed gives, each burst's CPU charged to its own
//! instance, instances restarted per segment, Ctrl-C keeping finished blocks. The restart design
//! keeps its own tests.
//!
//! No assertion is about time. Verdicts are asserted only where the effect is far larger than
//! this machine's noise (A/B), or with a noise band wider than it (A/A): whether perflab detects
//! *small* changes is measured by bench/sensitivity.sh, and the error rates of the statistics by
//! the simulation tests in src/stats/simulation.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Points, load_lock, only_results_folder};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gateway-repo");

fn fixture_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join(name)).unwrap()
}

/// Commit A's config template with `extra` in place of the `# @EXTRA_HTTP@` line.
fn config_with(extra: &str) -> String {
    let t = fixture_file("nginx.conf.in");
    assert!(t.contains("    # @EXTRA_HTTP@\n"));
    t.replace("    # @EXTRA_HTTP@\n", extra)
}

/// A temporary lab ([`util::Lab`]: private cache, temp and output dirs) with the gateway repo
/// and a one-case suite.
struct Lab {
    base: util::Lab,
    root: PathBuf,
    repo: PathBuf,
    suite: PathBuf,
    cache: PathBuf,
    tmpdir: PathBuf,
    out: PathBuf,
}

/// A tree of `files` (paths with at most one directory level) in `repo`'s object database.
fn tree(repo: &git2::Repository, files: &[(&str, &str)]) -> git2::Oid {
    let mut dirs: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    let mut top = repo.treebuilder(None).unwrap();
    for (path, text) in files {
        match path.split_once('/') {
            Some((d, rest)) => dirs.entry(d).or_default().push((rest, text)),
            None => {
                let blob = repo.blob(text.as_bytes()).unwrap();
                top.insert(path, blob, 0o100644).unwrap();
            }
        }
    }
    for (d, entries) in dirs {
        let sub = tree(repo, &entries);
        top.insert(d, sub, 0o040000).unwrap();
    }
    top.write().unwrap()
}

fn commit(
    repo: &git2::Repository,
    update_ref: Option<&str>,
    parent: Option<git2::Oid>,
    files: &[(&str, &str)],
    message: &str,
    tag: &str,
) -> git2::Oid {
    let sig = git2::Signature::new(
        "perflab test",
        "test@example.invalid",
        &git2::Time::new(1_700_000_000, 0),
    )
    .unwrap();
    let t = repo.find_tree(tree(repo, files)).unwrap();
    let parents: Vec<git2::Commit> = parent
        .map(|p| repo.find_commit(p).unwrap())
        .into_iter()
        .collect();
    let parent_refs: Vec<&git2::Commit> = parents.iter().collect();
    let id = repo
        .commit(update_ref, &sig, &sig, message, &t, &parent_refs)
        .unwrap();
    repo.reference(&format!("refs/tags/{tag}"), id, false, "test tag")
        .unwrap();
    id
}

impl Lab {
    fn new() -> Lab {
        let base = util::Lab::new();
        let root = base.root().to_path_buf();
        let repo = root.join("gateway");
        let suite = root.join("suite");
        let (cache, tmpdir, out) = (base.path("cache"), base.tmp(), base.output());
        for d in [&repo, &suite, &cache, &tmpdir, &out] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(suite.join("gzip-body.toml"), fixture_file("case.toml")).unwrap();

        let r = git2::Repository::init(&repo).unwrap();
        let desc = fixture_file("perflab.toml");
        let plain = fixture_file("nginx.conf.in");
        let gzip = config_with(&fixture_file("gzip.conf"));
        let readme = "fixture gateway for perflab's tests\n";
        let a = commit(
            &r,
            Some("refs/heads/main"),
            None,
            &[
                ("README.md", readme),
                ("perflab.toml", &desc),
                ("conf/nginx.conf.in", &plain),
            ],
            "A: plain proxy",
            "A",
        );
        commit(
            &r,
            Some("refs/heads/main"),
            Some(a),
            &[
                ("README.md", readme),
                ("perflab.toml", &desc),
                ("conf/nginx.conf.in", &gzip),
            ],
            "B: gzip level 9 for everything",
            "B",
        );
        commit(
            &r,
            None,
            None,
            &[("README.md", readme)],
            "no descriptor",
            "no-descriptor",
        );
        let bad = desc.replace(
            "build = \"echo building fixture-proxy; mkdir -p build && echo ok > build/stamp\"",
            "build = \"echo 'compile error: fixture.c:3: expected semicolon' >&2; exit 7\"",
        );
        assert_ne!(
            bad, desc,
            "the fixture's build line changed; update this test"
        );
        commit(
            &r,
            None,
            Some(a),
            &[
                ("README.md", readme),
                ("perflab.toml", &bad),
                ("conf/nginx.conf.in", &plain),
            ],
            "a build that fails",
            "bad-build",
        );
        r.set_head("refs/heads/main").unwrap();
        r.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
            .unwrap();
        Lab {
            base,
            root,
            repo,
            suite,
            cache,
            tmpdir,
            out,
        }
    }

    /// `perflab` with this lab's private cache and temp dirs.
    fn perflab(&self) -> Command {
        self.base.perflab()
    }

    /// `perflab compare VERSIONS…` (multiplexed) with a short budget: 1 s bursts, a restart
    /// every 6 s, 36 s per case.
    fn multiplexed(&self, versions: &[&str], extra: &[&str]) -> Command {
        let mut c = self.perflab();
        c.arg("compare").args(versions);
        c.arg("--suite").arg(&self.suite);
        c.arg("--repo").arg(&self.repo);
        c.arg("--output").arg(&self.out);
        if !extra.contains(&"--budget") {
            c.args(["--budget", "36s"]);
        }
        c.args(["--burst", "1", "--segment", "6", "--warmup", "0", "--plain"]);
        c.args(extra);
        c
    }

    /// `perflab compare --design restart VERSIONS…` with short, quiet-machine-independent
    /// settings.
    fn compare(&self, versions: &[&str], repeat: u32, extra: &[&str]) -> Command {
        let mut c = self.perflab();
        c.arg("compare").args(versions);
        c.args(["--design", "restart"]);
        c.arg("--suite").arg(&self.suite);
        c.arg("--repo").arg(&self.repo);
        c.arg("--output").arg(&self.out);
        c.args(["--duration", "1", "--repeat", &repeat.to_string()]);
        // Shared machine: do not wait for quiet, and do not flag runs as noisy (other builds
        // keep the background busy); flagged runs are included so a saturated run cannot leave
        // a comparison empty.
        c.args([
            "--cooldown-max",
            "0",
            "--warmup",
            "0",
            "--plain",
            "--noisy-pct",
            "100",
        ]);
        c.arg("--include-flagged");
        c.args(extra);
        c
    }

    /// The only results folder in `out/`.
    fn result_dir(&self) -> PathBuf {
        only_results_folder(&self.out)
    }
}

fn run(mut c: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The verdict of `metric` in the printed comparison table.
fn verdict(stdout: &str, candidate: &str, metric: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() > 3 && w[1] == candidate && w[2] == metric
        })
        .unwrap_or_else(|| panic!("no {candidate} {metric} line in:\n{stdout}"));
    // case candidate metric [*] ratio change [lo, hi] MDE verdict…
    let after_ci = line.split(']').nth(1).unwrap_or_default().trim();
    after_ci
        .split_once(' ')
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn regression_is_slower_fails_the_build_and_reports_re_render() {
    let lab = Lab::new();
    let _g = load_lock();
    let (code, out, err) =
        run(lab.multiplexed(&["git:A", "git:B"], &["--fail-on-regression", "5"]));
    assert_eq!(
        verdict(&out, "git:B", "rps"),
        "slower",
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("slower (95% confidence) by at least 5%: gzip-body@command · git:B · rps"),
        "{err}"
    );

    let dir = lab.result_dir();
    // compare.json: the whole report under its schema.
    let json: serde_json::Value = serde_json::from_str(&read(&dir.join("compare.json"))).unwrap();
    assert_eq!(json["schema"], "perflab.compare/1");
    assert_eq!(json["baseline"], "git:A");
    assert_eq!(json["candidates"], serde_json::json!(["git:B"]));
    let case = &json["cases"][0];
    assert_eq!(case["case"], "gzip-body@command");
    let rps = case["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "rps")
        .unwrap();
    assert_eq!(rps["verdict"], "slower");
    assert_eq!(rps["primary"], true);
    assert_eq!(rps["method"], "multiplexed-blocks");
    assert!(rps["n_pairs"].as_u64().unwrap() >= 2, "{rps}");
    assert!(rps["design"]["segments"].as_u64().unwrap() >= 2, "{rps}");
    assert!(rps["mde_pct"].as_f64().unwrap() > 0.0, "{rps}");
    assert!(rps["ci_high"].as_f64().unwrap() < 1.0, "{rps}");
    // Only the primary metric has a verdict.
    for m in case["metrics"].as_array().unwrap() {
        if m["metric"] != "rps" {
            assert_eq!(m["verdict"], "descriptive", "{m}");
        }
    }

    // compare.csv: the documented columns, one row per metric.
    let csv = read(&dir.join("compare.csv"));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        perflab::report::export::CSV_COLUMNS.join(",")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r.len(), perflab::report::export::CSV_COLUMNS.len(), "{r:?}");
        assert_eq!(&r[..2], ["gzip-body@command", "git:B"]);
    }
    let rps_row = rows.iter().find(|r| r[2] == "rps").unwrap();
    assert_eq!(rps_row[8], "slower");
    assert_eq!(rps_row[10], "true");

    // compare.md: a Markdown table per case.
    let md = read(&dir.join("compare.md"));
    assert!(
        md.contains("### gzip-body@command — `git:B` vs `git:A`"),
        "{md}"
    );
    assert!(
        md.contains("| metric | baseline mean | candidate mean | ratio | 95% CI | MDE | verdict |")
    );
    assert!(md.contains("|---|---:|---:|---:|---|---:|---|"));
    assert!(
        md.lines()
            .any(|l| l.starts_with("| **rps (req/s)** |") && l.ends_with("| ▼ slower |")),
        "{md}"
    );
    assert!(md.contains("multiplexed: "), "{md}");

    // bmf.json: benchmark → measure → value/lower_value/upper_value.
    let bmf: serde_json::Value = serde_json::from_str(&read(&dir.join("bmf.json"))).unwrap();
    let root = bmf.as_object().unwrap();
    assert_eq!(root.keys().collect::<Vec<_>>(), ["gzip-body@command"]);
    let measures = root["gzip-body@command"].as_object().unwrap();
    for k in [
        "rps",
        "rps-ratio",
        "rps-per-gateway-cpu-s",
        "latency-p99-ms-ratio",
    ] {
        let m = measures.get(k).unwrap_or_else(|| panic!("no {k} in {bmf}"));
        let mut fields: Vec<&String> = m.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["lower_value", "upper_value", "value"]);
    }
    assert!(measures["rps-ratio"]["upper_value"].as_f64().unwrap() < 1.0);
    assert!(measures["rps-mde-pct"]["value"].as_f64().unwrap() > 0.0);

    // github-action-benchmark files: arrays of {name, unit, value, range, extra}.
    for (file, metric) in [
        ("benchmark-bigger.json", "rps"),
        ("benchmark-smaller.json", "latency_p99_ms"),
    ] {
        let v: serde_json::Value = serde_json::from_str(&read(&dir.join(file))).unwrap();
        let entries = v.as_array().unwrap();
        let e = entries
            .iter()
            .find(|e| e["name"] == format!("gzip-body@command / {metric}"))
            .unwrap_or_else(|| panic!("{file}: {v}"));
        assert!(e["value"].as_f64().unwrap() > 0.0);
        assert!(
            e["extra"].as_str().unwrap().contains("git:B vs git:A"),
            "{e}"
        );
    }

    // The ratio chart is an SVG naming both versions.
    let svg = read(&dir.join("charts/ratio.svg"));
    assert!(
        svg.starts_with("<svg") || svg.contains("<svg"),
        "not an SVG"
    );
    assert!(
        svg.contains("git:A") && svg.contains("git:B"),
        "labels missing"
    );
    for f in ["rps.svg", "rps-per-gateway-cpu.svg", "ratio.json"] {
        assert!(dir.join("charts").join(f).is_file(), "{f}");
    }

    // `perflab report DIR` re-renders everything from the stored runs, without running.
    let runs_before = std::fs::read_dir(dir.join("runs")).unwrap().count();
    let rendered = [
        "summary.md",
        "summary.json",
        "compare.json",
        "compare.md",
        "compare.csv",
        "bmf.json",
        "benchmark-bigger.json",
        "benchmark-smaller.json",
    ];
    let verdict_before = read(&dir.join("compare.json"));
    for f in rendered {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    std::fs::remove_dir_all(dir.join("charts")).unwrap();
    let mut c = lab.perflab();
    c.arg("report").arg(&dir);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("baseline: git:A"), "{out}");
    for f in rendered {
        assert!(dir.join(f).is_file(), "{f} not re-rendered");
    }
    assert!(read(&dir.join("charts/ratio.svg")).contains("git:B"));
    assert!(read(&dir.join("compare.md")).contains("`git:B` vs `git:A`"));
    // The stored bursts and looks give back exactly the verdicts and intervals of the run.
    assert_eq!(read(&dir.join("compare.json")), verdict_before);
    assert_eq!(
        std::fs::read_dir(dir.join("runs")).unwrap().count(),
        runs_before
    );
    assert_eq!(
        std::fs::read_dir(&lab.out)
            .unwrap()
            .flatten()
            .filter(|e| perflab::store::is_results_folder(&e.path()))
            .count(),
        1,
        "report made a new folder"
    );
}

#[test]
fn same_version_twice_is_an_a_a_comparison_with_no_change() {
    let lab = Lab::new();
    let _g = load_lock();
    // A/A on a shared two-core machine swings raw RPS by tens of percent from run to run; a
    // band wider than that makes this a test of the labelling and verdict plumbing. The false
    // verdict rate at the default band is measured by bench/compare-detect.sh.
    let (code, out, err) = run(lab.compare(
        &["git:A", "git:A"],
        3,
        &["--fail-on-regression", "5", "--noise-band", "45"],
    ));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(verdict(&out, "git:A#2", "rps"), "no change", "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&read(&lab.result_dir().join("compare.json"))).unwrap();
    assert_eq!(json["baseline"], "git:A");
    assert_eq!(json["candidates"], serde_json::json!(["git:A#2"]));
    // Both labels ran, from the same checkout: one commit, one cached tree.
    let trees: Vec<_> = std::fs::read_dir(lab.cache.join("worktrees"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(trees.len(), 1);
}

/// Every file and directory under `dir` with its bytes (directories as `None`).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                m.insert(rel, None);
                stack.push(p);
            } else if ft.is_symlink() {
                m.insert(
                    rel,
                    Some(
                        std::fs::read_link(&p)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes(),
                    ),
                );
            } else {
                m.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    m
}

fn assert_same(
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    after: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) {
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "the user's repository changed: {changed:?}"
    );
}

/// Staged, unstaged and untracked changes, and a stash, in the lab's repository.
fn make_dirty(repo: &Path) {
    let mut r = git2::Repository::open(repo).unwrap();
    let sig = git2::Signature::now("user", "user@example.invalid").unwrap();
    std::fs::write(repo.join("README.md"), "work in progress, stashed\n").unwrap();
    r.stash_save(&sig, "wip", None).unwrap();
    std::fs::write(repo.join("conf/nginx.conf.in"), "# staged edit\n").unwrap();
    let mut index = r.index().unwrap();
    index.add_path(Path::new("conf/nginx.conf.in")).unwrap();
    index.write().unwrap();
    std::fs::write(repo.join("perflab.toml"), "# unstaged edit\n").unwrap();
    std::fs::write(repo.join("notes.txt"), "untracked\n").unwrap();
    let st = r
        .statuses(Some(git2::StatusOptions::new().include_untracked(true)))
        .unwrap();
    let flags: Vec<git2::Status> = st.iter().map(|e| e.status()).collect();
    assert!(flags.iter().any(|s| s.is_index_modified()));
    assert!(flags.iter().any(|s| s.is_wt_modified()));
    assert!(flags.iter().any(|s| s.is_wt_new()));
    assert!(r.find_reference("refs/stash").is_ok());
}

#[test]
fn the_users_repository_is_untouched_even_when_interrupted() {
    let lab = Lab::new();
    make_dirty(&lab.repo);
    let before = snapshot(&lab.repo);
    let _g = load_lock();

    let (code, out, err) = run(lab.compare(&["git:A", "git:B"], 1, &[]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_same(&before, &snapshot(&lab.repo));
    // The runs used the committed trees, not the dirty working tree.
    let dir = lab.result_dir();
    let configs: Vec<String> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| read(&e.path().join("config/gateway-nginx.conf")))
        .collect();
    assert_eq!(configs.len(), 2);
    assert!(configs.iter().any(|c| c.contains("gzip_comp_level 9")));
    assert!(
        configs
            .iter()
            .all(|c| c.contains("proxy_pass http://backend"))
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Interrupted once the first run is stored.
    let mut c = lab.compare(&["git:A", "git:B"], 3, &[]);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let first_result = loop {
        let found = std::fs::read_dir(&lab.out)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| perflab::store::is_results_folder(&e.path()))
            .filter_map(|e| std::fs::read_dir(e.path().join("runs")).ok())
            .flatten()
            .flatten()
            .map(|e| e.path().join("result.json"))
            .find(|p| p.is_file());
        if let Some(p) = found {
            break p;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("perflab ended ({status}) before storing a run");
        }
        assert!(
            Instant::now() < deadline,
            "no run stored after 300 s (hang guard)"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "stderr:\n{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(first_result.is_file(), "a finished run was lost");
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&lab.result_dir().join("manifest.json"))).unwrap();
    assert_eq!(manifest["status"], "interrupted");
    assert_same(&before, &snapshot(&lab.repo));
}

/// Every path under `dir` with its modification time (nanoseconds).
fn mtimes(dir: &Path) -> BTreeMap<PathBuf, u128> {
    snapshot(dir)
        .into_keys()
        .map(|rel| {
            let t = std::fs::symlink_metadata(dir.join(&rel))
                .and_then(|m| m.modified())
                .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
                .unwrap_or(0);
            (rel, t)
        })
        .collect()
}

/// SIGKILL at a seeded point of a compare of two `git:` versions (`PERFLAB_TEST_SEED=N`
/// replays), then `perflab teardown`: the user's repository (index, stash, staged, unstaged and
/// untracked files) is byte-identical with the same mtimes, and no lab folder, checkout or
/// journal is left.
#[test]
fn the_users_repository_is_untouched_after_a_kill_and_teardown() {
    let lab = Lab::new();
    make_dirty(&lab.repo);
    let before = snapshot(&lab.repo);
    let times = mtimes(&lab.repo);
    let _g = load_lock();
    let at = Points::from_env().delay(0.5, 8.5);
    eprintln!("kill point: {at:?}");
    let mut child = lab
        .compare(&["git:A", "git:B"], 3, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < at && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let (code, out, err) = run({
        let mut c = lab.perflab();
        c.arg("teardown");
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    assert_same(&before, &snapshot(&lab.repo));
    assert_eq!(
        times,
        mtimes(&lab.repo),
        "mtimes in the user's repository changed"
    );
    let left: Vec<PathBuf> = std::fs::read_dir(&lab.tmpdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "lab folders left: {left:?}");
    let journals = std::fs::read_dir(lab.cache.join("labs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(journals, 0, "journals left");
    let checkouts = std::fs::read_dir(lab.cache.join("worktrees"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(checkouts, 0, "checkouts left");
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let lab = Lab::new();

    // An unknown ref: usage error naming it, before anything starts.
    let (code, _, err) = run(lab.compare(&["git:A", "git:no-such-branch"], 1, &[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown git ref \"no-such-branch\""), "{err}");

    // A commit without perflab.toml: refused before any run, naming the version and the file.
    let (code, _, err) = run(lab.compare(&["git:A", "git:no-descriptor"], 1, &[]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("git:no-descriptor has no perflab.toml")
            && err.contains("docs/command-gateway.md"),
        "{err}"
    );
    assert!(
        !lab.out.read_dir().unwrap().any(|_| true),
        "a results folder was made"
    );

    // Fewer than two versions.
    let (code, _, err) = run(lab.compare(&["git:A"], 1, &[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 2 versions"), "{err}");

    // A failing build: its output is shown and the command fails.
    let _g = load_lock();
    let (code, _, err) = run(lab.compare(&["git:A", "git:bad-build"], 1, &[]));
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("the build command of git:bad-build failed"),
        "{err}"
    );
    assert!(
        err.contains("compile error: fixture.c:3: expected semicolon"),
        "{err}"
    );
}

/// Every run record of a results folder, in sequence order.
fn runs_of(dir: &Path) -> Vec<perflab::result::RunRecord> {
    let mut runs: Vec<perflab::result::RunRecord> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| serde_json::from_str(&read(&e.path().join("result.json"))).unwrap())
        .collect();
    runs.sort_by_key(|r| r.sequence);
    runs
}

#[test]
fn multiplexed_runs_all_versions_at_once_in_seeded_balanced_blocks() {
    let lab = Lab::new();
    let _g = load_lock();
    let (code, out, err) = run(lab.multiplexed(&["git:A", "git:B"], &["--order-seed", "42"]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let dir = lab.result_dir();
    let design: perflab::multiplex::DesignRecord =
        serde_json::from_str(&read(&dir.join("design.json"))).unwrap();
    assert_eq!(design.options.order_seed, 42);
    let case = "gzip-body@command";
    let cd = &design.cases[case];
    assert!(cd.segments >= 2, "no segment restart: {cd:?}");
    assert!(!cd.looks.is_empty() && cd.looks.last().unwrap().fraction == 1.0);
    let runs = runs_of(&dir);
    assert!(
        runs.iter().all(|r| r.burst.is_some()),
        "a run outside the design"
    );

    // The order follows the recorded seed: per segment one draw for the start order, then one
    // balanced order per block.
    let mut rng = perflab::stats::Xoshiro256pp::new(perflab::multiplex::case_seed(42, case));
    let mut segment = None;
    let mut blocks: BTreeMap<u32, Vec<(u32, usize, u32)>> = BTreeMap::new();
    for r in &runs {
        let p = r.burst.as_ref().unwrap();
        let v = usize::from(r.version != "git:A");
        assert_eq!(
            p.instance,
            format!("v{v}"),
            "a burst charged to another instance"
        );
        blocks
            .entry(p.block)
            .or_default()
            .push((p.position, v, p.segment));
    }
    for (_, bursts) in blocks {
        let seg = bursts[0].2;
        if segment != Some(seg) {
            perflab::multiplex::balanced_order(2, &mut rng);
            segment = Some(seg);
        }
        let expected = perflab::multiplex::balanced_order(2, &mut rng);
        let mut got: Vec<(u32, usize)> = bursts.iter().map(|(p, v, _)| (*p, *v)).collect();
        got.sort();
        let got: Vec<usize> = got.into_iter().map(|(_, v)| v).collect();
        if got.len() == expected.len() {
            assert_eq!(got, expected, "block order differs from the seed's");
        }
    }

    // Both versions ran in every segment, each on its own instance, up at the same time: their
    // bursts alternate inside blocks, and restarts happen only between segments.
    let segments: std::collections::BTreeSet<u32> = runs
        .iter()
        .map(|r| r.burst.as_ref().unwrap().segment)
        .collect();
    for s in &segments {
        for v in ["git_A", "git_B"] {
            let log = dir.join(format!("segments/{case}/{}-{v}/gateway-error.log", s + 1));
            assert!(log.is_file(), "{} missing", log.display());
        }
    }

    // CPU per burst is charged to the loaded instance: gzip level 9 (B) costs far more gateway
    // CPU per request than A in every segment.
    let per_cpu = |v: &str| -> Vec<f64> {
        runs.iter()
            .filter(|r| r.version == v)
            .map(|r| r.rps_per_gateway_cpu_s.expect("gateway CPU measured"))
            .collect()
    };
    let med = |mut x: Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let (a, b) = (med(per_cpu("git:A")), med(per_cpu("git:B")));
    assert!(b < 0.8 * a, "requests per gateway CPU-s: A {a}, B {b}");
    assert!(
        runs.iter().all(|r| r.gateway_rss_bytes.unwrap_or(0) > 0),
        "resident memory not recorded"
    );
    assert!(out.contains("gateway_rss_mb"), "{out}");
}

#[test]
fn multiplexed_interrupt_keeps_finished_blocks_and_their_verdict() {
    let lab = Lab::new();
    let _g = load_lock();
    let mut c = lab.multiplexed(&["git:A", "git:B"], &["--budget", "2m"]);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    // Wait for at least three complete blocks (12 bursts), then interrupt mid-way.
    loop {
        let n = std::fs::read_dir(&lab.out)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| perflab::store::is_results_folder(&e.path()))
            .filter_map(|e| std::fs::read_dir(e.path().join("runs")).ok())
            .flatten()
            .flatten()
            .filter(|e| e.path().join("result.json").is_file())
            .count();
        if n >= 14 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            panic!(
                "perflab ended ({}) before 14 bursts:\n{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(Instant::now() < deadline, "hang guard");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "stderr:\n{err}");
    let dir = lab.result_dir();
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&dir.join("manifest.json"))).unwrap();
    assert_eq!(manifest["status"], "interrupted");
    let design: perflab::multiplex::DesignRecord =
        serde_json::from_str(&read(&dir.join("design.json"))).unwrap();
    assert_eq!(design.cases["gzip-body@command"].stopped, "interrupted");
    let runs = runs_of(&dir);
    assert!(runs.len() >= 14);
    // `report` judges the complete blocks that were kept.
    let mut c = lab.perflab();
    c.arg("report").arg(&dir);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let json: serde_json::Value = serde_json::from_str(&read(&dir.join("compare.json"))).unwrap();
    let rps = json["cases"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "rps")
        .cloned()
        .unwrap();
    let complete_blocks = {
        let mut per_block: BTreeMap<u32, usize> = BTreeMap::new();
        for r in &runs {
            *per_block
                .entry(r.burst.as_ref().unwrap().block)
                .or_default() += 1;
        }
        per_block.values().filter(|n| **n == 4).count() as u64
    };
    let used = rps["n_pairs"].as_u64().unwrap();
    assert!(used >= 3 && used <= complete_blocks + 1, "{rps}");
    // No process of the lab outlived it.
    let leftovers = std::process::Command::new("pgrep")
        .args(["-f", &lab.root.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&leftovers.stdout).trim().is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&leftovers.stdout)
    );
}

#[test]
fn multiplexed_compare_runs_haproxy_instances_side_by_side() {
    let lab = Lab::new();
    let _g = load_lock();
    let mut c = lab.perflab();
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.args([
        "compare",
        "current",
        "current",
        "--suite",
        "rps",
        "--tags",
        "simple-proxy",
    ]);
    c.args([
        "--gateway",
        "haproxy",
        "--budget",
        "25s",
        "--burst",
        "1",
        "--warmup",
        "0",
    ]);
    c.args(["--plain", "--output"]).arg(&lab.out);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let dir = lab.result_dir();
    let runs = runs_of(&dir);
    assert!(runs.len() >= 8, "{}", runs.len());
    for r in &runs {
        let p = r.burst.as_ref().expect("a burst");
        let v = if r.version == "current" { "v0" } else { "v1" };
        assert_eq!(p.instance, v);
        assert_eq!(r.gateway, "haproxy");
        assert!(r.cpu.gateway_s.unwrap_or(0.0) > 0.0, "{r:?}");
    }
    // Restarted after every block (the default): as many segments as blocks.
    let design: perflab::multiplex::DesignRecord =
        serde_json::from_str(&read(&dir.join("design.json"))).unwrap();
    let cd = &design.cases["simple-proxy@haproxy"];
    assert_eq!(design.options.segment_s, 0.0);
    assert!(
        cd.segments as usize >= cd.blocks && cd.blocks >= 2,
        "{cd:?}"
    );
    assert!(
        dir.join("charts/blocks-simple-proxy-haproxy-current-2.svg")
            .is_file()
    );
}

#[test]
fn history_marks_the_slower_commit_and_keeps_another_machine_apart() {
    let lab = Lab::new();
    let _g = load_lock();
    // A comparison (B is the gzip regression) and a single-version run of B.
    let (_, out, err) = run(lab.compare(&["git:A", "git:B"], 3, &[]));
    assert_eq!(
        verdict(&out, "git:B", "rps"),
        "slower",
        "stdout:\n{out}\nstderr:\n{err}"
    );
    let mut suite = lab.perflab();
    suite.arg("suite").arg(&lab.suite);
    suite.args(["--version", "git:B", "--repo"]).arg(&lab.repo);
    suite.args(["--duration", "1", "--repeat", "2", "--warmup", "0"]);
    suite.args(["--cooldown-max", "0", "--plain", "--output"]);
    suite.arg(&lab.out);
    let (code, out, err) = run(suite);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // The single-version run feeds the time-series formats too.
    let latest = lab.out.join(perflab::store::LATEST);
    for f in [
        "bmf.json",
        "benchmark-bigger.json",
        "benchmark-smaller.json",
    ] {
        assert!(latest.join(f).is_file(), "{f}");
    }
    let bigger: serde_json::Value =
        serde_json::from_str(&read(&latest.join("benchmark-bigger.json"))).unwrap();
    assert_eq!(bigger[0]["name"], "gzip-body@command / rps");
    // The last stdout line is the machine-readable result.
    let line: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(line["perflab"], "perflab.result-line/1");
    assert_eq!(line["status"], "complete");
    assert_eq!(
        std::fs::canonicalize(line["dir"].as_str().unwrap()).unwrap(),
        std::fs::canonicalize(&latest).unwrap()
    );

    // The same results as if recorded an hour earlier on another machine.
    let other = lab.out.join("0-other-machine");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(std::fs::canonicalize(&latest).unwrap())
        .arg(&other)
        .status()
        .unwrap();
    assert!(copy.success());
    let mut manifest: serde_json::Value =
        serde_json::from_str(&read(&other.join("manifest.json"))).unwrap();
    for host in manifest["fingerprint"]["hosts"]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        host["cpu_model"] = "Another CPU".into();
    }
    let started = manifest["started_unix_s"].as_f64().unwrap();
    manifest["started_unix_s"] = (started - 3600.0).into();
    std::fs::write(
        other.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();

    let hist = lab.root.join("history");
    let mut c = lab.perflab();
    c.arg("history").arg(&lab.out).arg("--out").arg(&hist);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let points: Vec<perflab::history::HistoryPoint> =
        serde_json::from_str(&read(&hist.join("history.json"))).unwrap();
    assert_eq!(
        points.len(),
        4,
        "A and B compared, B alone, B elsewhere: {out}"
    );
    let repo = git2::Repository::open(&lab.repo).unwrap();
    let commit_of = |tag: &str| {
        repo.revparse_single(tag)
            .unwrap()
            .peel_to_commit()
            .unwrap()
            .id()
            .to_string()
    };
    let slower: Vec<&perflab::history::HistoryPoint> = points
        .iter()
        .filter(|p| p.verdict == Some(perflab::stats::Verdict::Slower))
        .collect();
    assert_eq!(slower.len(), 1, "{out}");
    assert_eq!(slower[0].commit.as_deref(), Some(commit_of("B").as_str()));
    assert!(points.iter().any(|p| p.commit == Some(commit_of("A"))));
    // Oldest first: the other machine's copy, flagged; the rest share the newest's machine.
    assert!(points[0].other_machine, "{out}");
    assert!(points[1..].iter().all(|p| !p.other_machine), "{out}");
    assert_ne!(points[0].machine, points[3].machine);
    let row = out
        .lines()
        .find(|l| l.contains(&points[0].machine))
        .unwrap();
    assert!(row.contains("other machine: not comparable"), "{out}");
    // The trend chart draws the other machine apart, and rings the slower point.
    let svg = read(&hist.join("charts/trend-gzip-body-command-req-s.svg"));
    assert!(
        svg.contains("other machine"),
        "legend names the other machine"
    );
    assert!(svg.contains("verdict: slower"));
    let html = read(&hist.join("report.html"));
    assert!(html.contains("data:image/svg+xml;base64,"));
    assert!(html.contains("(other machine)"));
}
