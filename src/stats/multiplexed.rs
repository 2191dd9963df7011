//! The verdict of a multiplexed comparison: block estimates ([`super::blocks`]) judged at the
//! planned looks of a group-sequential design ([`super::sequential`]).
//!
//! The rule, for the one **primary** metric (the others get intervals, not verdicts):
//!
//! 1. At look i (after `blocksᵢ` complete blocks, information fraction `tᵢ`), compute the
//!    block estimate `d̄ ± se` with `df` degrees of freedom, and the look's critical value
//!    `cᵢ = t_{df}` quantile of the O'Brien–Fleming-type z boundary.
//! 2. If `|d̄ / se| ≥ cᵢ`, stop: the candidate is `faster` or `slower` (by the metric's
//!    direction), with the repeated confidence interval `exp(d̄ ± cᵢ·se)`.
//! 3. Otherwise go on; at the last look, the verdict is `no change` with the same interval —
//!    which then reads "no change larger than the minimum detectable effect".
//!
//! The overall probability of a `faster`/`slower` verdict when nothing changed is at most α
//! (5%), looks included, and the intervals hold 95% jointly; `simulation` tests show both.

use serde::{Deserialize, Serialize};

use super::Verdict;
use super::blocks::{BlockDiff, Estimate, estimate, minimum_detectable_effect};
use super::sequential::{t_boundary, z_boundaries};

/// A planned look: after how many complete blocks, at which information fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Look {
    /// Complete blocks at the look.
    pub blocks: usize,
    /// Information fraction (blocks / blocks planned; 1 at the last look).
    pub fraction: f64,
}

/// Segments an interim look needs before it may stop a comparison.
pub const MIN_SEGMENTS_PER_LOOK: usize = 5;

/// The power at which minimum detectable effects are stated.
pub const MDE_POWER: f64 = 0.9;

/// The outcome of the sequential rule for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialOutcome {
    /// The estimate at the deciding (or last) look.
    pub estimate: Estimate,
    /// The critical value used at that look (t scale).
    pub critical: f64,
    /// 1-based index of that look.
    pub look: usize,
    /// Looks planned and recorded.
    pub looks: usize,
    /// True when the boundary was crossed (a change was declared at `look`).
    pub decided: bool,
    /// Geometric-mean ratio candidate / baseline: `exp(d̄)`.
    pub ratio: f64,
    /// Lower end of the interval.
    pub ci_low: f64,
    /// Upper end of the interval.
    pub ci_high: f64,
    /// Smallest slowdown (fraction) this look could have detected with [`MDE_POWER`].
    pub mde: f64,
}

/// Applies the sequential rule to the block differences, in block order, at the given looks
/// (looks needing more blocks than there are are ignored; see [`complete_looks`] for a design
/// that stopped early). With no look planned, the data get one look at fraction 1 (a
/// fixed-sample test). `None` when fewer than two blocks exist or no look could be taken.
pub fn decide(diffs: &[BlockDiff], looks: &[Look], alpha: f64) -> Option<SequentialOutcome> {
    let n = diffs.len();
    let segments_in = |blocks: usize| {
        let mut s: Vec<u32> = diffs[..blocks].iter().map(|d| d.segment).collect();
        s.dedup();
        s.len()
    };
    // Interim looks need MIN_SEGMENTS_PER_LOOK segments: below that the t mapping of the
    // boundaries is too rough at 1–3 degrees of freedom (and the boundary too high to matter);
    // such looks are skipped and spend nothing. Which looks are skipped depends on the design
    // only, never on the data's values.
    let mut plan: Vec<Look> = looks
        .iter()
        .copied()
        .filter(|l| l.blocks >= 2 && l.blocks <= n)
        .filter(|l| l.fraction >= 1.0 || segments_in(l.blocks) >= MIN_SEGMENTS_PER_LOOK)
        .collect();
    if looks.is_empty() && n >= 2 {
        // No plan: one fixed-sample look at all the blocks.
        plan.push(Look {
            blocks: n,
            fraction: 1.0,
        });
    }
    if plan.is_empty() {
        return None;
    }
    let fractions: Vec<f64> = plan.iter().map(|l| l.fraction).collect();
    let bounds = z_boundaries(alpha, &fractions);
    let mut last = None;
    for (i, (look, z)) in plan.iter().zip(&bounds).enumerate() {
        let Some(e) = estimate(&diffs[..look.blocks]) else {
            continue;
        };
        let crit = t_boundary(*z, e.df);
        let decided = e.se > 0.0 && (e.mean / e.se).abs() >= crit
            || e.se == 0.0 && e.mean != 0.0 && crit.is_finite();
        let (lo, hi) = if crit.is_finite() {
            e.ratio_interval(crit)
        } else {
            (0.0, f64::INFINITY)
        };
        let outcome = SequentialOutcome {
            estimate: e,
            critical: crit,
            look: i + 1,
            looks: plan.len(),
            decided,
            ratio: e.mean.exp(),
            ci_low: lo,
            ci_high: hi,
            mde: if crit.is_finite() {
                minimum_detectable_effect(e.se, crit, MDE_POWER)
            } else {
                f64::INFINITY
            },
        };
        if decided {
            return Some(outcome);
        }
        last = Some(outcome);
    }
    last
}

/// The looks of a design that may have stopped before its final look (interrupted, or failed):
/// the recorded looks up to `blocks`, then one final look at `blocks` spending whatever α is
/// left. A design whose last look was final is returned as it is.
pub fn complete_looks(looks: &[Look], blocks: usize) -> Vec<Look> {
    let mut v: Vec<Look> = looks
        .iter()
        .copied()
        .filter(|l| l.blocks <= blocks)
        .collect();
    if v.last().is_none_or(|l| l.fraction < 1.0) && blocks >= 2 {
        if v.last().is_some_and(|l| l.blocks == blocks) {
            v.pop();
        }
        v.push(Look {
            blocks,
            fraction: 1.0,
        });
    }
    v
}

impl SequentialOutcome {
    /// The verdict for a metric whose larger values are better (`higher_is_better`) or worse.
    pub fn verdict(&self, higher_is_better: bool) -> Verdict {
        if !self.decided {
            return Verdict::NoChange;
        }
        match (self.ratio > 1.0, higher_is_better) {
            (true, true) | (false, false) => Verdict::Faster,
            _ => Verdict::Slower,
        }
    }
}

/// A descriptive (non-verdict) interval for a secondary metric: the fixed-sample 95% t-interval
/// of all blocks. `None` with fewer than two blocks.
pub fn describe(diffs: &[BlockDiff]) -> Option<(Estimate, f64, f64)> {
    let e = estimate(diffs)?;
    let (lo, hi) = e.ratio_interval(e.t_critical(0.05));
    Some((e, lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One block per segment (restart every block).
    fn diffs(values: &[f64]) -> Vec<BlockDiff> {
        values
            .iter()
            .enumerate()
            .map(|(i, d)| BlockDiff {
                segment: i as u32,
                block: i as u32,
                d: *d,
            })
            .collect()
    }

    fn plan(first: usize, total: usize) -> [Look; 2] {
        [
            Look {
                blocks: first,
                fraction: first as f64 / total as f64,
            },
            Look {
                blocks: total,
                fraction: 1.0,
            },
        ]
    }

    #[test]
    fn a_clear_change_stops_at_the_first_look() {
        let d = diffs(&[
            -0.10, -0.11, -0.09, -0.10, -0.105, -0.095, -0.1, -0.1, -0.1, -0.1,
        ]);
        let o = decide(&d, &plan(5, 10), 0.05).unwrap();
        assert!(o.decided);
        assert_eq!((o.look, o.looks), (1, 2));
        assert_eq!(o.verdict(true), Verdict::Slower);
        assert_eq!(o.verdict(false), Verdict::Faster);
        assert!(o.ci_high < 1.0 && o.ci_low < o.ratio);
    }

    #[test]
    fn interim_looks_need_five_segments() {
        let d = diffs(&[-0.10, -0.11, -0.09, -0.10, -0.105, -0.095, -0.1, -0.1]);
        // A look at 4 segments is skipped (spends nothing); the decision comes at the end.
        let o = decide(&d, &plan(4, 8), 0.05).unwrap();
        assert!(o.decided);
        assert_eq!((o.look, o.looks), (1, 1));
    }

    #[test]
    fn noise_around_zero_is_no_change_at_the_last_look() {
        let d = diffs(&[
            0.01, -0.012, 0.004, -0.003, 0.008, -0.01, 0.002, 0.0, 0.003, -0.004,
        ]);
        let o = decide(&d, &plan(5, 10), 0.05).unwrap();
        assert!(!o.decided);
        assert_eq!(o.look, 2);
        assert_eq!(o.verdict(true), Verdict::NoChange);
        assert!(o.ci_low < 1.0 && o.ci_high > 1.0);
        assert!(o.mde > 0.0 && o.mde < 0.05, "{o:?}");
    }

    #[test]
    fn an_interrupted_design_gets_a_look_at_what_it_has() {
        let d = diffs(&[0.01, -0.012, 0.004, -0.003, 0.008, 0.001]);
        let looks = complete_looks(&plan(5, 12), d.len());
        assert_eq!(looks.len(), 2);
        assert_eq!((looks[1].blocks, looks[1].fraction), (6, 1.0));
        let o = decide(&d, &looks, 0.05).unwrap();
        assert_eq!((o.look, o.looks, o.estimate.blocks), (2, 2, 6));
        let fixed = decide(&d, &[], 0.05).unwrap();
        assert_eq!(fixed.looks, 1);
        assert!(decide(&d[..1], &[], 0.05).is_none());
    }
}
