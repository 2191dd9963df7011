//! What one load-generator run measured: the parsed result every load role returns (wrk's
//! summary or the open-loop generator's report), part of each run record.
//!
//! The JSON shape is documented in `docs/results.md` and `docs/result.schema.json`. Latency is
//! always in milliseconds. A percentile is `null` when the load generator did not print it.

use serde::{Deserialize, Serialize};

/// Latency figures of one run, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    /// Mean latency.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Maximum.
    pub max: f64,
    /// 50th percentile, when printed.
    pub p50: Option<f64>,
    /// 75th percentile, when printed.
    pub p75: Option<f64>,
    /// 90th percentile, when printed.
    pub p90: Option<f64>,
    /// 99th percentile, when printed.
    pub p99: Option<f64>,
    /// Share of requests within one standard deviation of the mean, in percent (`null` for `-nan%`).
    pub within_stdev_pct: Option<f64>,
}

/// Error counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Connect errors.
    pub connect: u64,
    /// Read errors.
    pub read: u64,
    /// Write errors.
    pub write: u64,
    /// Timeouts.
    pub timeout: u64,
    /// Responses with a status other than 2xx or 3xx.
    pub non_2xx_3xx: u64,
}

impl ErrorCounts {
    /// Sum of all counters.
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.non_2xx_3xx
    }
}

/// wrk's per-thread statistics line (`Req/Sec avg stdev max +/- stdev`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadStats {
    /// Average requests/second per thread.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Maximum.
    pub max: f64,
    /// Share within one standard deviation, percent.
    pub within_stdev_pct: Option<f64>,
}

/// What one load-generator run measured (the output of `perflab import wrk`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// Requests per second.
    pub rps: f64,
    /// Requests completed.
    pub requests: u64,
    /// Length of the run in seconds, as the generator measured it.
    pub duration_s: f64,
    /// Bytes read per second.
    pub transfer_bytes_per_s: f64,
    /// Total bytes read, when printed.
    pub transfer_bytes: Option<f64>,
    /// Latency figures.
    pub latency_ms: LatencyMs,
    /// Error counters.
    pub errors: ErrorCounts,
    /// Per-thread request rate statistics.
    pub thread_rps: Option<ThreadStats>,
    /// Threads and connections, as printed in the header.
    pub threads: Option<u32>,
    /// Connections, as printed in the header.
    pub connections: Option<u32>,
    /// The target URL, as printed in the header.
    pub url: Option<String>,
    /// Text a Lua `done()` hook printed after wrk's own summary.
    pub script_output: Option<String>,
    /// Open-loop load only: the generator, the rate asked and achieved, the per-second series
    /// (`null` for wrk runs).
    #[serde(default)]
    pub open_loop: Option<super::open::OpenLoopInfo>,
}
