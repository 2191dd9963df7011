//! Statistics: combining repeated runs, A/B comparisons with honest intervals, and verdicts.
//!
//! # Why
//!
//! Kong's performance framework averaged three runs with a hard-coded divisor and reported no
//! spread at all, so a 3% "regression" could not be told apart from a noisy neighbour. This
//! module
//!
//! * summarises any number of runs without a fixed divisor ([`summarize`], [`combine`]);
//! * judges the **multiplexed design** that `compare` uses by default — every version up at
//!   once, short bursts in balanced blocks, instances restarted per segment — on blocks nested in
//!   segments ([`blocks`]), with a group-sequential stopping rule ([`sequential`],
//!   [`multiplexed`]); one primary metric gets the verdict, the others are described;
//! * still compares the older **restart-per-run design** (`--design restart`) on paired ratios
//!   `B_i / A_i` with a Student-t interval of the mean log ratio ([`compare`]) — a percentile
//!   bootstrap at 3–8 pairs covers 75–89% instead of 95% (`docs/statistics.md`).
//!
//! There is no built-in "noise band": a band equal to the effect makes the effect undetectable
//! by construction. A practical threshold is the user's choice, through
//! `--fail-on-regression PCT` ([`regression_exceeds`]).
//!
//! Everything here is pure: no I/O, no clock, no global state. `docs/statistics.md` explains the
//! methods and their limits in prose; the `simulation` tests check the stated coverage and
//! error rates on data with known properties.

pub mod blocks;
pub mod distributions;
pub mod multiplexed;
pub mod sequential;
#[cfg(test)]
mod simulation;

use serde::{Deserialize, Serialize};

use crate::result::RunRecord;

/// Default noise band: none. A change is judged by its interval alone; a practical threshold
/// belongs in `--fail-on-regression`.
pub const DEFAULT_NOISE_BAND: f64 = 0.0;
/// Default seed (recorded in every [`Comparison`]).
pub const DEFAULT_SEED: u64 = 0x5EED_5EED_5EED_5EED;
/// Confidence level of every interval this module computes.
pub const CONFIDENCE: f64 = 0.95;
/// The error rate α of every verdict: 1 − [`CONFIDENCE`].
pub const ALPHA: f64 = 1.0 - CONFIDENCE;

// ---------------------------------------------------------------------------------------------
// Summaries
// ---------------------------------------------------------------------------------------------

/// Descriptive statistics of a sample, computed for whatever number of values there is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean (sum divided by `n`).
    pub mean: f64,
    /// Median (mean of the two middle values when `n` is even).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sample standard deviation (divisor `n - 1`); 0 when `n` is 1.
    pub stdev: f64,
    /// Coefficient of variation, `stdev / mean`; 0 when `n` is 1 or the mean is 0.
    pub cv: f64,
}

/// Summarises `values`.
///
/// Returns `None` for an empty slice or when any value is not finite (NaN or infinite), because
/// such a summary would silently carry the NaN into every later figure.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let stdev = if n > 1 {
        let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        (ss / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let cv = if mean != 0.0 { stdev / mean } else { 0.0 };
    Some(Summary {
        n,
        mean,
        median: quantile_sorted(&sorted, 0.5),
        min: sorted[0],
        max: sorted[n - 1],
        stdev,
        cv,
    })
}

/// The `q`-quantile (0 ≤ q ≤ 1) of an ascending, non-empty slice, interpolating linearly between
/// the two nearest order statistics (Hyndman & Fan's definition 7, the default of R and NumPy).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

// ---------------------------------------------------------------------------------------------
// Combining the runs of one case and version
// ---------------------------------------------------------------------------------------------

/// The combined results of the repeated runs of one case and version (Kong's
/// `combine_results`, without its fixed divisor).
///
/// Latency percentiles are kept as the **distribution of per-run percentiles**: `latency_p99`
/// summarises the p99 each run reported. Its mean is *not* the 99th percentile of all requests
/// (percentiles do not average), so reports label it "mean of per-run p99", never "p99".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombinedRuns {
    /// Case name (shared by all runs).
    pub case: String,
    /// Version label (shared by all runs).
    pub version: String,
    /// Gateway kind of the first run.
    pub gateway: String,
    /// Number of runs combined.
    pub runs: usize,
    /// Requests per second across runs.
    pub rps: Summary,
    /// Requests per gateway CPU-second across the runs that have it; `None` when none has.
    pub rps_per_gateway_cpu_s: Option<Summary>,
    /// Per-run mean latency (ms) across runs.
    pub latency_mean_ms: Summary,
    /// Per-run maximum latency (ms) across runs.
    pub latency_max_ms: Summary,
    /// Per-run p50 latency (ms) across the runs that reported it.
    pub latency_p50_ms: Option<Summary>,
    /// Per-run p75 latency (ms) across the runs that reported it.
    pub latency_p75_ms: Option<Summary>,
    /// Per-run p90 latency (ms) across the runs that reported it.
    pub latency_p90_ms: Option<Summary>,
    /// Per-run p99 latency (ms) across the runs that reported it.
    pub latency_p99_ms: Option<Summary>,
    /// Mean latency of all requests: `Σ mean_i · requests_i / Σ requests_i` (ms); `None` when no
    /// run completed a request. Unlike percentiles, means of runs *can* be merged exactly this way.
    pub weighted_latency_mean_ms: Option<f64>,
    /// Largest latency any run saw (ms): the maximum of the per-run maxima.
    pub max_latency_ms: f64,
    /// Requests completed by all runs.
    pub total_requests: u64,
    /// Errors of all runs (socket errors and non-2xx/3xx responses).
    pub total_errors: u64,
    /// Runs with any [`crate::result::RunFlags`] flag raised (they are included in the figures;
    /// filter before calling [`combine`] to leave them out).
    pub flagged_runs: usize,
    /// Percentiles of all requests, from the runs' merged latency histograms (open-loop runs
    /// keep one); `None` unless every run has one. Unlike the per-run percentiles above, these
    /// are true percentiles of the combination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_latency_ms: Option<crate::role::load::histogram::MergedLatency>,
}

/// Combines the runs of one case and version.
///
/// All runs passed are combined, flagged or not; callers that want to exclude flagged runs filter
/// first. Returns `None` when `runs` is empty, when the runs do not share one case and version
/// (mixing them would be a bug upstream), or when a required figure is not finite.
pub fn combine(runs: &[&RunRecord]) -> Option<CombinedRuns> {
    let first = runs.first()?;
    if runs
        .iter()
        .any(|r| r.case != first.case || r.version != first.version)
    {
        return None;
    }
    let collect = |f: &dyn Fn(&RunRecord) -> f64| runs.iter().map(|r| f(r)).collect::<Vec<_>>();
    let collect_opt = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
        summarize(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let total_requests: u64 = runs.iter().map(|r| r.load.requests).sum();
    let weighted_latency_mean_ms = (total_requests > 0).then(|| {
        runs.iter()
            .map(|r| r.load.latency_ms.mean * r.load.requests as f64)
            .sum::<f64>()
            / total_requests as f64
    });
    let latency_max_ms = summarize(&collect(&|r| r.load.latency_ms.max))?;
    Some(CombinedRuns {
        case: first.case.clone(),
        version: first.version.clone(),
        gateway: first.gateway.clone(),
        runs: runs.len(),
        rps: summarize(&collect(&|r| r.load.rps))?,
        rps_per_gateway_cpu_s: collect_opt(&|r| r.rps_per_gateway_cpu_s),
        latency_mean_ms: summarize(&collect(&|r| r.load.latency_ms.mean))?,
        max_latency_ms: latency_max_ms.max,
        latency_max_ms,
        latency_p50_ms: collect_opt(&|r| r.load.latency_ms.p50),
        latency_p75_ms: collect_opt(&|r| r.load.latency_ms.p75),
        latency_p90_ms: collect_opt(&|r| r.load.latency_ms.p90),
        latency_p99_ms: collect_opt(&|r| r.load.latency_ms.p99),
        weighted_latency_mean_ms,
        total_requests,
        total_errors: runs.iter().map(|r| r.load.errors.total()).sum(),
        flagged_runs: runs.iter().filter(|r| r.flags.any()).count(),
        merged_latency_ms: None,
    })
}

/// A human-readable, multi-line rendering of [`CombinedRuns`] for terminals and logs.
pub fn combine_text(c: &CombinedRuns) -> String {
    let mut out = format!(
        "{} / {} ({}): {} run{}",
        c.case,
        c.version,
        c.gateway,
        c.runs,
        if c.runs == 1 { "" } else { "s" }
    );
    if c.flagged_runs > 0 {
        out.push_str(&format!(", {} flagged", c.flagged_runs));
    }
    out.push('\n');
    let line = |label: &str, s: &Summary| {
        format!(
            "  {label:<28} mean {:>12.3}  median {:>12.3}  sd {:>10.3}  cv {:>6.2}%  [{:.3} … {:.3}]\n",
            s.mean,
            s.median,
            s.stdev,
            s.cv * 100.0,
            s.min,
            s.max
        )
    };
    out.push_str(&line("requests/s", &c.rps));
    if let Some(s) = &c.rps_per_gateway_cpu_s {
        out.push_str(&line("requests/gateway CPU-s", s));
    }
    out.push_str(&line("per-run mean latency ms", &c.latency_mean_ms));
    for (label, s) in [
        ("per-run p50 latency ms", &c.latency_p50_ms),
        ("per-run p75 latency ms", &c.latency_p75_ms),
        ("per-run p90 latency ms", &c.latency_p90_ms),
        ("per-run p99 latency ms", &c.latency_p99_ms),
    ] {
        if let Some(s) = s {
            out.push_str(&line(label, s));
        }
    }
    out.push_str(&line("per-run max latency ms", &c.latency_max_ms));
    match c.weighted_latency_mean_ms {
        Some(w) => out.push_str(&format!("  mean latency of all requests {w:.3} ms")),
        None => out.push_str("  mean latency of all requests: no requests"),
    }
    out.push_str(&format!(
        "; max latency {:.3} ms; {} requests; {} errors\n",
        c.max_latency_ms, c.total_requests, c.total_errors
    ));
    out.push_str(
        "  (percentile rows summarise the percentile each run reported; they are not percentiles of all requests)\n",
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Metrics of a run
// ---------------------------------------------------------------------------------------------

/// A metric perflab compares between versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// Name used in reports and exports (`rps`, `latency_p99_ms`, …).
    pub name: &'static str,
    /// True for throughput-like metrics, false for latencies.
    pub higher_is_better: bool,
    /// Unit shown beside values.
    pub unit: &'static str,
}

/// The metrics [`compare_runs`] compares, in report order.
pub const STANDARD_METRICS: &[MetricDef] = &[
    MetricDef {
        name: "rps",
        higher_is_better: true,
        unit: "req/s",
    },
    MetricDef {
        name: "rps_per_gateway_cpu_s",
        higher_is_better: true,
        unit: "req/CPU-s",
    },
    MetricDef {
        name: "latency_mean_ms",
        higher_is_better: false,
        unit: "ms",
    },
    MetricDef {
        name: "latency_p50_ms",
        higher_is_better: false,
        unit: "ms",
    },
    MetricDef {
        name: "latency_p90_ms",
        higher_is_better: false,
        unit: "ms",
    },
    MetricDef {
        name: "latency_p99_ms",
        higher_is_better: false,
        unit: "ms",
    },
    MetricDef {
        name: "gateway_rss_mb",
        higher_is_better: false,
        unit: "MiB",
    },
];

/// The unit of a metric name: the [`STANDARD_METRICS`] entry's, else `ms` for names ending in
/// `_ms`, else an empty string.
pub fn metric_unit(name: &str) -> &'static str {
    match STANDARD_METRICS.iter().find(|m| m.name == name) {
        Some(m) => m.unit,
        None if name.ends_with("_ms") => "ms",
        None => "",
    }
}

/// The value of a named metric in one run (`None` when the run lacks it or the name is unknown).
/// Names are those of [`STANDARD_METRICS`] plus `latency_p75_ms` and `latency_max_ms`.
pub fn metric_value(run: &RunRecord, name: &str) -> Option<f64> {
    let l = &run.load.latency_ms;
    match name {
        "rps" => Some(run.load.rps),
        "rps_per_gateway_cpu_s" => run.rps_per_gateway_cpu_s,
        "latency_mean_ms" => Some(l.mean),
        "latency_max_ms" => Some(l.max),
        "latency_p50_ms" => l.p50,
        "latency_p75_ms" => l.p75,
        "latency_p90_ms" => l.p90,
        "latency_p99_ms" => l.p99,
        "gateway_rss_mb" => run
            .gateway_rss_bytes
            .filter(|b| *b > 0)
            .map(|b| b as f64 / (1024.0 * 1024.0)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Paired comparison
// ---------------------------------------------------------------------------------------------

/// The outcome of a comparison, from the candidate's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The whole interval is beyond the noise band on the better side.
    #[serde(rename = "faster")]
    Faster,
    /// The whole interval is beyond the noise band on the worse side.
    #[serde(rename = "slower")]
    Slower,
    /// The interval touches or lies inside the noise band.
    #[serde(rename = "no change")]
    NoChange,
    /// Fewer than two pairs: no interval can be estimated, so no claim is made.
    #[serde(rename = "inconclusive")]
    Inconclusive,
    /// A secondary metric: an estimate with its interval, deliberately not a verdict (one
    /// primary metric per comparison keeps the false-verdict rate at α).
    #[serde(rename = "descriptive")]
    Descriptive,
}

impl Verdict {
    /// The verdict as written in reports: `faster`, `slower`, `no change`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::NoChange => "no change",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Descriptive => "descriptive",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A paired comparison of a candidate (B) against a baseline (A) for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Metric name.
    pub metric: String,
    /// True when a larger value is better (throughput), false when smaller is (latency).
    pub higher_is_better: bool,
    /// Summary of the baseline's paired values.
    pub baseline: Summary,
    /// Summary of the candidate's paired values.
    pub candidate: Summary,
    /// Geometric mean of the paired ratios `B_i / A_i`.
    pub ratio: f64,
    /// Lower end of the 95% interval of `ratio`.
    pub ci_low: f64,
    /// Upper end of the 95% interval of `ratio`.
    pub ci_high: f64,
    /// Number of pairs (restart design) or blocks (multiplexed design) used.
    pub n_pairs: usize,
    /// The noise band `b` (a fraction: 0.02 = ±2%; 0 unless the user set one).
    pub noise_band: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// `(ratio − 1) · 100`: the change of the metric itself in percent (positive = the candidate's
    /// value is larger, which is good for throughput and bad for latency).
    pub change_pct: f64,
    /// Bootstrap resamples drawn (0: intervals are Student-t since perflab.compare/2; kept so
    /// older results still read).
    #[serde(default)]
    pub resamples: usize,
    /// The seed of the design's order (multiplexed) or the report's seed.
    #[serde(default)]
    pub seed: u64,
    /// Remarks on the data, e.g. unpaired values that were left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// How the interval was made: `multiplexed-blocks` or `paired-t`.
    #[serde(default)]
    pub method: String,
    /// True for the metric that carries the verdict.
    #[serde(default)]
    pub primary: bool,
    /// The multiplexed design's figures (absent for the restart design).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design: Option<DesignFigures>,
    /// Smallest slowdown in percent this comparison could have detected with 90% power (the
    /// reading of `no change`: "smaller than this"); `None` with fewer than two units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mde_pct: Option<f64>,
}

/// What a multiplexed comparison measured and how (printed with every verdict).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DesignFigures {
    /// Complete blocks used.
    pub blocks: usize,
    /// Bursts in those blocks (both versions).
    pub bursts: usize,
    /// Segments (instance restarts + 1) the blocks came from.
    pub segments: usize,
    /// Seconds of load in the bursts used.
    pub measured_s: f64,
    /// Within-segment SD of a block's log ratio (the design's "pair σ"), in percent.
    pub block_sd_pct: f64,
    /// Between-segment SD component, in percent (0 when none is visible).
    pub segment_sd_pct: f64,
    /// Degrees of freedom of the interval.
    pub df: f64,
    /// Critical value used (t scale; the sequential boundary at the deciding look).
    pub critical: f64,
    /// The look that decided (or the last), 1-based.
    pub look: usize,
    /// Looks recorded.
    pub looks: usize,
    /// Burst length, seconds.
    pub burst_s: f64,
    /// Segment length, seconds.
    pub segment_s: f64,
    /// Seed of the order coin.
    pub order_seed: u64,
    /// Bursts left out, with the reason (`noisy: 3`, `errors: 1`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
    /// Mean background CPU of the bursts used, percent of the machine.
    pub background_cpu_pct: f64,
}

/// Compares candidate values `b` against baseline values `a` of one metric (restart design).
///
/// `a[i]` and `b[i]` must come from the same repeat (adjacent in an interleaved A B A B … order).
/// The statistic is the mean of the log ratios `ln(b_i / a_i)` (the geometric mean of the
/// ratios); its 95% interval is Student's t with n − 1 degrees of freedom (exact for normal log
/// ratios, unlike a percentile bootstrap at these n). A change is claimed when the interval lies
/// wholly outside `1 ± noise_band` (0 by default: outside 1). With unequal lengths the first
/// `min(a.len(), b.len())` pairs are used and a note says so; `seed` is only recorded.
///
/// Returns `None` when there is no pair, or when a paired value is not finite or not positive
/// (a ratio, and hence its logarithm, needs positive values).
pub fn compare(
    metric: &str,
    higher_is_better: bool,
    a: &[f64],
    b: &[f64],
    noise_band: f64,
    seed: u64,
) -> Option<Comparison> {
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let mut notes = Vec::new();
    if a.len() != b.len() {
        notes.push(format!(
            "unequal counts: paired the first {n} values; baseline had {}, candidate {}",
            a.len(),
            b.len()
        ));
    }
    let (a, b) = (&a[..n], &b[..n]);
    if a.iter().chain(b).any(|v| !v.is_finite() || *v <= 0.0) {
        return None;
    }
    let logs: Vec<f64> = a.iter().zip(b).map(|(x, y)| (y / x).ln()).collect();
    let mean = logs.iter().sum::<f64>() / n as f64;
    let ratio = mean.exp();
    let band = noise_band.max(0.0);
    let (ci_low, ci_high, verdict, mde_pct) = if n < 2 {
        notes.push("fewer than two pairs: no interval, no verdict".to_string());
        (ratio, ratio, Verdict::Inconclusive, None)
    } else {
        let sd =
            (logs.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / (n - 1) as f64).sqrt();
        let se = sd / (n as f64).sqrt();
        let crit = distributions::t_quantile(1.0 - ALPHA / 2.0, (n - 1) as f64);
        let (lo, hi) = ((mean - crit * se).exp(), (mean + crit * se).exp());
        let mde = blocks::minimum_detectable_effect(se, crit, multiplexed::MDE_POWER);
        (
            lo,
            hi,
            verdict_for(lo, hi, band, higher_is_better),
            Some(100.0 * mde),
        )
    };
    Some(Comparison {
        metric: metric.to_string(),
        higher_is_better,
        baseline: summarize(a)?,
        candidate: summarize(b)?,
        ratio,
        ci_low,
        ci_high,
        n_pairs: n,
        noise_band: band,
        verdict,
        change_pct: (ratio - 1.0) * 100.0,
        resamples: 0,
        seed,
        notes,
        method: "paired-t".into(),
        primary: true,
        design: None,
        mde_pct,
    })
}

/// A change only when the whole interval is beyond `1 ± band` (band 0: excludes 1).
fn verdict_for(lo: f64, hi: f64, band: f64, higher_is_better: bool) -> Verdict {
    let (up, down) = if higher_is_better {
        (Verdict::Faster, Verdict::Slower)
    } else {
        (Verdict::Slower, Verdict::Faster)
    };
    if lo > 1.0 + band {
        up
    } else if hi < 1.0 - band {
        down
    } else {
        Verdict::NoChange
    }
}

/// Compares every [`STANDARD_METRICS`] metric of two sets of runs of one case.
///
/// Runs are paired by their `repeat` number (repeat k of the baseline with repeat k of the
/// candidate, which were adjacent in the interleaved order); repeats present on one side only,
/// and pairs where either run lacks the metric, are left out and noted. Metrics with no usable
/// pair are omitted. Only `primary` gets a verdict; the other metrics are
/// [`Verdict::Descriptive`] (their intervals are still computed).
pub fn compare_runs(
    baseline: &[&RunRecord],
    candidate: &[&RunRecord],
    noise_band: f64,
    seed: u64,
    primary: &str,
) -> Vec<Comparison> {
    let mut pairs: Vec<(&RunRecord, &RunRecord)> = baseline
        .iter()
        .filter_map(|a| {
            candidate
                .iter()
                .find(|b| b.repeat == a.repeat)
                .map(|b| (*a, *b))
        })
        .collect();
    pairs.sort_by_key(|(a, _)| a.repeat);
    let unpaired = baseline.len() + candidate.len() - 2 * pairs.len();
    STANDARD_METRICS
        .iter()
        .filter_map(|m| {
            let (a, b): (Vec<f64>, Vec<f64>) = pairs
                .iter()
                .filter_map(|(x, y)| Some((metric_value(x, m.name)?, metric_value(y, m.name)?)))
                .unzip();
            let mut c = compare(m.name, m.higher_is_better, &a, &b, noise_band, seed)?;
            if m.name != primary {
                c.primary = false;
                if c.verdict != Verdict::Inconclusive {
                    c.verdict = Verdict::Descriptive;
                }
            }
            if unpaired > 0 {
                c.notes.push(format!(
                    "{unpaired} run(s) without a partner repeat left out"
                ));
            }
            if a.len() < pairs.len() {
                c.notes.push(format!(
                    "{} pair(s) without this metric left out",
                    pairs.len() - a.len()
                ));
            }
            Some(c)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Regression gate
// ---------------------------------------------------------------------------------------------

/// The `--fail-on-regression PCT` rule: true when the verdict is [`Verdict::Slower`] (the
/// interval excludes "no change" at the stated confidence) **and** the estimated slowdown is at
/// least `pct` percent (`5.0` = 5%): for throughput `ratio ≤ 1 − pct/100`, for latency
/// `ratio ≥ 1 + pct/100`. Descriptive and inconclusive comparisons never fail a build.
pub fn regression_exceeds(c: &Comparison, pct: f64) -> bool {
    if c.verdict != Verdict::Slower {
        return false;
    }
    let limit = pct / 100.0;
    if c.higher_is_better {
        c.ratio <= 1.0 - limit
    } else {
        c.ratio >= 1.0 + limit
    }
}

// ---------------------------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA
/// 2014): used to expand one seed into xoshiro's state.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256++ (Blackman & Vigna, "Scrambled linear pseudorandom number generators", 2018):
/// small, fast and statistically sound for resampling and for the design's order coin; not
/// cryptographic.
pub struct Xoshiro256pp([u64; 4]);

impl Xoshiro256pp {
    /// A generator from a 64-bit seed (expanded by SplitMix64).
    pub fn new(seed: u64) -> Self {
        let mut sm = SplitMix64(seed);
        Self([sm.next(), sm.next(), sm.next(), sm.next()])
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// A value in `0..n` by multiply-shift (Lemire); its bias, below n / 2^64, is negligible for
    /// the run counts of a benchmark.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A uniform value in [0, 1) (53 random bits).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal value (Box–Muller).
    pub fn gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{LatencyMs, LoadResult, RunFlags};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn summarize_hand_computed() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.n, 4);
        assert_eq!(s.mean, 2.5);
        assert_eq!(s.median, 2.5);
        assert_eq!((s.min, s.max), (1.0, 4.0));
        // sqrt(((1.5² + 0.5²) · 2) / 3) = sqrt(5/3)
        assert!(close(s.stdev, 1.290_994_448_735_805_6, 1e-12));
        assert!(close(s.cv, 1.290_994_448_735_805_6 / 2.5, 1e-12));

        let odd = summarize(&[9.0, 1.0, 5.0]).unwrap();
        assert_eq!(odd.median, 5.0);
        assert_eq!(odd.mean, 5.0);
        assert_eq!(odd.stdev, 4.0);
    }

    #[test]
    fn summarize_edge_cases() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[1.0, f64::NAN]), None);
        let one = summarize(&[7.0]).unwrap();
        assert_eq!(
            (one.n, one.mean, one.median, one.stdev, one.cv),
            (1, 7.0, 7.0, 0.0, 0.0)
        );
        let zero = summarize(&[-1.0, 1.0]).unwrap();
        assert_eq!(zero.mean, 0.0);
        assert_eq!(zero.cv, 0.0);
    }

    fn run(
        repeat: u32,
        rps: f64,
        requests: u64,
        mean: f64,
        max: f64,
        p99: Option<f64>,
    ) -> RunRecord {
        RunRecord {
            case: "simple".into(),
            version: "current".into(),
            gateway: "nginx".into(),
            repeat,
            load: LoadResult {
                rps,
                requests,
                latency_ms: LatencyMs {
                    mean,
                    max,
                    p99,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn combine_hand_computed() {
        let mut r1 = run(1, 1000.0, 100, 2.0, 10.0, Some(5.0));
        let r2 = run(2, 2000.0, 300, 1.0, 30.0, Some(3.0));
        let mut r3 = run(3, 3000.0, 600, 4.0, 20.0, None);
        r1.rps_per_gateway_cpu_s = Some(100.0);
        r3.flags = RunFlags {
            noisy: true,
            ..Default::default()
        };
        r3.load.errors.timeout = 2;
        r1.load.errors.non_2xx_3xx = 1;
        let c = combine(&[&r1, &r2, &r3]).unwrap();
        assert_eq!(c.runs, 3);
        assert_eq!(c.rps.mean, 2000.0);
        assert_eq!(c.rps.stdev, 1000.0);
        assert_eq!(c.rps_per_gateway_cpu_s.as_ref().unwrap().n, 1);
        // (2·100 + 1·300 + 4·600) / 1000 = 2.9, while the plain mean of means is 7/3.
        assert!(close(c.weighted_latency_mean_ms.unwrap(), 2.9, 1e-12));
        assert!(close(c.latency_mean_ms.mean, 7.0 / 3.0, 1e-12));
        assert_eq!(c.max_latency_ms, 30.0);
        assert_eq!(c.latency_max_ms.median, 20.0);
        let p99 = c.latency_p99_ms.as_ref().unwrap();
        assert_eq!((p99.n, p99.mean), (2, 4.0));
        assert_eq!(c.latency_p50_ms, None);
        assert_eq!(c.total_requests, 1000);
        assert_eq!(c.total_errors, 3);
        assert_eq!(c.flagged_runs, 1);

        let text = combine_text(&c);
        assert!(
            text.starts_with("simple / current (nginx): 3 runs, 1 flagged\n"),
            "{text}"
        );
        assert!(text.contains("per-run p99 latency ms"), "{text}");
        assert!(
            text.contains("mean latency of all requests 2.900 ms"),
            "{text}"
        );
        assert!(!text.contains("per-run p50"), "{text}");
    }

    #[test]
    fn combine_rejects_empty_and_mixed() {
        assert_eq!(combine(&[]), None);
        let a = run(1, 1.0, 1, 1.0, 1.0, None);
        let mut b = a.clone();
        b.version = "git:abc".into();
        assert_eq!(combine(&[&a, &b]), None);
        let none = run(1, 10.0, 0, 0.0, 0.0, None);
        assert_eq!(combine(&[&none]).unwrap().weighted_latency_mean_ms, None);
    }

    #[test]
    fn splitmix64_matches_reference_vector() {
        // Reference outputs of Vigna's splitmix64.c for seed 1234567.
        let mut sm = SplitMix64(1_234_567);
        let got: Vec<u64> = (0..3).map(|_| sm.next()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn identical_samples_are_no_change() {
        let a = [100.0, 97.0, 103.0, 99.5];
        let c = compare("rps", true, &a, &a, DEFAULT_NOISE_BAND, 1).unwrap();
        assert_eq!((c.ratio, c.ci_low, c.ci_high), (1.0, 1.0, 1.0));
        assert_eq!(c.verdict, Verdict::NoChange);
        assert_eq!(c.change_pct, 0.0);
        assert_eq!(c.n_pairs, 4);
        assert_eq!(c.method, "paired-t");
        assert!(c.notes.is_empty());
    }

    #[test]
    fn paired_t_interval_hand_computed() {
        // Log ratios ln 0.9 and ln 1.1: mean m, sd s, t(0.975, 1) = 12.706.
        let c = compare("rps", true, &[1.0, 1.0], &[0.9, 1.1], 0.0, 7).unwrap();
        let (l1, l2) = (0.9f64.ln(), 1.1f64.ln());
        let m = (l1 + l2) / 2.0;
        let sd = ((l1 - m).powi(2) + (l2 - m).powi(2)).sqrt();
        let half = 12.706_2 * sd / 2f64.sqrt();
        assert!(close(c.ratio, 0.99_f64.sqrt(), 1e-12));
        assert!(close(c.ci_low.ln(), m - half, 1e-3));
        assert!(close(c.ci_high.ln(), m + half, 1e-3));
        // Far wider than [0.9, 1.1], the range a percentile bootstrap would claim as 95%.
        assert!(c.ci_low < 0.5 && c.ci_high > 1.5);
        assert_eq!(c.verdict, Verdict::NoChange);
    }

    #[test]
    fn clear_twenty_percent_slowdown_is_slower() {
        let a = [100.0, 102.0, 98.0, 101.0, 99.0];
        let b = [80.0, 82.0, 78.5, 80.6, 79.4];
        let c = compare("rps", true, &a, &b, 0.0, DEFAULT_SEED).unwrap();
        assert_eq!(c.verdict, Verdict::Slower);
        assert!(close(c.ratio, 0.8, 0.005));
        assert!(c.ci_high < 0.81 && c.ci_low > 0.79);
        assert!(close(c.change_pct, (c.ratio - 1.0) * 100.0, 1e-12));
        assert!(regression_exceeds(&c, 10.0));
        assert!(!regression_exceeds(&c, 25.0));
        assert!(c.mde_pct.unwrap() < 2.0, "{:?}", c.mde_pct);
    }

    #[test]
    fn a_small_real_change_is_found_without_a_band() {
        // Ratios 0.98 ± 0.3%: a 2% slowdown, clear once no band hides it.
        let a = [100.0, 100.0, 100.0, 100.0, 200.0, 200.0];
        let b = [98.2, 97.7, 98.1, 97.9, 196.4, 195.8];
        let c = compare("rps", true, &a, &b, 0.0, 3).unwrap();
        assert_eq!(c.verdict, Verdict::Slower);
        assert!(close(c.ratio, 0.98, 0.002));
        // A user-set band of 2% makes the same data "no change".
        let banded = compare("rps", true, &a, &b, 0.02, 3).unwrap();
        assert_eq!(banded.verdict, Verdict::NoChange);
        assert!(!regression_exceeds(&c, 5.0));
        assert!(regression_exceeds(&c, 1.0));
    }

    #[test]
    fn latency_direction_is_reversed() {
        let a = [10.0, 10.2, 9.8, 10.1];
        let up: Vec<f64> = a.iter().map(|v| v * 1.2).collect();
        let down: Vec<f64> = a.iter().map(|v| v * 0.8).collect();
        let worse = compare("latency_p99_ms", false, &a, &up, 0.0, 1).unwrap();
        assert_eq!(worse.verdict, Verdict::Slower);
        assert!(close(worse.ratio, 1.2, 1e-9) && close(worse.change_pct, 20.0, 1e-6));
        assert!(regression_exceeds(&worse, 15.0));
        assert!(!regression_exceeds(&worse, 25.0));
        let better = compare("latency_p99_ms", false, &a, &down, 0.0, 1).unwrap();
        assert_eq!(better.verdict, Verdict::Faster);
        assert!(!regression_exceeds(&better, 0.0));
        // The same ratios for throughput mean the opposite.
        assert_eq!(
            compare("rps", true, &a, &up, 0.0, 1).unwrap().verdict,
            Verdict::Faster
        );
    }

    #[test]
    fn unequal_counts_and_single_pairs() {
        let c = compare("rps", true, &[1.0, 2.0, 3.0], &[1.1, 2.2], 0.0, 1).unwrap();
        assert_eq!(c.n_pairs, 2);
        assert_eq!(c.baseline.n, 2);
        assert!(c.notes[0].contains("paired the first 2"), "{:?}", c.notes);

        let one = compare("rps", true, &[100.0], &[50.0], 0.0, 1).unwrap();
        assert_eq!(one.verdict, Verdict::Inconclusive);
        assert_eq!((one.ci_low, one.ci_high, one.ratio), (0.5, 0.5, 0.5));
        assert!(!regression_exceeds(&one, 1.0));

        assert!(compare("rps", true, &[], &[1.0], 0.0, 1).is_none());
        assert!(compare("rps", true, &[0.0, 1.0], &[1.0, 1.0], 0.0, 1).is_none());
    }

    #[test]
    fn verdict_serializes_lower_case() {
        let words: Vec<String> = [
            Verdict::Faster,
            Verdict::Slower,
            Verdict::NoChange,
            Verdict::Inconclusive,
            Verdict::Descriptive,
        ]
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
        assert_eq!(
            words,
            [
                "\"faster\"",
                "\"slower\"",
                "\"no change\"",
                "\"inconclusive\"",
                "\"descriptive\""
            ]
        );
        let back: Verdict = serde_json::from_str("\"no change\"").unwrap();
        assert_eq!(back, Verdict::NoChange);
    }

    #[test]
    fn compare_runs_pairs_by_repeat() {
        let base = [
            run(1, 100.0, 1, 1.0, 1.0, Some(2.0)),
            run(2, 110.0, 1, 1.0, 1.0, Some(2.0)),
            run(3, 90.0, 1, 1.0, 1.0, None),
        ];
        // Repeat 2 of the candidate is missing (e.g. excluded as noisy); repeat 3 lacks p99.
        let cand = [
            run(3, 72.0, 1, 1.25, 1.0, None),
            run(1, 80.0, 1, 1.25, 1.0, Some(2.5)),
        ];
        let b: Vec<&RunRecord> = base.iter().collect();
        let c: Vec<&RunRecord> = cand.iter().collect();
        let out = compare_runs(&b, &c, 0.0, 1, "rps");
        let names: Vec<&str> = out.iter().map(|c| c.metric.as_str()).collect();
        assert_eq!(names, ["rps", "latency_mean_ms", "latency_p99_ms"]);
        assert_eq!(out[0].n_pairs, 2);
        assert!(close(out[0].ratio, 0.8, 1e-12));
        assert_eq!(out[0].verdict, Verdict::Slower);
        // Secondary metrics are described, not judged.
        assert_eq!(out[1].verdict, Verdict::Descriptive);
        assert!(!out[1].primary && out[0].primary);
        assert!(close(out[1].ratio, 1.25, 1e-12));
        assert_eq!(out[2].n_pairs, 1);
        assert_eq!(out[2].verdict, Verdict::Inconclusive);
        assert!(
            out[0]
                .notes
                .iter()
                .any(|n| n.contains("1 run(s) without a partner"))
        );
        assert!(
            out[2]
                .notes
                .iter()
                .any(|n| n.contains("1 pair(s) without this metric"))
        );
        assert_eq!(metric_unit("latency_p99_ms"), "ms");
        assert_eq!(metric_unit("rps"), "req/s");
        assert_eq!(metric_unit("other_ms"), "ms");
    }
}
