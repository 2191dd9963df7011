//! The open-loop load role: how the load host runs `perflab open-load` and how its report
//! becomes a run's result.
//!
//! The generator is perflab itself (a hidden subcommand, [`super::open_engine`]), so the load
//! host needs the perflab binary: the local host uses the running one; a container or remote
//! machine gets a copy in the lab's directory the first time (the same Linux build; hosts
//! without the binary fail with a message that says so). Chosen over `oha` by measurement
//! (bench/openloop.sh): no extra program to install, and the full histogram is ours to keep.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::histogram;
use super::open_engine::{OpenLoadReport, SecondStats};
use super::result::LoadResult;
use super::wrk::LoadOptions;
use crate::host::{Cmd, Host};
use crate::{Error, Result};

/// The hidden subcommand's name.
pub const SUBCOMMAND: &str = "open-load";

/// A run is flagged `generator_limited` when it sent less than this share of the asked rate.
pub const SHORT_RATE_SHARE: f64 = 0.99;

/// Default per-request timeout of open-loop load, seconds (wrk's default too).
pub const DEFAULT_TIMEOUT_S: u32 = 2;

/// What an open-loop run adds to its result (`open_loop` in `result.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenLoopInfo {
    /// The generator (`perflab-open/1`).
    pub generator: String,
    /// Requests per second asked for.
    pub rate_asked: f64,
    /// Requests per second sent.
    pub rate_achieved: f64,
    /// Requests sent.
    pub sent: u64,
    /// Worst lateness of a send behind its intended time, milliseconds.
    pub max_send_lag_ms: f64,
    /// The generator sent less than 99% of the asked rate: its CPU or its connections, not
    /// the gateway's answers, set the pace (raise `connections`, add load hosts, lower `rate`).
    pub generator_limited: bool,
    /// The per-second series.
    pub series: Vec<SecondStats>,
    /// Load hosts that ran a share of the rate (1 unless the driver gave several).
    #[serde(default = "one")]
    pub load_hosts: u32,
    /// With several load hosts: each one's share, in the driver's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<LoadHostShare>,
}

/// What one of several load hosts did in an open-loop run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadHostShare {
    /// The host's name.
    pub host: String,
    /// Its share of the rate, requests per second.
    pub rate_asked: f64,
    /// What it sent, requests per second.
    pub rate_achieved: f64,
    /// It sent less than 99% of its share.
    pub generator_limited: bool,
    /// CPU seconds its generator used.
    pub cpu_s: f64,
    /// Its generator used nearly all of the CPUs it had (the `load_saturated` flag of this host).
    pub load_saturated: bool,
}

fn one() -> u32 {
    1
}

/// The perflab program on `host`: the running binary on a host that shares this machine's
/// files, else a copy uploaded into the lab's directory (once).
pub fn perflab_program(host: &dyn Host) -> Result<String> {
    let exe = std::env::var_os("PERFLAB_BIN")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("perflab"))
        });
    let Some(exe) = exe else {
        return host.which("perflab").ok_or_else(|| Error::MissingTool {
            program: "perflab".into(),
            where_: format!(" on host {}", host.name()),
            hint: "open-loop load runs the perflab binary on the load host: put it on PATH, or set PERFLAB_BIN to its path".into(),
        });
    };
    if host.shares_local_files() {
        return Ok(exe.display().to_string());
    }
    let bin_dir = host.lab_dir().join("perflab-bin");
    let remote = bin_dir.join("perflab");
    let present = host
        .run(
            &Cmd::new("test").arg("-x").arg(remote.display().to_string()),
            std::time::Duration::from_secs(10),
        )
        .map(|o| o.success())
        .unwrap_or(false);
    if !present {
        // Sent as a one-file tree: tar keeps the executable bit (lab images have no chmod).
        let staging = tempfile::tempdir().map_err(|e| Error::io(Path::new("TMPDIR"), e))?;
        let copy = staging.path().join("perflab");
        std::fs::copy(&exe, &copy).map_err(|e| Error::io(&exe, e))?;
        host.upload_tree(staging.path(), &bin_dir)?;
    }
    Ok(remote.display().to_string())
}

/// The options of load host `i` of `n` for open-loop load: an equal share of the rate and of
/// the connections (at least one each, and no more threads than connections).
pub fn share(opts: &LoadOptions, i: u32, n: u32) -> LoadOptions {
    let n = n.max(1);
    let conns = opts.connections / n + u32::from(i < opts.connections % n);
    let conns = conns.max(1);
    LoadOptions {
        rate: opts.rate.map(|r| r / n as f64),
        connections: conns,
        threads: opts.threads.min(conns),
        ..opts.clone()
    }
}

/// `perflab open-load`'s arguments for a run of `duration_s` seconds at `rate`.
pub fn open_args(opts: &LoadOptions, url: &str, rate: f64, duration_s: f64) -> Vec<String> {
    let mut a = vec![
        SUBCOMMAND.to_string(),
        "--rate".into(),
        format!("{rate}"),
        "--connections".into(),
        opts.connections.to_string(),
        "--threads".into(),
        opts.threads.to_string(),
        "--duration".into(),
        format!("{duration_s}"),
        "--timeout".into(),
        opts.timeout.unwrap_or(DEFAULT_TIMEOUT_S).to_string(),
    ];
    for h in &opts.headers {
        a.push("-H".into());
        a.push(h.clone());
    }
    a.push(url.to_string());
    a
}

/// Reads the generator's report out of its output (its last JSON line; anything else is
/// diagnostics).
pub fn parse_report(raw: &str) -> Result<OpenLoadReport> {
    let line = raw
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| {
            Error::Load(format!(
                "the open-loop generator printed no report:\n{}",
                raw.trim()
            ))
        })?;
    serde_json::from_str(line).map_err(|e| {
        Error::Load(format!(
            "the open-loop generator's report is unreadable: {e}"
        ))
    })
}

/// A run's result and its histogram's serialised bytes, from one or more load hosts' reports
/// (their histograms merged, counts and rates added).
pub fn result_from_reports(reports: &[OpenLoadReport]) -> Result<(LoadResult, Vec<u8>)> {
    let first = reports
        .first()
        .ok_or_else(|| Error::Load("no open-loop report".into()))?;
    let hists = reports
        .iter()
        .map(|r| histogram::decode_base64(&r.histogram).map_err(Error::Load))
        .collect::<Result<Vec<_>>>()?;
    let merged = histogram::merge(&hists);
    let duration_s = first.duration_s;
    let mut errors = super::result::ErrorCounts::default();
    let mut series: Vec<SecondStats> = Vec::new();
    let (mut sent, mut completed, mut body_bytes) = (0, 0, 0);
    let (mut asked, mut lag) = (0.0, 0.0f64);
    for r in reports {
        sent += r.sent;
        completed += r.completed;
        body_bytes += r.body_bytes;
        asked += r.rate_asked;
        lag = lag.max(r.max_send_lag_ms);
        errors.connect += r.errors.connect;
        errors.read += r.errors.read;
        errors.write += r.errors.write;
        errors.timeout += r.errors.timeout;
        errors.non_2xx_3xx += r.errors.non_2xx_3xx;
        if series.len() < r.series.len() {
            series.resize(r.series.len(), SecondStats::default());
        }
        for (t, s) in series.iter_mut().zip(&r.series) {
            t.requests += s.requests;
            t.errors += s.errors;
            t.max_ms = t.max_ms.max(s.max_ms);
        }
    }
    let achieved = sent as f64 / duration_s.max(1e-9);
    let limited = reports
        .iter()
        .any(|r| r.rate_achieved() < SHORT_RATE_SHARE * r.rate_asked);
    let result = LoadResult {
        rps: completed as f64 / duration_s.max(1e-9),
        requests: completed,
        duration_s,
        transfer_bytes_per_s: body_bytes as f64 / duration_s.max(1e-9),
        transfer_bytes: Some(body_bytes as f64),
        latency_ms: histogram::latency_ms(&merged),
        errors,
        thread_rps: None,
        threads: Some(first.threads),
        connections: Some(reports.iter().map(|r| r.connections).sum()),
        url: Some(first.url.clone()),
        script_output: None,
        open_loop: Some(OpenLoopInfo {
            generator: first.generator.clone(),
            rate_asked: asked,
            rate_achieved: achieved,
            sent,
            max_send_lag_ms: lag,
            generator_limited: limited,
            series,
            load_hosts: reports.len() as u32,
            hosts: Vec::new(),
        }),
    };
    Ok((result, histogram::encode(&merged)))
}

/// The run folder's file name for the generator's raw output (its JSON report).
pub const REPORT_FILE: &str = "open-load.json";

/// The run folder's file name for the serialised latency histogram.
pub const HISTOGRAM_FILE: &str = "latency.hdr";

/// Reads a run folder's histogram, if it has one.
pub fn read_run_histogram(run_dir: &Path) -> Option<histogram::LatencyHistogram> {
    let bytes = std::fs::read(run_dir.join(HISTOGRAM_FILE)).ok()?;
    histogram::decode(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_carry_rate_connections_and_headers() {
        let o = LoadOptions {
            connections: 8,
            threads: 2,
            headers: vec!["X-A: b".into()],
            ..Default::default()
        };
        assert_eq!(
            open_args(&o, "http://h:1/", 500.0, 3.0).join(" "),
            "open-load --rate 500 --connections 8 --threads 2 --duration 3 --timeout 2 -H X-A: b http://h:1/"
        );
    }

    #[test]
    fn shares_split_rate_and_connections() {
        let o = LoadOptions {
            kind: super::super::wrk::LoadKind::Open,
            rate: Some(1000.0),
            connections: 5,
            threads: 3,
            ..Default::default()
        };
        let parts: Vec<LoadOptions> = (0..2).map(|i| share(&o, i, 2)).collect();
        assert_eq!(parts[0].rate, Some(500.0));
        assert_eq!((parts[0].connections, parts[1].connections), (3, 2));
        assert_eq!((parts[0].threads, parts[1].threads), (3, 2));
        parts.iter().for_each(|p| p.validate().unwrap());
    }

    #[test]
    fn a_missing_report_is_an_error_that_shows_the_output() {
        let e = parse_report("perflab: error: bad URL")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("printed no report") && e.contains("bad URL"),
            "{e}"
        );
    }
}
