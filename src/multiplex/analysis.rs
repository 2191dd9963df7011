//! From stored bursts back to comparisons: the verdict of the primary metric by the sequential
//! rule at the recorded looks, and intervals for every other metric. Used by the runner at each
//! look and by `perflab report`, so both always agree.

use crate::result::RunRecord;
use crate::stats::blocks::{BlockDiff, BurstValue, block_differences};
use crate::stats::multiplexed::{Look, decide, describe};
use crate::stats::{
    ALPHA, Comparison, DesignFigures, STANDARD_METRICS, Verdict, metric_value, summarize,
};

use super::{CaseDesign, DesignRecord};

/// A block is left out when the machine's background CPU differs by more than this many
/// percentage points between its bursts: the machine changed under the block (a dip began or
/// ended), so its versions did not share the same machine — the one thing a block relies on.
/// The rule looks only at a covariate the versions do not cause, so it keeps an A/A
/// comparison's error rate; it was declared before the figures in bench/README.md were taken.
pub const BLOCK_BACKGROUND_SPREAD_PP: f64 = 20.0;

/// Why a burst is left out of the statistics, if it is: a gateway that died (always), errors
/// (failed requests measure the failure, not the speed; kept with `--include-flagged`). Noisy
/// bursts stay in: the block design cancels what the machine does to both versions alike, and
/// dropping single bursts would unbalance blocks (whole blocks go, by
/// [`BLOCK_BACKGROUND_SPREAD_PP`]).
pub fn exclusion(r: &RunRecord) -> Option<&'static str> {
    if r.flags.gateway_died {
        Some("gateway_died")
    } else if r.flags.profiled {
        Some("profiled")
    } else if r.flags.errors {
        Some("errors")
    } else {
        None
    }
}

/// The bursts of one case and two versions that enter the statistics, and the exclusions.
fn usable<'a>(
    runs: &'a [RunRecord],
    case: &str,
    versions: [&str; 2],
    include_flagged: bool,
) -> (Vec<&'a RunRecord>, Vec<String>) {
    let mut kept = Vec::new();
    let mut excluded: std::collections::BTreeMap<&str, usize> = Default::default();
    let in_case: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.case == case && r.burst.is_some() && versions.contains(&r.version.as_str()))
        .collect();
    // Background CPU range per block, over all of the block's bursts.
    let mut range: std::collections::BTreeMap<u32, (f64, f64)> = Default::default();
    for r in &in_case {
        let block = r.burst.as_ref().map_or(0, |p| p.block);
        let e = range
            .entry(block)
            .or_insert((f64::INFINITY, f64::NEG_INFINITY));
        e.0 = e.0.min(r.cpu.background_pct);
        e.1 = e.1.max(r.cpu.background_pct);
    }
    let mut shifted_blocks = std::collections::BTreeSet::new();
    for r in in_case {
        let block = r.burst.as_ref().map_or(0, |p| p.block);
        let shifted = range
            .get(&block)
            .is_some_and(|(lo, hi)| hi - lo > BLOCK_BACKGROUND_SPREAD_PP);
        match exclusion(r) {
            Some(why) if !(include_flagged && why == "errors") => {
                *excluded.entry(why).or_default() += 1
            }
            _ if shifted => {
                shifted_blocks.insert(block);
            }
            _ => kept.push(r),
        }
    }
    if !shifted_blocks.is_empty() {
        excluded.insert(
            "blocks whose background CPU changed by > 20 pp",
            shifted_blocks.len(),
        );
    }
    (
        kept,
        excluded
            .into_iter()
            .map(|(why, n)| format!("{why}: {n}"))
            .collect(),
    )
}

fn values(runs: &[&RunRecord], baseline: &str, metric: &str) -> Vec<BurstValue> {
    runs.iter()
        .filter_map(|r| {
            let place = r.burst.as_ref()?;
            Some(BurstValue {
                segment: place.segment,
                block: place.block,
                version: usize::from(r.version != baseline),
                value: metric_value(r, metric)?,
            })
        })
        .collect()
}

/// The primary metric's block differences of `candidate` against `baseline` in one case.
pub fn primary_diffs(
    runs: &[RunRecord],
    case: &str,
    baseline: &str,
    candidate: &str,
    metric: &str,
    include_flagged: bool,
) -> Vec<BlockDiff> {
    let (kept, _) = usable(runs, case, [baseline, candidate], include_flagged);
    block_differences(&values(&kept, baseline, metric), 0, 1)
}

/// The primary metric's block ratios of `candidate` against `baseline` over time, for the block
/// chart: `(seconds since the case's first burst, exp(d), segment)` per complete block.
pub fn block_points(
    runs: &[RunRecord],
    case: &str,
    baseline: &str,
    candidate: &str,
    metric: &str,
    include_flagged: bool,
) -> Vec<(f64, f64, u32)> {
    let t0 = runs
        .iter()
        .filter(|r| r.case == case && r.burst.is_some())
        .map(|r| r.started_unix_s)
        .fold(f64::INFINITY, f64::min);
    primary_diffs(runs, case, baseline, candidate, metric, include_flagged)
        .into_iter()
        .map(|d| {
            let start = runs
                .iter()
                .filter(|r| r.case == case && r.burst.as_ref().is_some_and(|p| p.block == d.block))
                .map(|r| r.started_unix_s)
                .fold(f64::INFINITY, f64::min);
            (start - t0, d.d.exp(), d.segment)
        })
        .collect()
}

/// Every metric's comparison of `candidate` against `baseline` in one case: the primary metric
/// judged by the sequential rule at the case's looks, the others described. Empty when fewer
/// than two complete blocks exist.
pub fn compare_case(
    runs: &[RunRecord],
    case: &str,
    baseline: &str,
    candidate: &str,
    design: &DesignRecord,
    case_design: &CaseDesign,
) -> Vec<Comparison> {
    let opts = &design.options;
    let (kept, excluded) = usable(runs, case, [baseline, candidate], opts.include_flagged);
    let mut out = Vec::new();
    for m in STANDARD_METRICS {
        let vals = values(&kept, baseline, m.name);
        let diffs = block_differences(&vals, 0, 1);
        let used_blocks: std::collections::BTreeSet<u32> = diffs.iter().map(|d| d.block).collect();
        let in_blocks: Vec<&RunRecord> = kept
            .iter()
            .copied()
            .filter(|r| {
                r.burst
                    .as_ref()
                    .is_some_and(|p| used_blocks.contains(&p.block))
            })
            .collect();
        let side = |base: bool| -> Vec<f64> {
            vals.iter()
                .filter(|v| used_blocks.contains(&v.block) && (v.version == 0) == base)
                .map(|v| v.value)
                .collect()
        };
        let (Some(sa), Some(sb)) = (summarize(&side(true)), summarize(&side(false))) else {
            continue;
        };
        let primary = m.name == opts.primary_metric;
        let (estimate, ratio, lo, hi, verdict, critical, look, looks, mde) = if primary {
            let looks = crate::stats::multiplexed::complete_looks(&case_design.looks, diffs.len());
            let Some(o) = decide(&diffs, &looks, design.alpha) else {
                continue;
            };
            (
                o.estimate,
                o.ratio,
                o.ci_low,
                o.ci_high,
                o.verdict(m.higher_is_better),
                o.critical,
                o.look,
                o.looks,
                o.mde,
            )
        } else {
            let Some((e, lo, hi)) = describe(&diffs) else {
                continue;
            };
            let crit = e.t_critical(ALPHA);
            (
                e,
                e.mean.exp(),
                lo,
                hi,
                Verdict::Descriptive,
                crit,
                0,
                0,
                crate::stats::blocks::minimum_detectable_effect(
                    e.se,
                    crit,
                    crate::stats::multiplexed::MDE_POWER,
                ),
            )
        };
        let mut notes = Vec::new();
        if estimate.segments < 2 {
            notes.push(
                "one segment: the variance between instance restarts could not be measured"
                    .to_string(),
            );
        }
        let n_bursts = in_blocks.len();
        out.push(Comparison {
            metric: m.name.to_string(),
            higher_is_better: m.higher_is_better,
            baseline: sa,
            candidate: sb,
            ratio,
            ci_low: lo,
            ci_high: hi,
            n_pairs: estimate.blocks,
            noise_band: 0.0,
            verdict,
            change_pct: (ratio - 1.0) * 100.0,
            resamples: 0,
            seed: opts.order_seed,
            notes,
            method: "multiplexed-blocks".into(),
            primary,
            mde_pct: mde.is_finite().then_some(100.0 * mde),
            design: Some(DesignFigures {
                blocks: estimate.blocks,
                bursts: n_bursts,
                segments: estimate.segments,
                measured_s: in_blocks.iter().map(|r| r.load.duration_s).sum(),
                block_sd_pct: 100.0 * estimate.block_sd,
                segment_sd_pct: 100.0 * estimate.segment_sd,
                df: estimate.df,
                critical,
                look,
                looks,
                burst_s: opts.burst_s,
                segment_s: opts.segment_s,
                order_seed: opts.order_seed,
                excluded: excluded.clone(),
                background_cpu_pct: if n_bursts > 0 {
                    in_blocks.iter().map(|r| r.cpu.background_pct).sum::<f64>() / n_bursts as f64
                } else {
                    0.0
                },
            }),
        });
    }
    out
}

/// The looks of a case as recorded, or one final look when the record has none.
pub fn looks_of(design: &DesignRecord, case: &str) -> Vec<Look> {
    design
        .cases
        .get(case)
        .map(|c| c.looks.clone())
        .unwrap_or_default()
}
