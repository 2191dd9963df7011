//! `perflab calibrate`: an A/A pilot that measures this machine before any comparison.
//!
//! # Why
//!
//! How small a change a two-minute compare can see depends on the machine: the block SD of the
//! log ratio, and how much a switch between bursts costs. Kalibera & Jones (ISMM 2013) measure
//! the variance at each level first and plan the repetitions from it; this does the same. It
//! runs the baseline against itself, multiplexed, for several burst lengths, restarting the
//! instances for every block, and for every metric computes the SD σ(b) of a block's log ratio
//! (instance effects included) and the wall time w(b) of a block with its restart. The variance
//! of the final estimate in a fixed budget is proportional to σ(b)² · w(b), so the burst length
//! and the metric that minimise it are chosen; the result is stored per machine (CPU, cores, kernel,
//! host name, driver), and `compare` uses it for its defaults and prints, before it starts, the
//! smallest effect it can detect in its budget.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::stats::blocks::{minimum_detectable_effect, planned_se};
use crate::stats::distributions::t_quantile;
use crate::{Error, Result};

/// Schema identifier of a stored calibration.
pub const CALIBRATION_SCHEMA: &str = "perflab.calibration/1";

/// What one burst length measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurstCalibration {
    /// Burst length, seconds.
    pub burst_s: f64,
    /// Complete blocks measured.
    pub blocks: usize,
    /// Mean seconds between bursts.
    pub switch_s: f64,
    /// Mean wall seconds per block, its instances' restart and warm-up included.
    pub block_wall_s: f64,
    /// SD of one block's log ratio per metric, percent, with the instances restarted for every
    /// block (so instance-to-instance differences are in it).
    pub block_sd_pct: BTreeMap<String, f64>,
    /// The A/A results folder.
    pub results: PathBuf,
}

/// A stored calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// [`CALIBRATION_SCHEMA`].
    pub schema: String,
    /// Hash of the machine description (the file name).
    pub machine_key: String,
    /// The machine description that was hashed.
    pub machine: String,
    /// When, seconds since the epoch.
    pub created_unix_s: f64,
    /// The case used.
    pub case: String,
    /// The version run against itself.
    pub version: String,
    /// Every burst length tried.
    pub bursts: Vec<BurstCalibration>,
    /// The chosen burst length.
    pub burst_s: f64,
    /// The chosen primary metric.
    pub primary_metric: String,
    /// Block SD of the chosen metric at the chosen burst, percent.
    pub block_sd_pct: f64,
    /// Wall seconds per block at the chosen burst (two versions).
    pub block_wall_s: f64,
}

/// A description of this machine and driver, and its hash.
pub fn machine_key(
    driver: crate::driver::DriverKind,
    driver_options: &crate::driver::DriverOptions,
) -> (String, String) {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let provider = driver_options.get("provider").cloned().unwrap_or_default();
    let description = format!(
        "cpu={cpu}; cores={cores}; kernel={}; host={}; driver={driver}; provider={provider}",
        read("/proc/sys/kernel/osrelease").trim(),
        read("/proc/sys/kernel/hostname").trim()
    );
    let hash = crate::util::hash::sha256_hex(description.as_bytes());
    (hash[..16].to_string(), description)
}

/// Where calibrations live: `<cache dir>/calibration/<key>.json`.
pub fn path_for(key: &str) -> PathBuf {
    crate::install::cache_dir()
        .join("calibration")
        .join(format!("{key}.json"))
}

/// The stored calibration of this machine and driver, if any.
pub fn load(
    driver: crate::driver::DriverKind,
    options: &crate::driver::DriverOptions,
) -> Option<Calibration> {
    let (key, _) = machine_key(driver, options);
    let data = std::fs::read(path_for(&key)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Stores a calibration under its machine key; returns the path.
pub fn save(c: &Calibration) -> Result<PathBuf> {
    let p = path_for(&c.machine_key);
    let json = serde_json::to_vec_pretty(c).map_err(|e| Error::Lab(e.to_string()))?;
    crate::util::fs::atomic_write(&p, &json).map_err(|e| Error::io(&p, e))?;
    Ok(p)
}

/// Picks the burst length and metric with the smallest σ² · (wall time of a block): the variance
/// of the estimate per second of budget. Returns `(index into bursts, metric)`.
pub fn choose(bursts: &[BurstCalibration]) -> Option<(usize, String)> {
    let mut best: Option<(f64, usize, String)> = None;
    for (i, b) in bursts.iter().enumerate() {
        for (metric, sd) in &b.block_sd_pct {
            if !sd.is_finite() || *sd <= 0.0 || b.blocks < 3 {
                continue;
            }
            let cost = sd * sd * b.block_wall_s.max(b.burst_s);
            if best.as_ref().is_none_or(|(c, _, _)| cost < *c) {
                best = Some((cost, i, metric.clone()));
            }
        }
    }
    best.map(|(_, i, m)| (i, m))
}

/// The plan a budget allows with a calibration: `(blocks, smallest detectable slowdown as a
/// fraction)` for `versions` versions at 90% power and α = 5% (fixed-sample figure; looks cost
/// a little more).
pub fn planned_mde(block_sd_pct: f64, block_wall_s: f64, budget_s: f64) -> (usize, f64) {
    let blocks = ((budget_s * 0.9) / block_wall_s.max(0.1)).floor().max(2.0) as usize;
    let se = planned_se(block_sd_pct / 100.0, blocks);
    let crit = t_quantile(0.975, (blocks - 1) as f64);
    (
        blocks,
        minimum_detectable_effect(se, crit, crate::stats::multiplexed::MDE_POWER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(burst: f64, switch: f64, sd: &[(&str, f64)]) -> BurstCalibration {
        BurstCalibration {
            burst_s: burst,
            blocks: 8,
            switch_s: switch,
            block_wall_s: 4.0 * (burst + switch),
            block_sd_pct: sd.iter().map(|(m, s)| (m.to_string(), *s)).collect(),
            results: PathBuf::new(),
        }
    }

    #[test]
    fn the_cheapest_variance_per_second_wins() {
        // Block walls 4.4, 8.4, 12.4 s: 1 s: σ 5% → 25·4.4 = 110; 2 s: σ 2.3% → 5.29·8.4 = 44.4;
        // 3 s: σ 2% → 4·12.4 = 49.6.
        let b = [
            cal(1.0, 0.1, &[("rps", 5.0), ("latency_p50_ms", 6.0)]),
            cal(2.0, 0.1, &[("rps", 2.3), ("latency_p50_ms", 2.5)]),
            cal(3.0, 0.1, &[("rps", 2.0), ("latency_p50_ms", 3.0)]),
        ];
        assert_eq!(choose(&b), Some((1, "rps".to_string())));
        assert_eq!(choose(&[]), None);
        let (blocks, mde) = planned_mde(2.3, 8.4, 120.0);
        assert_eq!(blocks, 12);
        assert!(mde > 0.015 && mde < 0.03, "{mde}");
        let (k1, d1) = machine_key(crate::driver::DriverKind::Local, &Default::default());
        let (k2, _) = machine_key(crate::driver::DriverKind::Docker, &Default::default());
        assert_ne!(k1, k2);
        assert!(d1.contains("driver=local"));
    }
}
