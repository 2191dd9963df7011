//! The profiler role: CPU profiles of the gateway under load, as folded stacks.
//!
//! Kong's framework profiled with SystemTap (`stap++` and the `lj-lua-stacks` sample) on the
//! terraform driver only. SystemTap needs loadable kernel modules, kernel headers and kprobes,
//! which many kernels (containers, micro-VMs, locked-down cloud images) do not offer, so perflab's
//! primary profiler is `perf record`, which needs only the `perf_event_open` system call. Both
//! are written against [`Host`], so they work on every driver: perf runs *on the gateway's host*
//! next to the gateway, and only folded stacks travel back.
//!
//! The flow is [`start_profiler`] → load runs → [`RunningProfiler::stop_and_collect`] (or
//! [`RunningProfiler::wait_and_collect`] for a fixed [`ProfilerOptions::duration`]) → a
//! [`Profile`] whose folded stacks go to [`crate::flamegraph`].
//!
//! Why these choices:
//! - The whole process group is profiled (`-p master,worker,…`): the gateway is a role started
//!   in its own group, so its pids are exactly the group's members at start time.
//! - Counts are samples, not periods: `perf script -F -period` drops the period field, so inferno
//!   counts one per sample and [`Profile::samples`] means what it says.
//! - perf writes a valid `perf.data` when it gets SIGTERM (checked with perf 6.1), so the
//!   ordinary [`Proc::stop`] (TERM to the group, grace, KILL) is the stop signal.
//! - Readiness is observed, not guessed: perf has attached once its event file descriptors
//!   (`anon_inode:[perf_event]`) appear in `/proc/PID/fd`.
//! - [`start_stapxx`] keeps Kong's verb. It checks what SystemTap needs and, where that is
//!   missing, fails with the reasons and points to [`start_profiler`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::{Cmd, Host, Proc, poll_until};
use crate::{Error, Result};

/// How perf records call stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CallGraph {
    /// Frame-pointer unwinding (`-g`): cheap and small, but stops at the first frame of a binary
    /// built without frame pointers (Debian's nginx, most distro builds).
    #[default]
    #[value(alias = "frame-pointer")]
    Fp,
    /// DWARF unwinding (`--call-graph dwarf`): copies 8 KiB of stack per sample and unwinds
    /// offline; full stacks through binaries without frame pointers, ~30× the data.
    Dwarf,
}

impl CallGraph {
    /// The `perf record` arguments for this mode.
    pub fn perf_args(self) -> &'static [&'static str] {
        match self {
            CallGraph::Fp => &["-g"],
            CallGraph::Dwarf => &["--call-graph", "dwarf"],
        }
    }
}

crate::names::impl_names!(CallGraph => "call-graph mode", ProfilerTool => "profiler");

/// Which tool and mode produced a [`Profile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileMode {
    /// `perf record` with the given call-graph mode.
    Perf(CallGraph),
    /// `stap++` with the named sample script (e.g. `lj-lua-stacks.sxx`).
    Stapxx(String),
    /// perflab's Lua sampler in the gateway's workers, with the named LuaJIT profiler
    /// (`jit.profile`; [`crate::role::lua_profiler`]).
    Lua(String),
}

impl ProfileMode {
    /// The tool's name as results record it (`perf`, `stapxx`, `lua`).
    pub fn tool(&self) -> &'static str {
        match self {
            ProfileMode::Perf(_) => "perf",
            ProfileMode::Stapxx(_) => "stapxx",
            ProfileMode::Lua(_) => "lua",
        }
    }
}

/// Which profiler a profiled run attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProfilerTool {
    /// `perf record` on the gateway's processes: native stacks (nginx, the kernel), every
    /// gateway.
    #[default]
    Perf,
    /// LuaJIT's sampler inside Kong's workers: Lua stacks with function names and `file:line`
    /// ([`crate::role::lua_profiler`]); Kong only.
    Lua,
}

/// Options of [`start_profiler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilerOptions {
    /// The profiler: perf (default) or Kong's Lua sampler. The fields below except
    /// `frequency_hz` are perf's.
    pub tool: ProfilerTool,
    /// The perf event to sample on. `cpu-clock` (a software timer) works everywhere, including
    /// VMs without hardware counters.
    pub event: String,
    /// Samples per second per profiled thread. 99 avoids lock-step with 100 Hz timers.
    pub frequency_hz: u32,
    /// How stacks are unwound.
    pub call_graph: CallGraph,
    /// Profile for this long, then perf exits by itself; `None` profiles until stopped.
    pub duration: Option<Duration>,
}

impl Default for ProfilerOptions {
    fn default() -> Self {
        ProfilerOptions {
            tool: ProfilerTool::Perf,
            event: "cpu-clock".to_string(),
            frequency_hz: 99,
            call_graph: CallGraph::Fp,
            duration: None,
        }
    }
}

/// A finished CPU profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Folded stacks, one `root;…;leaf COUNT` line per distinct stack, root = process name.
    pub folded: String,
    /// Number of samples (the sum of the folded counts).
    pub samples: u64,
    /// The tool and unwinding mode.
    pub mode: ProfileMode,
    /// The sampled event (`cpu-clock`), or the stap sample for stapxx.
    pub event: String,
    /// Sampling frequency in Hz (0 when unknown, e.g. for stapxx).
    pub frequency: u32,
    /// The profiled process ids on their host.
    pub pids: Vec<u32>,
}

/// Where perf lives and how to install it, for [`Error::MissingTool`].
const PERF_HINT: &str = "install it with `apt-get install linux-perf` (Debian; `linux-tools-$(uname -r)` on \
     Ubuntu, `perf` on Fedora/RHEL), on the gateway's host";

/// How long perf may take to attach before we give up.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(15);
/// Grace time for perf to write `perf.data` after TERM (dwarf data can be large).
const STOP_GRACE: Duration = Duration::from_secs(60);
/// Limit for `perf script` (dwarf unwinding of long runs is slow).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// A `perf record` running on a host.
pub struct RunningProfiler {
    host: Arc<dyn Host>,
    proc: Box<dyn Proc>,
    opts: ProfilerOptions,
    pids: Vec<u32>,
    dir: PathBuf,
}

impl fmt::Debug for RunningProfiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningProfiler")
            .field("host", &self.host.name())
            .field("perf_pid", &self.proc.pid())
            .field("opts", &self.opts)
            .field("pids", &self.pids)
            .field("dir", &self.dir)
            .finish()
    }
}

fn host_err(host: &dyn Host, reason: String) -> Error {
    Error::Host(crate::host::HostError::Other {
        host: host.name().to_string(),
        reason,
    })
}

/// Checks that `perf` exists and runs on the host.
fn check_perf(host: &dyn Host) -> Result<()> {
    let missing = |why: String| Error::MissingTool {
        program: "perf".to_string(),
        where_: format!(" on host {}{why}", host.name()),
        hint: PERF_HINT.to_string(),
    };
    if host.which("perf").is_none() {
        return Err(missing(String::new()));
    }
    // Debian's /usr/bin/perf is a wrapper that fails when no perf matches the kernel.
    let out = host
        .run(&Cmd::new("perf").arg("--version"), Duration::from_secs(30))
        .map_err(|e| missing(format!(" (it does not run: {e})")))?;
    if !out.success() {
        return Err(missing(format!(
            " (`perf --version` failed: {})",
            out.combined_text()
        )));
    }
    Ok(())
}

/// Reads `kernel.perf_event_paranoid` on the host.
pub fn read_perf_event_paranoid(host: &dyn Host) -> Option<i32> {
    let bytes = host
        .read_file(Path::new("/proc/sys/kernel/perf_event_paranoid"))
        .ok()?;
    String::from_utf8_lossy(&bytes).trim().parse().ok()
}

/// Recognises perf's refusal to open events (`perf_event_paranoid`, missing capabilities) in
/// its output and turns it into an actionable message. `paranoid` is the host's current
/// `kernel.perf_event_paranoid`, if known; otherwise the value perf printed is used.
/// Returns `None` when the output is not a permission refusal.
pub fn perf_refusal_message(
    host_name: &str,
    perf_output: &str,
    paranoid: Option<i32>,
) -> Option<String> {
    let lower = perf_output.to_lowercase();
    let refused = lower.contains("perf_event_paranoid")
        || lower.contains("access to performance monitoring")
        || lower.contains("no permission to enable")
        || (lower.contains("permission denied") && lower.contains("perf_event"));
    if !refused {
        return None;
    }
    let printed = perf_output.lines().find_map(|l| {
        l.trim()
            .strip_prefix("perf_event_paranoid setting is ")?
            .trim_end_matches(':')
            .trim()
            .parse::<i32>()
            .ok()
    });
    let value = paranoid
        .or(printed)
        .map_or_else(|| "unknown".to_string(), |v| v.to_string());
    Some(format!(
        "perf was refused access to performance events on host {host_name}: \
         kernel.perf_event_paranoid is {value} and perf runs without CAP_PERFMON/CAP_SYS_ADMIN. \
         Run the profiler as root, or lower the setting on that host with \
         `sysctl kernel.perf_event_paranoid=1` (kernel frames of the user's own processes; \
         -1 allows everything; persist it in /etc/sysctl.conf). Profiling another user's \
         processes also needs CAP_SYS_PTRACE. perf said: {}",
        perf_output.trim()
    ))
}

/// Counts the `anon_inode:[perf_event]` descriptors of a process (perf's opened events).
fn perf_event_fds(host: &dyn Host, pid: u32) -> Option<usize> {
    let out = host
        .run(
            &Cmd::new("ls").arg("-l").arg(format!("/proc/{pid}/fd")),
            Duration::from_secs(10),
        )
        .ok()?;
    out.success()
        .then(|| out.stdout_text().matches("[perf_event]").count())
}

/// Starts `perf record` on `host` for every process of process group `pgid` (the gateway's
/// master and workers), writing `DIR/perf.data` and `DIR/perf-record.log` (paths on the host).
///
/// Returns once perf has opened its events. Errors: [`Error::MissingTool`] when perf is not
/// installed; [`Error::Lab`] naming `kernel.perf_event_paranoid` and how to lower it when the
/// kernel refuses; [`Error::Lab`] when the group has no processes.
pub fn start_profiler(
    host: Arc<dyn Host>,
    pgid: u32,
    dir: &Path,
    opts: ProfilerOptions,
) -> Result<RunningProfiler> {
    let snapshot = host.proc_snapshot()?;
    let pids: Vec<u32> = snapshot
        .procs
        .values()
        .filter(|p| p.pgrp == pgid)
        .map(|p| p.pid)
        .collect();
    start_profiler_on(host, pids, &format!("process group {pgid}"), dir, opts)
}

/// Like [`start_profiler`], for the processes `pids` (a server's master and workers when the
/// group also holds a launcher, as Kong's `kong start` does); `what` names them in errors.
pub fn start_profiler_on(
    host: Arc<dyn Host>,
    mut pids: Vec<u32>,
    what: &str,
    dir: &Path,
    opts: ProfilerOptions,
) -> Result<RunningProfiler> {
    if opts.frequency_hz == 0 {
        return Err(Error::Usage(
            "profiler frequency must be > 0 Hz".to_string(),
        ));
    }
    check_perf(host.as_ref())?;
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() {
        return Err(Error::Lab(format!(
            "cannot profile {what} on host {}: it has no processes (did the gateway exit?)",
            host.name()
        )));
    }
    let mkdir = host.run(
        &Cmd::new("mkdir").arg("-p").arg(dir.display().to_string()),
        Duration::from_secs(30),
    )?;
    if !mkdir.success() {
        return Err(host_err(
            host.as_ref(),
            format!("creating {}: {}", dir.display(), mkdir.combined_text()),
        ));
    }
    let data = dir.join("perf.data");
    let log = dir.join("perf-record.log");
    let pid_list: Vec<String> = pids.iter().map(u32::to_string).collect();
    let mut cmd = Cmd::new("perf")
        .arg("record")
        .arg("-e")
        .arg(&opts.event)
        .arg("-F")
        .arg(opts.frequency_hz.to_string())
        .args(opts.call_graph.perf_args().iter().copied())
        .arg("-p")
        .arg(pid_list.join(","))
        .arg("-o")
        .arg(data.display().to_string());
    if let Some(d) = opts.duration {
        // With `-p`, a command only bounds the recording time.
        cmd = cmd
            .arg("--")
            .arg("sleep")
            .arg(format!("{:.3}", d.as_secs_f64()));
    }
    tracing::debug!(host = host.name(), cmd = %cmd.display(), "starting perf");
    let mut proc = host.spawn(&cmd, &log)?;
    let perf_pid = proc.pid();

    // Attached = perf holds at least one event fd per profiled process, and the count has
    // stopped growing (perf opens all events before enabling them).
    let mut last = 0usize;
    let attached = poll_until(ATTACH_TIMEOUT, Duration::from_millis(50), || {
        if !proc.is_running() {
            return Some(false);
        }
        let n = perf_event_fds(host.as_ref(), perf_pid).unwrap_or(0);
        let stable = n >= pids.len() && n == last;
        last = n;
        stable.then_some(true)
    });
    match attached {
        Some(true) => {}
        Some(false) => {
            let _ = proc.wait_timeout(Duration::from_secs(5));
            let text = host
                .read_file(&log)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            return Err(record_failure(host.as_ref(), &text));
        }
        None => {
            crate::signals::check()?;
            tracing::warn!(
                host = host.name(),
                "perf is running but no perf_event descriptors were seen in /proc/{perf_pid}/fd \
                 within {ATTACH_TIMEOUT:?}; continuing"
            );
        }
    }
    Ok(RunningProfiler {
        host,
        proc,
        opts,
        pids,
        dir: dir.to_path_buf(),
    })
}

/// The error for a `perf record` that exited at start, from its log.
fn record_failure(host: &dyn Host, log: &str) -> Error {
    if let Some(msg) = perf_refusal_message(host.name(), log, read_perf_event_paranoid(host)) {
        return Error::Lab(msg);
    }
    Error::Lab(format!(
        "perf record exited at start on host {}: {}",
        host.name(),
        log.trim()
    ))
}

impl RunningProfiler {
    /// The profiled process ids.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// The `perf.data` file on the profiler's host.
    pub fn data_path(&self) -> PathBuf {
        self.dir.join("perf.data")
    }

    /// The options it runs with.
    pub fn options(&self) -> &ProfilerOptions {
        &self.opts
    }

    /// Stops perf now (TERM; perf then writes `perf.data`) and collects the profile.
    pub fn stop_and_collect(mut self) -> Result<Profile> {
        if self.proc.is_running() {
            self.proc.stop(STOP_GRACE)?;
        }
        self.collect()
    }

    /// Waits for a profile of fixed [`ProfilerOptions::duration`] to end by itself (up to
    /// `extra` beyond the duration, then it is stopped) and collects it. Without a duration,
    /// this is [`RunningProfiler::stop_and_collect`].
    pub fn wait_and_collect(mut self, extra: Duration) -> Result<Profile> {
        if let Some(d) = self.opts.duration {
            let _ = self.proc.wait_timeout(d + extra)?;
        }
        self.stop_and_collect()
    }

    fn collect(self) -> Result<Profile> {
        let host = self.host.as_ref();
        let data = self.data_path();
        let log_path = self.dir.join("perf-record.log");
        let log = host
            .read_file(&log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if !log.contains("Captured and wrote") {
            return Err(Error::Lab(format!(
                "perf record on host {} did not write {}: {}",
                host.name(),
                data.display(),
                log.trim()
            )));
        }
        let script = self.dir.join("perf-script.txt");
        let script_err = self.dir.join("perf-script.log");
        // Output can be tens of MB for dwarf: write it to a file on the host, then read it.
        // `-F -period` drops the period so that folded counts are sample counts.
        let out = host.run(
            &Cmd::new("sh")
                .arg("-c")
                .arg(r#"exec perf script -F -period -i "$1" > "$2" 2> "$3""#)
                .arg("sh")
                .arg(data.display().to_string())
                .arg(script.display().to_string())
                .arg(script_err.display().to_string()),
            SCRIPT_TIMEOUT,
        )?;
        if !out.success() {
            let err = host
                .read_file(&script_err)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            return Err(Error::Lab(format!(
                "perf script failed on host {} for {}: {}",
                host.name(),
                data.display(),
                err.trim()
            )));
        }
        let text = host.read_file(&script)?;
        let folded = fold_perf_script(&text)?;
        let samples = crate::flamegraph::total_count(&folded);
        Ok(Profile {
            folded,
            samples,
            mode: ProfileMode::Perf(self.opts.call_graph),
            event: self.opts.event.clone(),
            frequency: self.opts.frequency_hz,
            pids: self.pids.clone(),
        })
    }
}

/// A running profiler of either [`ProfilerTool`].
#[derive(Debug)]
pub enum RunningSampler {
    /// `perf record` ([`start_profiler`]).
    Perf(RunningProfiler),
    /// The Lua sampler ([`crate::role::lua_profiler::start_lua_profiler`]).
    Lua(crate::role::lua_profiler::RunningLuaProfiler),
}

impl RunningSampler {
    /// Stops the profiler and collects its profile.
    pub fn stop_and_collect(self) -> Result<Profile> {
        match self {
            RunningSampler::Perf(p) => p.stop_and_collect(),
            RunningSampler::Lua(p) => p.stop_and_collect(),
        }
    }
}

/// Collapses `perf script` output into folded stacks with inferno (root frame = process name).
pub fn fold_perf_script(perf_script: &[u8]) -> Result<String> {
    use inferno::collapse::Collapse;
    let mut opts = inferno::collapse::perf::Options::default();
    opts.nthreads = 1;
    let mut folder = inferno::collapse::perf::Folder::from(opts);
    let mut out = Vec::new();
    folder
        .collapse(perf_script, &mut out)
        .map_err(|e| Error::Lab(format!("folding perf script output: {e}")))?;
    String::from_utf8(out).map_err(|e| Error::Lab(format!("folded stacks: {e}")))
}

/// The processes of an nginx server whose master wrote `pid_file`: the master and its
/// children (the workers, read from `/proc/PID/task/PID/children`), master first. Kong's
/// framework profiled these — it read `<prefix>/pids/nginx.pid` and took its first child
/// (spec/helpers/perf/drivers/terraform.lua `get_start_stapxx_cmd`) — not the `kong start`
/// process, which only launches nginx and waits.
pub fn nginx_server_pids(host: &dyn Host, pid_file: &Path) -> Result<Vec<u32>> {
    let text = host.read_file(pid_file)?;
    let master: u32 = String::from_utf8_lossy(&text).trim().parse().map_err(|_| {
        Error::Lab(format!(
            "{} on host {} holds no pid (is the server running?)",
            pid_file.display(),
            host.name()
        ))
    })?;
    let children = host
        .read_file(Path::new(&format!("/proc/{master}/task/{master}/children")))
        .map_err(|e| {
            Error::Lab(format!(
                "the server of {} (pid {master}) on host {} is gone: {e}",
                pid_file.display(),
                host.name()
            ))
        })?;
    let mut pids = vec![master];
    pids.extend(
        String::from_utf8_lossy(&children)
            .split_whitespace()
            .filter_map(|w| w.parse::<u32>().ok()),
    );
    Ok(pids)
}

// ---------------------------------------------------------------------------------------------
// SystemTap / stap++ (Kong's profiler)

/// Options of [`start_stapxx`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StapxxOptions {
    /// The target process (`-x PID`): Kong used the first worker of the gateway.
    pub pid: u32,
    /// Extra arguments for the sample, e.g. `["--arg", "time=60", "-D", "MAXMAPENTRIES=1000000"]`.
    pub args: Vec<String>,
    /// Where Kong's stapxx checkout is (`stap++` and `samples/`); Kong used `/tmp/stapxx`.
    pub stapxx_dir: PathBuf,
    /// Output directory on the host.
    pub dir: PathBuf,
}

impl StapxxOptions {
    /// Options for `pid` with Kong's defaults: stapxx in `/tmp/stapxx`, output in `dir`.
    pub fn new(pid: u32, dir: &Path) -> Self {
        StapxxOptions {
            pid,
            args: Vec::new(),
            stapxx_dir: PathBuf::from("/tmp/stapxx"),
            dir: dir.to_path_buf(),
        }
    }
}

/// What a host offers SystemTap, as checked by [`systemtap_blockers`].
const STAPXX_PROBE_SCRIPT: &str = r#"
r=$(uname -r)
echo "kernel $r"
command -v stap >/dev/null 2>&1 && echo "stap yes" || echo "stap no"
if command -v stap++ >/dev/null 2>&1 || [ -x "$1/stap++" ]; then echo "stapxx yes"; else echo "stapxx no"; fi
[ -r /proc/modules ] && echo "modules yes" || echo "modules no"
[ "$(cat /proc/sys/kernel/modules_disabled 2>/dev/null)" = 1 ] && echo "modules_disabled yes" || echo "modules_disabled no"
[ -e "/lib/modules/$r/build" ] && echo "headers yes" || echo "headers no"
if [ -e /sys/kernel/debug/kprobes ]; then echo "kprobes yes"
elif grep -q ' register_kprobe$' /proc/kallsyms 2>/dev/null; then echo "kprobes yes"
else echo "kprobes no"; fi
"#;

/// Why SystemTap cannot run on a host, split into what the kernel lacks (installing packages
/// does not help) and which tools are missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemTapBlockers {
    /// Kernel-side reasons: no loadable modules, no headers, no kprobes.
    pub kernel: Vec<String>,
    /// Missing programs: `stap`, `stap++`.
    pub tools: Vec<String>,
}

impl SystemTapBlockers {
    /// True when nothing blocks SystemTap.
    pub fn is_empty(&self) -> bool {
        self.kernel.is_empty() && self.tools.is_empty()
    }
    /// Every reason, kernel first.
    pub fn all(&self) -> Vec<String> {
        self.kernel.iter().chain(&self.tools).cloned().collect()
    }
}

/// Finds why SystemTap (and so `stap++`) cannot run on the host; empty when everything it needs
/// seems present. Checks: `stap`, `stap++` (on PATH or in `stapxx_dir`), loadable kernel modules
/// (`/proc/modules`, `kernel.modules_disabled`), kernel headers (`/lib/modules/$(uname -r)/build`)
/// and kprobes (`/sys/kernel/debug/kprobes` or `register_kprobe` in `/proc/kallsyms`).
pub fn systemtap_blockers(host: &dyn Host, stapxx_dir: &Path) -> Result<SystemTapBlockers> {
    let out = host.run(
        &Cmd::new("sh")
            .arg("-c")
            .arg(STAPXX_PROBE_SCRIPT)
            .arg("sh")
            .arg(stapxx_dir.display().to_string()),
        Duration::from_secs(30),
    )?;
    Ok(parse_systemtap_probe(&out.stdout_text(), stapxx_dir))
}

fn parse_systemtap_probe(text: &str, stapxx_dir: &Path) -> SystemTapBlockers {
    let mut kernel = "?".to_string();
    let mut facts = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("kernel ") {
            kernel = k.trim().to_string();
        } else if let Some((k, v)) = line.split_once(' ') {
            facts.insert(k.to_string(), v.trim() == "yes");
        }
    }
    let yes = |k: &str| facts.get(k).copied().unwrap_or(false);
    let mut b = SystemTapBlockers::default();
    let blockers = &mut b.kernel;
    if !yes("modules") {
        blockers.push(format!(
            "kernel {kernel} has no loadable module support (/proc/modules is missing)"
        ));
    } else if yes("modules_disabled") {
        blockers.push("module loading is disabled (kernel.modules_disabled = 1)".to_string());
    }
    if !yes("headers") {
        blockers.push(format!("no kernel headers at /lib/modules/{kernel}/build"));
    }
    if !yes("kprobes") {
        blockers.push(
            "no kprobes (/sys/kernel/debug/kprobes missing, no register_kprobe in /proc/kallsyms)"
                .to_string(),
        );
    }
    let blockers = &mut b.tools;
    if !yes("stap") {
        blockers.push("`stap` (SystemTap) is not installed".to_string());
    }
    if !yes("stapxx") {
        blockers.push(format!(
            "`stap++` is neither on PATH nor in {} (git clone https://github.com/Kong/stapxx)",
            stapxx_dir.display()
        ));
    }
    b
}

/// A `stap++` sampling run on a host.
pub struct RunningStapxx {
    host: Arc<dyn Host>,
    proc: Box<dyn Proc>,
    sample: String,
    pid: u32,
    out: PathBuf,
    log: PathBuf,
}

impl fmt::Debug for RunningStapxx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningStapxx")
            .field("host", &self.host.name())
            .field("sample", &self.sample)
            .field("pid", &self.pid)
            .field("out", &self.out)
            .finish()
    }
}

/// Kong's `start_stapxx`: runs `stap++ STAPXX_DIR/samples/SAMPLE --skip-badvars -D
/// MAXSKIPPED=1000000 -x PID ARGS…` on the host and waits until its kernel module is loaded
/// (a `stap_` line in `/proc/modules`, Kong's readiness check).
///
/// First checks [`systemtap_blockers`]: when the kernel cannot run SystemTap it fails with
/// [`Error::Lab`] naming every reason and pointing to [`start_profiler`]; when only the tools are
/// missing, with [`Error::MissingTool`].
///
/// The run path after the checks could not be exercised on the project's machines (no kernel
/// there can load SystemTap modules); it follows Kong's commands.
pub fn start_stapxx(
    host: Arc<dyn Host>,
    sample_name: &str,
    opts: &StapxxOptions,
) -> Result<RunningStapxx> {
    if sample_name.is_empty() || sample_name.contains('/') {
        return Err(Error::Usage(format!(
            "stapxx sample {sample_name:?} must be a file name in stapxx's samples/ (e.g. \
             lj-lua-stacks.sxx)"
        )));
    }
    let blockers = systemtap_blockers(host.as_ref(), &opts.stapxx_dir)?;
    if !blockers.kernel.is_empty() {
        return Err(Error::Lab(format!(
            "SystemTap cannot run on host {}: {}. Use the perf profiler instead \
             (perflab::role::profiler::start_profiler), which needs only perf_event_open.",
            host.name(),
            blockers.all().join("; ")
        )));
    }
    if !blockers.is_empty() {
        return Err(Error::MissingTool {
            program: "stap/stap++".to_string(),
            where_: format!(" on host {}", host.name()),
            hint: format!(
                "{}. Install SystemTap (`apt-get install systemtap`) and clone Kong/stapxx into \
                 {}; or use the perf profiler (start_profiler)",
                blockers.tools.join("; "),
                opts.stapxx_dir.display()
            ),
        });
    }
    let mkdir = host.run(
        &Cmd::new("mkdir")
            .arg("-p")
            .arg(opts.dir.display().to_string()),
        Duration::from_secs(30),
    )?;
    if !mkdir.success() {
        return Err(host_err(host.as_ref(), mkdir.combined_text()));
    }
    let stem = sample_name.trim_end_matches(".sxx");
    let out = opts.dir.join(format!("{stem}.bt"));
    let log = opts.dir.join(format!("{stem}.log"));
    let stapxx = if host.which("stap++").is_some() {
        "stap++".to_string()
    } else {
        opts.stapxx_dir.join("stap++").display().to_string()
    };
    let sample = opts.stapxx_dir.join("samples").join(sample_name);
    // stdout (the backtraces) to OUT, stderr to the spawn log.
    let cmd = Cmd::new("sh")
        .arg("-c")
        .arg(r#"out=$1; shift; exec "$@" > "$out""#)
        .arg("sh")
        .arg(out.display().to_string())
        .arg(stapxx)
        .arg(sample.display().to_string())
        .args(["--skip-badvars", "-D", "MAXSKIPPED=1000000", "-x"])
        .arg(opts.pid.to_string())
        .args(opts.args.iter().cloned());
    let mut proc = host.spawn(&cmd, &log)?;
    let ready = poll_until(Duration::from_secs(60), Duration::from_millis(200), || {
        if !proc.is_running() {
            return Some(false);
        }
        let modules = host.read_file(Path::new("/proc/modules")).ok()?;
        String::from_utf8_lossy(&modules)
            .lines()
            .any(|l| l.starts_with("stap_"))
            .then_some(true)
    });
    if ready != Some(true) {
        let text = host
            .read_file(&log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let _ = proc.stop(Duration::from_secs(5));
        return Err(Error::Lab(format!(
            "stap++ {sample_name} did not load its probe on host {}: {}",
            host.name(),
            text.trim()
        )));
    }
    Ok(RunningStapxx {
        host,
        proc,
        sample: sample_name.to_string(),
        pid: opts.pid,
        out,
        log,
    })
}

impl RunningStapxx {
    /// Waits up to `timeout` for the sample to end by itself (`--arg time=N`), otherwise
    /// interrupts its process group (SIGINT runs the sample's `end` probe, which prints the backtraces), then
    /// folds its output.
    pub fn wait_and_collect(mut self, timeout: Duration) -> Result<Profile> {
        let host = self.host.as_ref();
        if self.proc.wait_timeout(timeout)?.is_none() {
            let _ = host.run(
                // The whole group: stap++ runs stap, which runs staprun.
                &Cmd::new("kill")
                    .args(["-s", "INT", "--"])
                    .arg(format!("-{}", self.proc.pid())),
                Duration::from_secs(10),
            );
            if self.proc.wait_timeout(Duration::from_secs(30))?.is_none() {
                self.proc.stop(Duration::from_secs(5))?;
            }
        }
        let text = host.read_file(&self.out)?;
        let folded = fold_stap_backtraces(&String::from_utf8_lossy(&text));
        if folded.trim().is_empty() {
            let log = host
                .read_file(&self.log)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            return Err(Error::Lab(format!(
                "systemtap output is empty, possibly no samples were captured (stap++ {} on \
                 host {}): {}",
                self.sample,
                host.name(),
                log.trim()
            )));
        }
        let samples = crate::flamegraph::total_count(&folded);
        Ok(Profile {
            folded,
            samples,
            mode: ProfileMode::Stapxx(self.sample.clone()),
            event: format!("stap++ {}", self.sample),
            frequency: 0,
            pids: vec![self.pid],
        })
    }
}

/// Folds SystemTap aggregated backtraces: blocks of frames, innermost first, one per line, each
/// block ended by its count (either a line holding only the count, or `frame<TAB>count` on the
/// block's last line, as `lj-lua-stacks.sxx` prints). Blank lines separate blocks. Frames of
/// the form `0xADDR : name+0x1/0x2 [module]` are reduced to `name`.
pub fn fold_stap_backtraces(text: &str) -> String {
    let mut stacks: std::collections::BTreeMap<String, u64> = Default::default();
    let mut frames: Vec<String> = Vec::new();
    let mut flush = |frames: &mut Vec<String>, count: u64| {
        if !frames.is_empty() && count > 0 {
            let key: Vec<&str> = frames.iter().rev().map(String::as_str).collect();
            *stacks.entry(key.join(";")).or_default() += count;
        }
        frames.clear();
    };
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() {
            frames.clear();
            continue;
        }
        if let Ok(n) = line.parse::<u64>() {
            flush(&mut frames, n);
            continue;
        }
        if let Some((frame, n)) = raw.trim_end().rsplit_once('\t')
            && let Ok(n) = n.trim().parse::<u64>()
        {
            if !frame.trim().is_empty() {
                frames.push(stap_frame_name(frame));
            }
            flush(&mut frames, n);
            continue;
        }
        frames.push(stap_frame_name(line));
    }
    stacks
        .into_iter()
        .map(|(k, n)| format!("{k} {n}\n"))
        .collect()
}

fn stap_frame_name(frame: &str) -> String {
    let mut f = frame.trim();
    if let Some((addr, rest)) = f.split_once(" : ")
        && addr.trim().starts_with("0x")
    {
        f = rest.trim();
        // `name+0x1a/0x40 [module]` → `name`
        if let Some((name, _)) = f.split_once(" [") {
            f = name;
        }
        if let Some((name, _)) = f.split_once("+0x") {
            f = name;
        }
    }
    f.replace(';', ":").replace(' ', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_graph_args_and_names() {
        assert_eq!(CallGraph::Fp.perf_args(), ["-g"]);
        assert_eq!(CallGraph::Dwarf.perf_args(), ["--call-graph", "dwarf"]);
        assert_eq!("dwarf".parse::<CallGraph>().unwrap(), CallGraph::Dwarf);
        assert!("lbr".parse::<CallGraph>().is_err());
        assert_eq!(CallGraph::default().to_string(), "fp");
    }

    #[test]
    fn stap_blocks_fold_innermost_last() {
        // Hand-written in the shape of SystemTap's aggregated backtrace output (no kernel here
        // can run SystemTap to record a real one).
        let text = "C:ngx_http_handler\n@/kong/init.lua:10\nbuiltin#1\t5\n\n\
                    0xffffffff81000000 : tcp_sendmsg+0x1a/0x40 [kernel]\n\
                    0x4005d0 : main+0x10/0x20 [/usr/bin/nginx]\n3\n\n\
                    C:ngx_http_handler\n@/kong/init.lua:10\nbuiltin#1\t2\n";
        let folded = fold_stap_backtraces(text);
        assert_eq!(
            folded,
            "builtin#1;@/kong/init.lua:10;C:ngx_http_handler 7\nmain;tcp_sendmsg 3\n"
        );
    }

    #[test]
    fn systemtap_probe_names_every_blocker() {
        let text = "kernel 6.1.0\nstap no\nstapxx no\nmodules no\nmodules_disabled no\n\
                    headers no\nkprobes no\n";
        let b = parse_systemtap_probe(text, Path::new("/tmp/stapxx"));
        assert_eq!((b.kernel.len(), b.tools.len()), (3, 2), "{b:?}");
        assert!(b.kernel[0].contains("6.1.0") && b.kernel[1].contains("/lib/modules/6.1.0/build"));
        let ok = "kernel 6.1.0\nstap yes\nstapxx yes\nmodules yes\nmodules_disabled no\n\
                  headers yes\nkprobes yes\n";
        assert!(parse_systemtap_probe(ok, Path::new("/x")).is_empty());
    }

    #[test]
    fn refusal_message_names_the_setting_and_the_fix() {
        assert!(
            perf_refusal_message(
                "h",
                "Couldn't create thread/CPU maps: No such process",
                None
            )
            .is_none()
        );
        let m = perf_refusal_message(
            "gw",
            "Error:\nAccess to performance monitoring and observability operations is limited.\n\
             perf_event_paranoid setting is 3:\n",
            None,
        )
        .unwrap();
        assert!(m.contains("kernel.perf_event_paranoid is 3"), "{m}");
        assert!(m.contains("sysctl kernel.perf_event_paranoid=1"), "{m}");
    }

    /// perf's refusal text, recorded on the project's machine (perf 6.1,
    /// `perf_event_paranoid` = 2) by
    /// `runuser -u nobody -- perf record -e cpu-clock -g -p <root nginx master> …`.
    #[test]
    fn the_recorded_perf_refusal_is_explained() {
        let recorded = include_str!("../../tests/fixtures/perf/refusal-paranoid-2.txt");
        let m = perf_refusal_message("gw", recorded, None).unwrap();
        assert!(m.contains("perf_event_paranoid is 2"), "{m}");
        assert!(m.contains("sysctl kernel.perf_event_paranoid=1"), "{m}");
    }
}
