//! Verdicts from a multiplexed design: every version's gateway up at once, load in short bursts
//! ordered in balanced blocks, instances restarted every segment.
//!
//! # Why blocks, and why segments
//!
//! On the project's 2-core VMs a fresh gateway per run makes the two halves of a pair nearly
//! independent (SD of ln(B/A) 8–14%), while adjacent bursts against two gateways that stay up
//! differ by 1–2% (`reference/environment-notes.md`). So the unit of analysis is a **block**: a
//! short, balanced sequence of bursts (A B B A or B A A B for two versions, chosen by a seeded
//! coin; for more versions a random permutation followed by its reverse). Its statistic
//!
//! ```text
//!     d = mean ln(candidate bursts in the block) − mean ln(baseline bursts in the block)
//! ```
//!
//! cancels a level shift of the machine and, thanks to the mirrored order, any drift that is
//! linear over the block (Abedi & Brecht, ICPE 2017, randomised multiplexed interleaving).
//!
//! Instances are restarted every segment because process-level effects (memory layout, ASLR,
//! the environment's size) can be as large as real changes (Mytkowicz et al., ASPLOS 2009); the
//! interval must then carry the variance *between* segments as well as within them (Kalibera &
//! Jones, "Rigorous Benchmarking in Reasonable Time", ISMM 2013). [`estimate`] therefore takes
//! the **segment** as the unit once there are two or more: each segment's mean block
//! difference, and the Student-t interval of those means — of their 20%-trimmed mean with
//! Yuen's standard error (df = units kept − 1), so a dip that catches part of a block does not
//! sink the comparison ([`trimmed_mean`]). That is exact for
//! normal segment means whatever the size of the instance effect; pooling blocks across
//! segments after an F pre-test ("sometimes pool") was tried and covered only 87–93% with 2–4
//! segments and moderate instance effects (the `sweep` simulation). The price is degrees of
//! freedom, so `compare` restarts often (short segments of a few blocks). With a single segment
//! the blocks are the unit and the interval speaks for those two instances only (said in the
//! verdict's notes). Intervals use Student's t, never the normal or a percentile bootstrap: at
//! the counts a 2-minute budget gives, a percentile bootstrap covers well under its nominal
//! level (`reference/statistics-notes.md`).
//!
//! Everything here is pure; the simulation tests in [`super::simulation`] show the coverage,
//! error rates and power the docs state.

use serde::{Deserialize, Serialize};

use super::distributions::{normal_quantile, t_quantile};

/// One burst as the statistics see it: where it ran in the design and the metric's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstValue {
    /// Segment number (instances restarted between segments).
    pub segment: u32,
    /// Block number, unique across segments.
    pub block: u32,
    /// Index of the version the burst loaded.
    pub version: usize,
    /// The metric's value (must be positive: its logarithm is taken).
    pub value: f64,
}

/// The statistic of one block: candidate minus baseline mean log value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BlockDiff {
    /// Segment the block belongs to.
    pub segment: u32,
    /// Block number.
    pub block: u32,
    /// `mean ln(candidate) − mean ln(baseline)` over the block's bursts.
    pub d: f64,
}

/// The block statistics of `candidate` against `baseline`, in block order. A block enters only
/// when it holds at least one positive, finite value of each version (a block cut short by
/// Ctrl-C, or whose bursts were excluded, is left out).
pub fn block_differences(
    bursts: &[BurstValue],
    baseline: usize,
    candidate: usize,
) -> Vec<BlockDiff> {
    let mut blocks: Vec<u32> = bursts.iter().map(|b| b.block).collect();
    blocks.sort_unstable();
    blocks.dedup();
    blocks
        .into_iter()
        .filter_map(|block| {
            let of = |v: usize| -> Option<(f64, u32)> {
                let logs: Vec<f64> = bursts
                    .iter()
                    .filter(|b| b.block == block && b.version == v)
                    .filter(|b| b.value.is_finite() && b.value > 0.0)
                    .map(|b| b.value.ln())
                    .collect();
                let segment = bursts.iter().find(|b| b.block == block)?.segment;
                (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64, segment))
            };
            let (a, segment) = of(baseline)?;
            let (b, _) = of(candidate)?;
            Some(BlockDiff {
                segment,
                block,
                d: b - a,
            })
        })
        .collect()
}

/// The share trimmed from each end of the units before their mean is taken: 20%, the default
/// Wilcox recommends (R. R. Wilcox, *Introduction to Robust Estimation and Hypothesis Testing*,
/// 4th ed. 2017, ch. 3–4). A machine-wide dip that catches one burst of a block makes that
/// block's difference an outlier; a trimmed mean shrugs off a few such units at a small cost
/// (its efficiency is ~94% of the mean's for normal data).
pub const TRIM: f64 = 0.2;

/// Units needed before anything is trimmed. With 6–19 units Yuen's interval was too liberal in
/// the sequential A/A simulation (6.1% false verdicts trimming from 6 units on, 5.8% from 10 on,
/// against at most 5.7% allowed); from twenty on, four or more units go from each end. A default
/// 2-minute compare (~9 units) is therefore not trimmed; longer budgets are.
pub const MIN_UNITS_TO_TRIM: usize = 20;

/// Yuen's trimmed mean and the square of its standard error, with its degrees of freedom
/// (K. K. Yuen, "The two-sample trimmed t for unequal population variances", *Biometrika*
/// 61(1), 1974; one-sample form): trim `g = ⌊γn⌋` units from each end, `h = n − 2g`,
/// `se² = (n − 1)·s²_w / (h·(h − 1))` with `s²_w` the winsorised variance, `df = h − 1`. With
/// fewer than [`MIN_UNITS_TO_TRIM`] units `g = 0`, and this is the ordinary t: mean, `s²/n`,
/// `n − 1`.
pub fn trimmed_mean(units: &[f64], gamma: f64) -> (f64, f64, f64) {
    let n = units.len();
    let mut x = units.to_vec();
    x.sort_by(f64::total_cmp);
    let g = if n >= MIN_UNITS_TO_TRIM {
        (gamma * n as f64).floor() as usize
    } else {
        0
    };
    let h = n - 2 * g;
    let mean = x[g..n - g].iter().sum::<f64>() / h as f64;
    let winsorised: Vec<f64> = x.iter().map(|v| v.clamp(x[g], x[n - g - 1])).collect();
    let wm = winsorised.iter().sum::<f64>() / n as f64;
    let sw2 = winsorised.iter().map(|v| (v - wm) * (v - wm)).sum::<f64>() / (n as f64 - 1.0);
    let se2 = (n as f64 - 1.0) * sw2 / (h as f64 * (h as f64 - 1.0));
    (mean, se2, h as f64 - 1.0)
}

/// The mean block difference with its standard error from the nested model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// 20%-trimmed mean of the units (segment means; blocks with one segment), a log ratio.
    pub mean: f64,
    /// Standard error of `mean` (Yuen), segment level included.
    pub se: f64,
    /// Degrees of freedom of `se`: units kept after trimming, minus one.
    pub df: f64,
    /// Blocks used.
    pub blocks: usize,
    /// Segments those blocks came from.
    pub segments: usize,
    /// Within-segment SD of a block difference (√MSW; the "pair σ" of the design).
    pub block_sd: f64,
    /// SD of the segment means (0 with one segment).
    pub segment_sd: f64,
}

/// Estimates the mean block difference and its uncertainty. Needs at least two blocks; `None`
/// otherwise or when a difference is not finite.
pub fn estimate(diffs: &[BlockDiff]) -> Option<Estimate> {
    let n = diffs.len();
    if n < 2 || diffs.iter().any(|d| !d.d.is_finite()) {
        return None;
    }
    let mut segs: Vec<u32> = diffs.iter().map(|d| d.segment).collect();
    segs.sort_unstable();
    segs.dedup();
    let groups: Vec<Vec<f64>> = segs
        .iter()
        .map(|s| {
            diffs
                .iter()
                .filter(|d| d.segment == *s)
                .map(|d| d.d)
                .collect()
        })
        .collect();
    let nf = n as f64;
    let s = groups.len();
    let ssw: f64 = groups
        .iter()
        .map(|g| {
            let m = g.iter().sum::<f64>() / g.len() as f64;
            g.iter().map(|x| (x - m) * (x - m)).sum::<f64>()
        })
        .sum();
    // The units: the blocks with one segment (instance-level variance then not sampled: the
    // verdict's notes say so), else the segment means — exact for normal segment means whatever
    // the instance effect, which an F pre-test for pooling ("sometimes pool") is not: with 2–4
    // segments it covered 87–93% when instance effects were moderate (the `sweep` simulation).
    let sf = s as f64;
    let means: Vec<f64> = groups
        .iter()
        .map(|g| g.iter().sum::<f64>() / g.len() as f64)
        .collect();
    let units: Vec<f64> = if s < 2 {
        diffs.iter().map(|d| d.d).collect()
    } else {
        means.clone()
    };
    let (mean, var, df) = trimmed_mean(&units, TRIM);
    let (block_sd, segment_sd) = if s < 2 {
        ((ssw / (nf - 1.0)).sqrt(), 0.0)
    } else {
        let grand = means.iter().sum::<f64>() / sf;
        let var_means = means.iter().map(|m| (m - grand) * (m - grand)).sum::<f64>() / (sf - 1.0);
        let msw = if nf > sf { ssw / (nf - sf) } else { 0.0 };
        (msw.sqrt(), var_means.sqrt())
    };
    if !var.is_finite() {
        return None;
    }
    Some(Estimate {
        mean,
        se: var.max(0.0).sqrt(),
        df,
        blocks: n,
        segments: s,
        block_sd,
        segment_sd,
    })
}

impl Estimate {
    /// The two-sided interval of the log ratio with critical value `crit` (a t quantile, or a
    /// group-sequential boundary), as ratios `(exp(lo), exp(hi))`.
    pub fn ratio_interval(&self, crit: f64) -> (f64, f64) {
        (
            (self.mean - crit * self.se).exp(),
            (self.mean + crit * self.se).exp(),
        )
    }

    /// The fixed-sample two-sided critical value at level `alpha` (Student's t with this
    /// estimate's degrees of freedom).
    pub fn t_critical(&self, alpha: f64) -> f64 {
        t_quantile(1.0 - alpha / 2.0, self.df)
    }
}

/// The minimum detectable effect, as a fraction (0.02 = 2%): the smallest true change of the
/// geometric-mean ratio that a two-sided test with critical value `crit` would call with
/// probability `power`, given standard error `se` of the log ratio:
/// `δ = (crit + z_power) · se` (the usual normal-theory power formula, e.g. statistics notes).
/// Returned as `1 − e^(−δ)`, the size of a *slowdown* (a drop of the ratio) of that magnitude.
pub fn minimum_detectable_effect(se: f64, crit: f64, power: f64) -> f64 {
    let delta = (crit + normal_quantile(power)) * se;
    1.0 - (-delta).exp()
}

/// The standard error a design of `blocks` blocks would have with block SD `block_sd` (segment
/// effect ignored), for planning.
pub fn planned_se(block_sd: f64, blocks: usize) -> f64 {
    block_sd / (blocks.max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn burst(segment: u32, block: u32, version: usize, value: f64) -> BurstValue {
        BurstValue {
            segment,
            block,
            version,
            value,
        }
    }

    #[test]
    fn block_difference_cancels_linear_drift_and_level() {
        // A B B A with a level of 100 and a drift of +1 per burst; B is 2% slower throughout.
        let v = |i: f64, slow: bool| (100.0 + i) * if slow { 0.98 } else { 1.0 };
        let bursts = [
            burst(0, 0, 0, v(0.0, false)),
            burst(0, 0, 1, v(1.0, true)),
            burst(0, 0, 1, v(2.0, true)),
            burst(0, 0, 0, v(3.0, false)),
        ];
        let d = block_differences(&bursts, 0, 1);
        assert_eq!(d.len(), 1);
        // ln(101·102·0.98²)/2 − ln(100·103)/2 = ln 0.98 + (ln(10302) − ln(10300))/2.
        let expect = 0.98f64.ln() + ((101.0 * 102.0) / (100.0 * 103.0_f64)).ln() / 2.0;
        assert!(close(d[0].d, expect, 1e-12));
        assert!(close(d[0].d, 0.98f64.ln(), 1e-4));
    }

    #[test]
    fn incomplete_blocks_are_left_out() {
        let bursts = [
            burst(0, 0, 0, 100.0),
            burst(0, 0, 1, 90.0),
            burst(0, 1, 1, 90.0),
            burst(0, 2, 0, 100.0),
            burst(0, 2, 1, -1.0),
        ];
        let d = block_differences(&bursts, 0, 1);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].block, 0);
    }

    #[test]
    fn hand_computed_single_segment() {
        // d = 0.01, 0.03, 0.02, 0.04: mean 0.025, sd = sqrt(5/3)·0.01, se = sd/2, df 3.
        let diffs: Vec<BlockDiff> = [0.01, 0.03, 0.02, 0.04]
            .iter()
            .enumerate()
            .map(|(i, d)| BlockDiff {
                segment: 0,
                block: i as u32,
                d: *d,
            })
            .collect();
        let e = estimate(&diffs).unwrap();
        assert!(close(e.mean, 0.025, 1e-12));
        let sd = (5.0f64 / 3.0).sqrt() * 0.01;
        assert!(close(e.se, sd / 2.0, 1e-12));
        assert_eq!((e.df, e.blocks, e.segments), (3.0, 4, 1));
        let (lo, hi) = e.ratio_interval(e.t_critical(0.05));
        // t(0.975, 3) = 3.1824.
        assert!(close(lo.ln(), 0.025 - 3.182_446 * sd / 2.0, 1e-5));
        assert!(close(hi.ln(), 0.025 + 3.182_446 * sd / 2.0, 1e-5));
    }

    #[test]
    fn segments_are_the_unit() {
        // Three segments: 2, 2 and 1 blocks. Unit = segment mean; df = 2.
        let data = [(0, 0.00), (0, 0.01), (1, 0.05), (1, 0.06), (2, -0.03)];
        let diffs: Vec<BlockDiff> = data
            .iter()
            .enumerate()
            .map(|(i, (s, d))| BlockDiff {
                segment: *s,
                block: i as u32,
                d: *d,
            })
            .collect();
        let e = estimate(&diffs).unwrap();
        let means = [0.005, 0.055, -0.03];
        let m = means.iter().sum::<f64>() / 3.0;
        let var_means = means.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 2.0;
        assert!(close(e.mean, m, 1e-12));
        assert!(close(e.se, (var_means / 3.0).sqrt(), 1e-12), "{e:?}");
        assert_eq!((e.df, e.blocks, e.segments), (2.0, 5, 3));
        // Within-segment SD from the two pairs: sqrt((2·0.005²·2) / 2).
        assert!(close(e.block_sd, (0.0001f64 / 2.0).sqrt(), 1e-12), "{e:?}");
    }

    #[test]
    fn yuen_trimmed_mean_by_hand() {
        // n = 20, g = 4, h = 12: units 1…20 with 1 and 20 replaced by outliers -100 and 100.
        // Trimmed mean of 5…16 = 10.5; winsorised: 5 5 5 5 5 6 … 16 16 16 16 16, mean 10.5;
        // se² = 19 · s²_w / (12 · 11); df 11. The outliers move nothing.
        let mut units: Vec<f64> = (1..=20).map(f64::from).collect();
        units[0] = -100.0;
        units[19] = 100.0;
        let (m, se2, df) = trimmed_mean(&units, TRIM);
        assert!(close(m, 10.5, 1e-12));
        let w: Vec<f64> = (1..=20).map(|v| f64::from(v).clamp(5.0, 16.0)).collect();
        let sw2 = w.iter().map(|v| (v - 10.5) * (v - 10.5)).sum::<f64>() / 19.0;
        assert!(close(se2, 19.0 * sw2 / 132.0, 1e-12), "{se2}");
        assert_eq!(df, 11.0);
        // Fewer than twenty units: the ordinary mean and t.
        let (m, se2, df) = trimmed_mean(&[1.0, 2.0, 3.0, 6.0], TRIM);
        assert!(close(m, 3.0, 1e-12));
        assert!(close(se2, (4.0 + 1.0 + 0.0 + 9.0) / 3.0 / 4.0, 1e-12));
        assert_eq!(df, 3.0);
    }

    #[test]
    fn mde_formula() {
        // se 1%, crit 1.96, power 0.9 → δ = (1.96 + 1.2816)·0.01.
        let m = minimum_detectable_effect(0.01, 1.959_964, 0.9);
        assert!(close(
            m,
            1.0 - (-(1.959_964 + 1.281_552) * 0.01f64).exp(),
            1e-6
        ));
        assert!(close(planned_se(0.02, 16), 0.005, 1e-15));
        assert!(estimate(&[]).is_none());
    }
}
