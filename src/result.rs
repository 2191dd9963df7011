//! The result records perflab writes and reads back: one per run, around the parsed load result
//! (which the load role produces, [`crate::role::load::result`], re-exported here).
//!
//! The JSON shape is documented in `docs/results.md` and `docs/result.schema.json`; a test checks
//! real output against that schema. Latency is always in milliseconds. A percentile is `null`
//! when the load generator did not print it.

use serde::{Deserialize, Serialize};

pub use crate::role::load::result::{ErrorCounts, LatencyMs, LoadResult, ThreadStats};

/// CPU seconds used during a run's load window, per role and by the rest of the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Wall-clock length of the window, seconds.
    pub window_s: f64,
    /// CPUs of the gateway host.
    pub cores: usize,
    /// The gateway's process group(s); `null` for baseline runs (no gateway).
    pub gateway_s: Option<f64>,
    /// The upstream's process group.
    pub upstream_s: f64,
    /// The load generator.
    pub load_s: f64,
    /// Everything else busy on the machine during the window.
    pub background_s: f64,
    /// `background_s` as a share of the machine's capacity in the window, in percent.
    pub background_pct: f64,
}

/// Why a run should not be trusted blindly. Flagged runs are kept and shown, and excluded from
/// verdicts unless the user asks otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFlags {
    /// Background CPU was above the threshold during the window.
    pub noisy: bool,
    /// The run saw socket errors or non-2xx/3xx responses.
    pub errors: bool,
    /// The load generator used nearly all of its CPUs: the gateway may not have been the bottleneck.
    pub load_saturated: bool,
    /// A profiler was attached (its throughput is not mixed into unprofiled statistics).
    pub profiled: bool,
    /// The gateway (its main process or a process of its group) died during the run: the run
    /// is kept with its error log, and always left out of the statistics.
    #[serde(default)]
    pub gateway_died: bool,
    /// Open-loop load sent less than 99% of the asked rate: the generator (its CPU or its
    /// connections), not the gateway, set the pace.
    #[serde(default)]
    pub generator_limited: bool,
}

impl RunFlags {
    /// True when any flag is raised.
    pub fn any(&self) -> bool {
        self.noisy
            || self.errors
            || self.load_saturated
            || self.profiled
            || self.gateway_died
            || self.generator_limited
    }
    /// The raised flags as words.
    pub fn words(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.noisy {
            v.push("noisy");
        }
        if self.errors {
            v.push("errors");
        }
        if self.load_saturated {
            v.push("load-saturated");
        }
        if self.profiled {
            v.push("profiled");
        }
        if self.gateway_died {
            v.push("gateway-died");
        }
        if self.generator_limited {
            v.push("generator-limited");
        }
        v
    }
}

/// The schema identifier written into every run record.
pub const RUN_SCHEMA: &str = "perflab.run/1";

/// Everything recorded about one run (`result.json` in the run's folder).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Always [`RUN_SCHEMA`].
    pub schema: String,
    /// Suite name.
    pub suite: String,
    /// Case name.
    pub case: String,
    /// Gateway kind (`nginx`, `haproxy`, `baseline`, `kong`, `command`).
    pub gateway: String,
    /// Version label as the user wrote it (`current`, `git:abc`, `3.9.1`).
    pub version: String,
    /// What the version resolved to (program version, commit id, image id).
    pub version_detail: String,
    /// 1-based repeat number within this case and version.
    pub repeat: u32,
    /// Position in the whole invocation's run order (interleaving is visible here).
    pub sequence: u32,
    /// Start time, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// The parsed load result; its fields appear at the top level of the JSON.
    #[serde(flatten)]
    pub load: LoadResult,
    /// Requests per gateway CPU-second (`null` without a gateway or CPU data).
    pub rps_per_gateway_cpu_s: Option<f64>,
    /// CPU accounting for the window.
    pub cpu: CpuUsage,
    /// Trust flags.
    pub flags: RunFlags,
    /// The exact load command.
    pub load_command: String,
    /// Driver name.
    pub driver: String,
    /// Profiler details when one was attached (mode, frequency, files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<serde_json::Value>,
    /// Where this run sat in a multiplexed comparison (absent for ordinary runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<BurstPlace>,
    /// Resident memory of the measured gateway's process group at the end of the load, bytes
    /// (sum over its processes; absent when unreadable or for baseline runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_rss_bytes: Option<u64>,
    /// What went wrong in the run, in words (a gateway that died, CPU figures left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Actions during load: what each did, the traffic around it and away from all of them,
    /// and the load per 100 ms (absent for runs without `[[case.during]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<crate::during::DuringSummary>,
}

/// The place of one burst in a multiplexed comparison's design.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurstPlace {
    /// Segment (the instances were restarted between segments), from 0.
    pub segment: u32,
    /// Block, from 0, unique within the case.
    pub block: u32,
    /// Position of the burst in its block, from 0.
    pub position: u32,
    /// The gateway instance the burst loaded.
    pub instance: String,
}
