//! Helpers shared by every integration-test module: the lab harness ([`Lab`]: a temp dir and
//! the perflab binary bound to it), the one lock for tests that put load on the machine, free
//! ports, results folders and JSON, skip messages and seeded interrupt points.
//!
//! They live here once so that every module tests the same way: a test that drives load takes
//! [`load_lock`] (one mutex for the whole binary; the machine's cores are shared), a test that
//! cannot run here says why with [`skip`], and "nothing left running" means the same thing in
//! every module ([`Lab::assert_nothing_left`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

/// The perflab binary cargo built for these tests.
pub const PERFLAB: &str = env!("CARGO_BIN_EXE_perflab");

/// A path in this checkout (`tests/fixtures/wrk`, `scripts/start-dockerd.sh`).
pub fn repo_path(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Runs that put load on the machine (wrk, gateways under test, containers, terraform labs)
/// share its cores with everything else: they take this lock and run one at a time. A test
/// that failed while holding it does not stop the others (the poison is ignored).
pub fn load_lock() -> MutexGuard<'static, ()> {
    static LOAD: Mutex<()> = Mutex::new(());
    LOAD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Says why a test does not run here, in the one form every module prints
/// (`SKIPPED what: why`); the test then returns.
pub fn skip(what: &str, why: &str) {
    eprintln!("SKIPPED {what}: {why}");
}

/// Which Kong the live tests run against, or why they are skipped. They run by themselves
/// wherever a Kong is found — `PERFLAB_KONG_PREFIX` (a Kong built from source) or `kong` on
/// `PATH` — so a machine with Kong runs them in `cargo test`; `PERFLAB_KONG_LIVE=1` demands one
/// (a missing Kong then fails the test) and `PERFLAB_KONG_LIVE=0` turns them off.
pub fn live_kong() -> Result<String, String> {
    let live = std::env::var("PERFLAB_KONG_LIVE").unwrap_or_default();
    if live == "0" {
        return Err("PERFLAB_KONG_LIVE=0".into());
    }
    let found = match std::env::var("PERFLAB_KONG_PREFIX") {
        Ok(p) if !p.trim().is_empty() => {
            let kong = Path::new(p.trim()).join("bin/kong");
            assert!(
                kong.is_file(),
                "PERFLAB_KONG_PREFIX={p}, but {} does not exist",
                kong.display()
            );
            Some(format!("{} (PERFLAB_KONG_PREFIX)", kong.display()))
        }
        _ => which::which("kong")
            .ok()
            .map(|k| format!("{} (on PATH)", k.display())),
    };
    match found {
        Some(k) => Ok(k),
        None if live == "1" => {
            panic!("PERFLAB_KONG_LIVE=1 but no Kong: set PERFLAB_KONG_PREFIX or put kong on PATH")
        }
        None => Err("no Kong here (neither PERFLAB_KONG_PREFIX nor `kong` on PATH)".into()),
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether `perf` can profile here: installed, and allowed by `kernel.perf_event_paranoid`
/// (or root). Prints why not ([`skip`]) for `what` otherwise.
pub fn perf_usable(what: &str) -> bool {
    if which::which("perf").is_err() {
        skip(what, "`perf` is not installed (apt-get install linux-perf)");
        return false;
    }
    let paranoid: i32 = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2);
    if paranoid > 2 && !is_root() {
        skip(
            what,
            &format!("kernel.perf_event_paranoid = {paranoid} and not root"),
        );
        return false;
    }
    true
}

/// A port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A JSON file, parsed; panics naming the file.
pub fn json(p: &Path) -> Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A finished command's status, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A finished command's stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The short-run flags of most CLI tests: 1 s, one repeat, no warm-up, no cool-down wait.
pub const FAST: &[&str] = &[
    "--duration",
    "1",
    "--repeat",
    "1",
    "--warmup",
    "0",
    "--cooldown-max",
    "0",
    "--plain",
];

/// The results folders under `output`, oldest first (none when `output` does not exist).
pub fn results_folders(output: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(output)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| perflab::store::is_results_folder(p))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The one results folder under `output`; panics when there is not exactly one.
pub fn only_results_folder(output: &Path) -> PathBuf {
    let dirs = results_folders(output);
    assert_eq!(
        dirs.len(),
        1,
        "one results folder in {}: {dirs:?}",
        output.display()
    );
    dirs[0].clone()
}

/// The run folders of a results folder, in run order.
pub fn run_dirs(folder: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(folder.join("runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The `result.json` files of a results folder's runs, in run order (runs without one left out).
pub fn result_files(folder: &Path) -> Vec<PathBuf> {
    run_dirs(folder)
        .into_iter()
        .map(|d| d.join("result.json"))
        .filter(|p| p.is_file())
        .collect()
}

/// (run folder, parsed `result.json`) for every run of a results folder, in run order.
pub fn runs(folder: &Path) -> Vec<(PathBuf, Value)> {
    run_dirs(folder)
        .into_iter()
        .map(|d| {
            let r = json(&d.join("result.json"));
            (d, r)
        })
        .collect()
}

/// The runs perflab printed as finished (its `--plain` progress lines) in its stderr.
pub fn printed_runs(stderr_text: &str) -> usize {
    stderr_text
        .lines()
        .filter(|l| l.starts_with("perflab:   ") && l.contains(" req/s"))
        .count()
}

/// The runs stored under `output` with a `result.json` that parses as a run record, over every
/// results folder: after an interrupt, at least every run [`printed_runs`] counted.
pub fn parsable_runs(output: &Path) -> usize {
    results_folders(output)
        .iter()
        .flat_map(|d| result_files(d))
        .filter(|f| {
            std::fs::read(f)
                .ok()
                .and_then(|b| serde_json::from_slice::<perflab::result::RunRecord>(&b).ok())
                .is_some()
        })
        .count()
}

/// Every key path of a JSON value's objects (`cpu.gateway_s`): the shape of a record, to compare
/// records of different drivers.
pub fn key_paths(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let Value::Object(m) = v {
            for (k, v) in m {
                let p = format!("{prefix}{k}");
                walk(v, &format!("{p}."), out);
                out.insert(p);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

/// Polls `f` until it gives a value while `child` (a perflab) runs. The bound is generous and
/// only keeps a broken run from hanging the tests; no test claims anything about time.
pub fn wait_for<T>(child: &mut Child, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut exited = None;
    let found =
        perflab::host::poll_until(Duration::from_secs(300), Duration::from_millis(20), || {
            if let Some(v) = f() {
                return Some(Some(v));
            }
            exited = child.try_wait().unwrap();
            exited.map(|_| None)
        });
    match found {
        Some(Some(v)) => v,
        _ => {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                let _ = std::io::Read::read_to_string(e, &mut err);
            }
            panic!("gave up waiting for {what} (perflab exited: {exited:?}):\n{err}")
        }
    }
}

/// Seeded interrupt points (xoshiro256++ from the library): the seed is printed, and
/// `PERFLAB_TEST_SEED=N` replays a failure.
pub struct Points(perflab::stats::Xoshiro256pp);

impl Points {
    /// Points from `PERFLAB_TEST_SEED`, or from the clock (printed).
    pub fn from_env() -> Points {
        let seed = std::env::var("PERFLAB_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("interrupt points: seed {seed} (replay with PERFLAB_TEST_SEED={seed})");
        Points(perflab::stats::Xoshiro256pp::new(seed))
    }

    /// A delay from `lo` to `hi` seconds.
    pub fn delay(&mut self, lo: f64, hi: f64) -> Duration {
        Duration::from_secs_f64(lo + (hi - lo) * self.0.unit())
    }
}

/// A temporary lab for CLI tests: a temp dir with `tmp/` (the TMPDIR of every perflab child, so
/// every process the lab starts inherits it and can be found again) and `cache/` (its
/// `PERFLAB_CACHE_DIR`), results under `out/`, and perflab commands bound to them. perflab runs
/// in the temp dir, so nothing it writes lands in the checkout.
pub struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    /// A fresh lab.
    pub fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("perflab-test-")
            .tempdir()
            .unwrap();
        for d in ["tmp", "cache"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Lab { dir }
    }

    /// The lab's temp dir.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the lab's temp dir.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The TMPDIR every perflab child of this lab gets.
    pub fn tmp(&self) -> PathBuf {
        self.path("tmp")
    }

    /// Where results go (`--output`); perflab creates it.
    pub fn output(&self) -> PathBuf {
        self.path("out")
    }

    /// [`Lab::output`] as an argument.
    pub fn out(&self) -> String {
        self.output().display().to_string()
    }

    /// A perflab command bound to this lab (no arguments yet): its TMPDIR and cache, stdin
    /// closed, the test-only environment of the caller removed.
    pub fn perflab(&self) -> Command {
        let mut c = Command::new(PERFLAB);
        c.env("TMPDIR", self.tmp())
            .env("PERFLAB_CACHE_DIR", self.path("cache"))
            .env_remove("PERF_TEST_DRIVER")
            .env_remove("PERFLAB_DEBUG_PANIC_AT_RUN")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// [`Lab::perflab`] with `args`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.perflab();
        c.args(args);
        c
    }

    /// Runs `perflab args…` to the end and prints what it wrote (shown when the test fails).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(self.cmd(args), args)
    }

    /// Runs `c` (a [`Lab::cmd`] of `args`, changed by the caller) and prints what it wrote.
    pub fn run_with(&self, mut c: Command, args: &[&str]) -> Output {
        let out = c.output().unwrap();
        eprintln!(
            "$ perflab {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `perflab args…` in the background with its standard error in a file (returned).
    pub fn spawn(&self, args: &[&str]) -> (Child, PathBuf) {
        let err = self.dir.path().join(format!(
            "stderr-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = self
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        (child, err)
    }

    /// (pid, process group, command line) of every process of this lab: those carrying its
    /// TMPDIR in their environment or its path on their command line (nginx overwrites its
    /// environment with its process title), and the other members of their process groups
    /// (nginx's workers).
    pub fn processes(&self) -> Vec<(i32, i32, String)> {
        let needle = format!("TMPDIR={}", self.tmp().display());
        let path = self.tmp().display().to_string();
        let mut all = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // Fields after the command name: state ppid pgrp …
            if fields.first() == Some(&"Z") {
                continue;
            }
            let pgrp: i32 = fields.get(2).and_then(|p| p.parse().ok()).unwrap_or(0);
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(
                &std::fs::read(e.path().join("cmdline")).unwrap_or_default(),
            )
            .replace('\0', " ");
            let ours =
                env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) || cmd.contains(&path);
            all.push((pid, pgrp, cmd, ours));
        }
        let own = nix::unistd::getpgrp().as_raw();
        let groups: Vec<i32> = all
            .iter()
            .filter(|p| p.3 && p.1 != own)
            .map(|p| p.1)
            .collect();
        all.into_iter()
            .filter(|p| p.3 || groups.contains(&p.1))
            .map(|(pid, pgrp, cmd, _)| (pid, pgrp, cmd))
            .collect()
    }

    /// "pid: command line" of every process of this lab ([`Lab::processes`]).
    pub fn leftovers(&self) -> Vec<String> {
        self.processes()
            .into_iter()
            .map(|(pid, _, cmd)| format!("{pid}: {cmd}"))
            .collect()
    }

    /// Nothing of this lab runs (exited processes get a moment to be reaped), and no results
    /// folder stays at `running`.
    pub fn assert_nothing_left(&self) {
        let gone =
            perflab::host::poll_until(Duration::from_secs(5), Duration::from_millis(100), || {
                self.leftovers().is_empty().then_some(())
            });
        if gone.is_none() {
            let left = self.leftovers();
            assert!(left.is_empty(), "processes left behind: {left:#?}");
        }
        for d in results_folders(&self.output()) {
            let m = d.join("manifest.json");
            if let Ok(text) = std::fs::read(&m)
                && let Ok(v) = serde_json::from_slice::<Value>(&text)
            {
                assert_ne!(v["status"], "running", "{} stuck at running", m.display());
            }
        }
    }

    /// A folder to use as PATH holding only `tools` (links to this machine's), for tests of a
    /// missing program.
    pub fn path_with(&self, tools: &[&str]) -> PathBuf {
        let bin = self.path(&format!("bin-{}", tools.join("-")));
        std::fs::create_dir_all(&bin).unwrap();
        for t in tools {
            let real =
                which::which(t).unwrap_or_else(|_| panic!("{t} must be installed for this test"));
            std::os::unix::fs::symlink(real, bin.join(t)).unwrap();
        }
        bin
    }

    /// The results folders under [`Lab::output`], oldest first.
    pub fn results_dirs(&self) -> Vec<PathBuf> {
        results_folders(&self.output())
    }

    /// The newest results folder under [`Lab::output`].
    pub fn results_dir(&self) -> PathBuf {
        self.results_dirs().pop().expect("a results folder")
    }

    /// A suite folder `suites/NAME` in the lab holding `files` (name, text), as an argument.
    pub fn suite_dir(&self, name: &str, files: &[(&str, &str)]) -> String {
        let d = self.dir.path().join("suites").join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (file, text) in files {
            std::fs::write(d.join(file), text).unwrap();
        }
        d.display().to_string()
    }

    /// A suite of one case: `suites/NAME/NAME.toml` holding `case`, as an argument.
    pub fn suite(&self, name: &str, case: &str) -> String {
        self.suite_dir(name, &[(&format!("{name}.toml"), case)])
    }
}
