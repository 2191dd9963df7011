//! The load generator role: wrk, with Kong's options and defaults, or (`kind = "open"`)
//! perflab's open-loop generator ([`super::open`]) with the same options plus a rate.
//!
//! The generator runs under a tiny `sh` wrapper that prints the POSIX `times` of its children
//! to a file when it exits, so the load generator's own CPU seconds are known on every host
//! without racing its exit. wrk always gets `--latency` so the percentile distribution is
//! printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::result::LoadResult;
use crate::host::{Cmd, Host, Proc, proc_stat};
use crate::{Error, Result};

/// Longest load a run may ask for (`duration`), in seconds: one day.
pub const MAX_DURATION_S: f64 = 86_400.0;
/// Longest warm-up, in seconds.
pub const MAX_WARMUP_S: f64 = 3_600.0;
/// Most wrk threads.
pub const MAX_THREADS: u32 = 1_024;
/// Most wrk connections.
pub const MAX_CONNECTIONS: u32 = 1_000_000;

/// Load options, with Kong's framework's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Request path (default `/`).
    pub path: String,
    /// Target base URI (default: the gateway's proxy URI, or the upstream for baseline).
    pub uri: Option<String>,
    /// Open connections (default 1000).
    pub connections: u32,
    /// wrk threads (default 5).
    pub threads: u32,
    /// Seconds of load (default 10).
    pub duration: f64,
    /// A wrk Lua script's source text.
    pub script: Option<String>,
    /// Extra request headers, `Name: value`.
    pub headers: Vec<String>,
    /// Socket/request timeout in whole seconds (wrk only takes seconds).
    pub timeout: Option<u32>,
    /// Seconds of unmeasured warm-up load after each gateway start (0 disables).
    pub warmup: f64,
    /// Closed loop (wrk, the default) or open loop (perflab's constant-rate generator).
    pub kind: LoadKind,
    /// Requests per second, for open-loop load (required there, refused for closed loop).
    pub rate: Option<f64>,
    /// The gateway listener the load goes to: its proxy (the default) or its Admin API
    /// (Kong's Admin API scenario, spec/04-perf/01-rps/06-core_entities_crud_spec.lua). `uri`
    /// wins over it. Left out of stored cases when it is the proxy, so cases written before
    /// it existed round-trip unchanged.
    #[serde(skip_serializing_if = "LoadPort::is_proxy")]
    pub port: LoadPort,
}

/// Which listener of the gateway a load goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadPort {
    /// The proxy port (the upstream for baseline cases).
    #[default]
    Proxy,
    /// The gateway's Admin API.
    Admin,
}

impl LoadPort {
    /// True for the default, the proxy.
    pub fn is_proxy(&self) -> bool {
        *self == LoadPort::Proxy
    }
}

/// How load is generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoadKind {
    /// wrk: each connection sends its next request when the previous answer arrived, as fast as
    /// the gateway answers. Measures throughput; its latencies hide stalls.
    #[default]
    Closed,
    /// A constant request rate on a fixed schedule, latency from each request's intended send
    /// time (no coordinated omission): `perflab open-load` on the load host.
    Open,
}

crate::names::impl_names!(LoadKind => "load kind");

/// Highest open-loop rate, requests per second.
pub const MAX_RATE: f64 = 10_000_000.0;

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            path: "/".into(),
            uri: None,
            connections: 1000,
            threads: 5,
            duration: 10.0,
            script: None,
            headers: Vec::new(),
            timeout: None,
            warmup: 1.0,
            kind: LoadKind::Closed,
            rate: None,
            port: LoadPort::Proxy,
        }
    }
}

impl LoadOptions {
    /// Checks the options for mistakes wrk would refuse or misread.
    ///
    /// Bounds (docs/suites.md): `duration` finite, 1 to [`MAX_DURATION_S`] seconds; `warmup`
    /// finite, 0 to [`MAX_WARMUP_S`]; `threads` 1 to [`MAX_THREADS`]; `connections` from
    /// `threads` to [`MAX_CONNECTIONS`]; `timeout` 1 to 3600 seconds.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(Error::Usage(format!(
                "threads must be from 1 to {MAX_THREADS} (got {})",
                self.threads
            )));
        }
        if self.connections > MAX_CONNECTIONS {
            return Err(Error::Usage(format!(
                "connections must be at most {MAX_CONNECTIONS} (got {})",
                self.connections
            )));
        }
        if self.connections < self.threads {
            return Err(Error::Usage(format!(
                "connections ({}) must be at least threads ({}): wrk gives every thread at least one connection; raise --connections or lower --threads",
                self.connections, self.threads
            )));
        }
        if !self.duration.is_finite() || !(1.0..=MAX_DURATION_S).contains(&self.duration) {
            return Err(Error::Usage(format!(
                "duration must be a finite number of seconds from 1 to {MAX_DURATION_S} (got {})",
                self.duration
            )));
        }
        if !self.warmup.is_finite() || !(0.0..=MAX_WARMUP_S).contains(&self.warmup) {
            return Err(Error::Usage(format!(
                "warmup must be a finite number of seconds from 0 to {MAX_WARMUP_S} (got {})",
                self.warmup
            )));
        }
        if let Some(t) = self.timeout
            && !(1..=3600).contains(&t)
        {
            return Err(Error::Usage(format!(
                "timeout must be from 1 to 3600 seconds (got {t})"
            )));
        }
        match (self.kind, self.rate) {
            (LoadKind::Closed, Some(_)) => {
                return Err(Error::Usage(
                    "rate is for open-loop load: set kind = \"open\" (wrk, the closed-loop generator, sends as fast as the gateway answers)".into(),
                ));
            }
            (LoadKind::Open, None) => {
                return Err(Error::Usage(
                    "open-loop load needs a rate (requests per second): set rate in [case.load] or pass --rate".into(),
                ));
            }
            (LoadKind::Open, Some(r)) if !r.is_finite() || !(1.0..=MAX_RATE).contains(&r) => {
                return Err(Error::Usage(format!(
                    "rate must be from 1 to {MAX_RATE} requests per second (got {r})"
                )));
            }
            (LoadKind::Open, Some(_)) if self.script.is_some() => {
                return Err(Error::Usage(
                    "a wrk Lua script cannot drive open-loop load: remove script or use kind = \"closed\"".into(),
                ));
            }
            _ => {}
        }
        if let Some(h) = self.headers.iter().find(|h| !h.contains(':')) {
            return Err(Error::Usage(format!(
                "header \"{h}\" must look like \"Name: value\""
            )));
        }
        Ok(())
    }

    /// The full URL: base URI plus path.
    pub fn url(&self, default_uri: &str) -> String {
        let base = self
            .uri
            .as_deref()
            .unwrap_or(default_uri)
            .trim_end_matches('/');
        let path = if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        format!("{base}{path}")
    }
}

/// wrk's argv (without the wrapper) for a given duration.
pub fn wrk_args(
    opts: &LoadOptions,
    url: &str,
    duration_s: f64,
    script_path: Option<&Path>,
) -> Vec<String> {
    let mut a = vec![
        "-c".to_string(),
        opts.connections.to_string(),
        "-t".to_string(),
        opts.threads.to_string(),
        "-d".to_string(),
        format!("{}s", duration_s.round().max(1.0) as u64),
        "--latency".to_string(),
    ];
    if let Some(t) = opts.timeout {
        a.push("--timeout".into());
        a.push(format!("{t}s"));
    }
    for h in &opts.headers {
        a.push("-H".into());
        a.push(h.clone());
    }
    if let Some(s) = script_path {
        a.push("-s".into());
        a.push(s.display().to_string());
    }
    a.push(url.to_string());
    a
}

/// The wrapper: `sh -c WRAPPER perflab-load TIMES_FILE wrk ARGS…` runs wrk with its args, then
/// writes `times` to TIMES_FILE. wrk runs in the background and the wrapper waits for it, so a
/// TERM to the wrapper alone (the parent-death signal it gets when perflab is killed, see
/// [`crate::host::process_group::spawn_tied`]) reaches wrk too instead of orphaning it.
const WRAPPER: &str = "t=$1; shift; \"$@\" & c=$!; trap 'kill -TERM \"$c\" 2>/dev/null' TERM; \
                       wait \"$c\"; rc=$?; \
                       while kill -0 \"$c\" 2>/dev/null; do wait \"$c\"; rc=$?; done; \
                       times > \"$t\"; exit $rc";

/// A load run in progress.
pub struct RunningLoad {
    kind: LoadKind,
    host: Arc<dyn Host>,
    proc: Box<dyn Proc>,
    /// wrk's output file on the load host.
    pub output_path: PathBuf,
    times_path: PathBuf,
    /// The exact wrk command line.
    pub command: String,
    /// When it started.
    pub started: Instant,
    /// Planned duration.
    pub duration_s: f64,
    /// Where wrk writes the load's time series, when it records one.
    series_path: Option<PathBuf>,
    /// The Lua script wrk was given, if any (its load errors are refused, see [`script_error`]).
    script_path: Option<PathBuf>,
}

/// What a finished load run gives back.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// wrk's raw output (stdout and stderr).
    pub raw: String,
    /// The parsed result.
    pub result: LoadResult,
    /// CPU seconds wrk used.
    pub cpu_s: f64,
    /// The exact command.
    pub command: String,
    /// Wall-clock seconds from start to exit.
    pub wall_s: f64,
    /// Open-loop load: the latency histogram in the `hdrhistogram` V2 serialised form.
    pub histogram: Option<Vec<u8>>,
    /// The load per 100 ms, when it was recorded ([`start_load_recording`]).
    pub series: Option<crate::role::load::series::Series>,
}

/// Finds wrk on the load host.
pub fn find_wrk(host: &dyn Host) -> Result<String> {
    host.which("wrk").ok_or_else(|| Error::MissingTool {
        program: "wrk".into(),
        where_: format!(" on host {}", host.name()),
        hint: "install it (Debian/Ubuntu: apt-get install wrk)".into(),
    })
}

/// Starts wrk in the background on `host`. `dir` is a private directory on the host for the
/// script and output; `name` distinguishes runs (e.g. `warmup`, `run`).
pub fn start_load(
    host: Arc<dyn Host>,
    dir: &Path,
    name: &str,
    opts: &LoadOptions,
    url: &str,
    duration_s: f64,
    cpus: Option<Vec<usize>>,
) -> Result<RunningLoad> {
    start_load_recording(host, dir, name, opts, url, duration_s, cpus, false)
}

/// [`start_load`], and with `series` wrk also records the load's time series (see
/// [`crate::role::load::series`]; it costs wrk CPU, so only runs that need it ask).
#[allow(clippy::too_many_arguments)]
pub fn start_load_recording(
    host: Arc<dyn Host>,
    dir: &Path,
    name: &str,
    opts: &LoadOptions,
    url: &str,
    duration_s: f64,
    cpus: Option<Vec<usize>>,
    series: bool,
) -> Result<RunningLoad> {
    opts.validate()?;
    // The per-100 ms time series comes from a wrk script; open-loop runs keep their own series.
    let mut series_path = None;
    let mut script_file = None;
    let (program, args) = match (opts.kind, opts.rate) {
        (LoadKind::Open, Some(rate)) => (
            super::open::perflab_program(host.as_ref())?,
            super::open::open_args(opts, url, rate, duration_s),
        ),
        _ => {
            series_path = series.then(|| dir.join(format!("{name}.series")));
            let script = match &series_path {
                Some(out) => Some(crate::role::load::series::script(
                    opts.script.as_deref(),
                    out,
                )),
                None => opts.script.clone(),
            };
            let script_path = match &script {
                Some(src) => {
                    let p = dir.join(format!("{name}.lua"));
                    host.write_file(&p, src.as_bytes())?;
                    script_file = Some(p.clone());
                    Some(p)
                }
                None => None,
            };
            (
                find_wrk(host.as_ref())?,
                wrk_args(opts, url, duration_s, script_path.as_deref()),
            )
        }
    };
    let output_path = dir.join(format!("{name}.out"));
    let times_path = dir.join(format!("{name}.times"));
    let cmd = Cmd::new("sh")
        .arg("-c")
        .arg(WRAPPER)
        .arg("perflab-load")
        .arg(times_path.display().to_string())
        .arg(&program)
        .args(args.iter().cloned())
        .cpus(cpus);
    let command = crate::host::quote::join(
        &std::iter::once(program.clone())
            .chain(args)
            .collect::<Vec<_>>(),
    );
    let proc = host.spawn(&cmd, &output_path)?;
    Ok(RunningLoad {
        kind: opts.kind,
        host,
        proc,
        output_path,
        times_path,
        command,
        started: Instant::now(),
        duration_s,
        series_path,
        script_path: script_file,
    })
}

impl RunningLoad {
    /// Waits for wrk to finish (at most `timeout` beyond its planned duration), then parses its
    /// output. Interrupts stop wrk and return [`Error::Interrupted`].
    pub fn wait(mut self, extra: Duration) -> Result<LoadOutcome> {
        let deadline = Duration::from_secs_f64(self.duration_s) + extra;
        // Ask the host nothing while wrk is surely still running: on container and SSH hosts
        // every question is an exec or a round trip whose CPU would compete with the load.
        let quiet_until = Duration::from_secs_f64(self.duration_s);
        while self.started.elapsed() < quiet_until {
            if crate::signals::interrupted() {
                self.proc.stop(Duration::from_secs(2))?;
                return Err(Error::Interrupted);
            }
            std::thread::sleep(
                Duration::from_millis(50).min(quiet_until.saturating_sub(self.started.elapsed())),
            );
        }
        let code = loop {
            if let Some(c) = self.proc.wait_timeout(Duration::from_millis(100))? {
                break c;
            }
            if crate::signals::interrupted() {
                self.proc.stop(Duration::from_secs(2))?;
                return Err(Error::Interrupted);
            }
            if self.started.elapsed() > deadline {
                self.proc.stop(Duration::from_secs(2))?;
                return Err(Error::Load(format!(
                    "wrk did not finish within {deadline:?}: {}",
                    self.command
                )));
            }
        };
        let wall_s = self.started.elapsed().as_secs_f64();
        let raw = String::from_utf8_lossy(&self.host.read_file(&self.output_path)?).into_owned();
        let cpu_s = self
            .host
            .read_file(&self.times_path)
            .ok()
            .and_then(|t| proc_stat::parse_times_children(&String::from_utf8_lossy(&t)))
            .unwrap_or(0.0);
        if code != 0 {
            return Err(Error::Load(format!(
                "the load generator exited with status {code}:\n{}",
                raw.trim()
            )));
        }
        if let Some(line) = self
            .script_path
            .as_deref()
            .and_then(|p| script_error(&raw, p))
        {
            return Err(Error::Load(format!(
                "wrk could not load the case's Lua script and ran without it, so the run is not \
                 what the case asked for; fix the script:\n{line}"
            )));
        }
        let (result, histogram) = match self.kind {
            LoadKind::Closed => (
                crate::role::load::wrk_parse::parse(&raw).map_err(Error::from)?,
                None,
            ),
            LoadKind::Open => {
                let report = super::open::parse_report(&raw)?;
                let (result, hist) = super::open::result_from_reports(&[report])?;
                (result, Some(hist))
            }
        };
        let series = match &self.series_path {
            Some(p) => {
                let text = self.host.read_file(p).map_err(|e| {
                    Error::Load(format!("wrk wrote no time series ({e}):\n{}", raw.trim()))
                })?;
                Some(
                    crate::role::load::series::parse(&String::from_utf8_lossy(&text)).ok_or_else(
                        || Error::Load(format!("wrk's time series {} is malformed", p.display())),
                    )?,
                )
            }
            None => None,
        };
        Ok(LoadOutcome {
            raw,
            result,
            cpu_s,
            command: self.command,
            wall_s,
            histogram,
            series,
        })
    }
}

/// The line in wrk's output that says it could not load `script` (wrk prints
/// `<script>: <error>` and then runs its default request, exiting 0), if any.
fn script_error(raw: &str, script: &Path) -> Option<String> {
    let prefix = format!("{}: ", script.display());
    raw.lines()
        .find(|l| l.starts_with(&prefix))
        .map(str::to_string)
}

/// Waits for the loads of one run started on several load hosts at once (open-loop, the rate
/// split between them) and merges them into one outcome: their histograms merged, counts and
/// CPU seconds added, each host's share kept in `open_loop.hosts`. `cpus[i]` is the number of
/// CPUs load `i` had, for its `load_saturated` flag. One load is returned as it is.
pub fn wait_all(loads: Vec<RunningLoad>, cpus: &[usize], extra: Duration) -> Result<LoadOutcome> {
    let n = loads.len();
    let mut outcomes = Vec::new();
    let mut names = Vec::new();
    for l in loads {
        names.push(l.host.name().to_string());
        outcomes.push(l.wait(extra)?);
    }
    if n == 1 {
        return Ok(outcomes.remove(0));
    }
    let reports = outcomes
        .iter()
        .map(|o| super::open::parse_report(&o.raw))
        .collect::<Result<Vec<_>>>()?;
    let (mut result, histogram) = super::open::result_from_reports(&reports)?;
    if let Some(ol) = result.open_loop.as_mut() {
        ol.hosts = reports
            .iter()
            .zip(&outcomes)
            .enumerate()
            .map(|(i, (r, o))| super::open::LoadHostShare {
                host: names[i].clone(),
                rate_asked: r.rate_asked,
                rate_achieved: r.rate_achieved(),
                generator_limited: r.rate_achieved() < super::open::SHORT_RATE_SHARE * r.rate_asked,
                cpu_s: o.cpu_s,
                load_saturated: o.cpu_s / o.wall_s.max(1e-9)
                    >= 0.95 * cpus.get(i).copied().unwrap_or(1) as f64,
            })
            .collect();
    }
    Ok(LoadOutcome {
        raw: outcomes
            .iter()
            .map(|o| o.raw.trim())
            .collect::<Vec<_>>()
            .join("\n"),
        result,
        cpu_s: outcomes.iter().map(|o| o.cpu_s).sum(),
        command: outcomes
            .iter()
            .zip(&names)
            .map(|(o, h)| format!("{h}: {}", o.command))
            .collect::<Vec<_>>()
            .join("\n"),
        wall_s: outcomes.iter().map(|o| o.wall_s).fold(0.0, f64::max),
        histogram: Some(histogram),
        // Several hosts only run open-loop load, which keeps no wrk time series.
        series: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_defaults() {
        let o = LoadOptions::default();
        assert_eq!(
            (o.connections, o.threads, o.duration, o.path.as_str()),
            (1000, 5, 10.0, "/")
        );
    }

    #[test]
    fn refuses_fewer_connections_than_threads() {
        let o = LoadOptions {
            connections: 2,
            threads: 4,
            ..Default::default()
        };
        let e = o.validate().unwrap_err().to_string();
        assert!(
            e.contains("connections (2) must be at least threads (4)"),
            "{e}"
        );
    }

    /// wrk 4.1.0's output for a script with a syntax error (recorded: `wrk -t1 -c2 -d1s -s
    /// /tmp/bad2.lua http://127.0.0.1:18777/`, exit status 0): the error line, then a run with
    /// the default request.
    #[test]
    fn a_script_wrk_could_not_load_is_found_in_its_output() {
        let raw = "/tmp/bad2.lua: /tmp/bad2.lua:2: <name> or '...' expected near 'return'\n\
                   Running 1s test @ http://127.0.0.1:18777/\n  1 threads and 2 connections\n\
                   361 requests in 1.01s, 4.09MB read\nRequests/sec:    358.32\n";
        assert_eq!(
            script_error(raw, Path::new("/tmp/bad2.lua")).as_deref(),
            Some("/tmp/bad2.lua: /tmp/bad2.lua:2: <name> or '...' expected near 'return'")
        );
        assert_eq!(script_error(raw, Path::new("/tmp/other.lua")), None);
        let clean = raw.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(script_error(&clean, Path::new("/tmp/bad2.lua")), None);
    }

    #[test]
    fn builds_wrk_args_with_latency_and_script() {
        let o = LoadOptions {
            connections: 10,
            threads: 2,
            timeout: Some(3),
            headers: vec!["X-A: b".into()],
            ..Default::default()
        };
        let a = wrk_args(&o, "http://127.0.0.1:1/x", 5.0, Some(Path::new("/d/s.lua")));
        assert_eq!(
            a.join(" "),
            "-c 10 -t 2 -d 5s --latency --timeout 3s -H X-A: b -s /d/s.lua http://127.0.0.1:1/x"
        );
        assert_eq!(o.url("http://h:1/"), "http://h:1/");
        let o2 = LoadOptions {
            path: "s1r1".into(),
            ..Default::default()
        };
        assert_eq!(o2.url("http://h:1"), "http://h:1/s1r1");
    }
}
