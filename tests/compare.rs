//! `perflab compare` end to end, through the real binary: a gateway repository made with git2 in
//! a temporary directory (templates in tests/fixtures/gateway-repo), whose `perflab.toml` starts
//! a real nginx as a reverse proxy in front of perflab's real upstream nginx, loaded by real wrk
//! on loopback.
//!
//! Commit `A` proxies plainly; commit `B` adds `gzip_comp_level 9` for every response, and the
//! case's clients send `Accept-Encoding: gzip`, so `B` costs several times more gateway CPU per
//! request: a regression large enough to be seen in 3 one-second repeats on a shared machine.
//!
//! No assertion is about time. Verdicts are asserted only where the effect is far larger than
//! this machine's noise (A/B), or with a noise band wider than it (A/A): whether perflab detects
//! *small* changes is measured by bench/compare-detect.sh, not asserted here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs that put load on the machine share two cores with other work: one at a time.
static LOAD: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOAD.lock().unwrap_or_else(|e| e.into_inner())
}

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

/// A temporary lab: the gateway repo, a one-case suite, and private cache, temp and output dirs.
struct Lab {
    _tmp: tempfile::TempDir,
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
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let repo = root.join("gateway");
        let suite = root.join("suite");
        let (cache, tmpdir, out) = (root.join("cache"), root.join("tmp"), root.join("out"));
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
            _tmp: tmp,
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
        let mut c = Command::new(env!("CARGO_BIN_EXE_perflab"));
        c.current_dir(&self.root)
            .env("PERFLAB_CACHE_DIR", &self.cache)
            .env("TMPDIR", &self.tmpdir)
            .env_remove("PERF_TEST_DRIVER");
        c
    }

    /// `perflab compare VERSIONS…` with short, quiet-machine-independent settings.
    fn compare(&self, versions: &[&str], repeat: u32, extra: &[&str]) -> Command {
        let mut c = self.perflab();
        c.arg("compare").args(versions);
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
        let dirs: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs[0].clone()
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
    // case candidate metric ratio [lo, hi] verdict…
    let after_ci = line.split(']').nth(1).unwrap_or_default();
    after_ci.trim().to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn regression_is_slower_fails_the_build_and_reports_re_render() {
    let lab = Lab::new();
    let _g = lock();
    let (code, out, err) = run(lab.compare(&["git:A", "git:B"], 3, &["--fail-on-regression", "5"]));
    assert_eq!(
        verdict(&out, "git:B", "rps"),
        "slower",
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("slower by more than 5% with 95% confidence: gzip-body@command · git:B · rps"),
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
    assert_eq!(rps["n_pairs"], 3);
    assert!(rps["ci_high"].as_f64().unwrap() < 0.95, "{rps}");

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
    assert_eq!(rps_row[9], "3");

    // compare.md: a Markdown table per case.
    let md = read(&dir.join("compare.md"));
    assert!(
        md.contains("### gzip-body@command — `git:B` vs `git:A`"),
        "{md}"
    );
    assert!(md.contains("| metric | baseline mean | candidate mean | ratio | 95% CI | verdict |"));
    assert!(md.contains("|---|---:|---:|---:|---|---|"));
    assert!(
        md.lines()
            .any(|l| l.starts_with("| rps (req/s) |") && l.ends_with("| ▼ slower |")),
        "{md}"
    );

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
    assert_eq!(
        std::fs::read_dir(dir.join("runs")).unwrap().count(),
        runs_before
    );
    assert_eq!(
        std::fs::read_dir(&lab.out).unwrap().count(),
        1,
        "report made a new folder"
    );
}

#[test]
fn same_version_twice_is_an_a_a_comparison_with_no_change() {
    let lab = Lab::new();
    let _g = lock();
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
    let _g = lock();

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
    let _g = lock();
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
