//! Sequential stopping that keeps the stated error rate: a group-sequential design with
//! Lan–DeMets alpha spending and O'Brien–Fleming-type boundaries.
//!
//! # Why
//!
//! `compare` looks at the data every few blocks and stops as soon as the verdict is clear.
//! Looking at a fixed-sample 95% interval after every block and stopping when it excludes 1
//! would call far more than 5% of A/A comparisons "changed". Instead, a total error rate α is
//! *spent* over the looks by the function
//!
//! ```text
//!     α(t) = 2 · (2 − 2·Φ(z₁₋α/₄ / √t)),   t = information fraction (blocks so far / planned)
//! ```
//!
//! (K. K. G. Lan & D. L. DeMets, "Discrete sequential boundaries for clinical trials",
//! *Biometrika* 70(3), 1983 — the O'Brien–Fleming-like spending function), which spends almost
//! nothing early (α(0.25) ≈ 0.00001 for α = 0.05) and keeps the final look close to the
//! fixed-sample test. The boundary of each look is found by the recursive numerical integration
//! of Armitage, McPherson & Rowe (*JRSS A* 132, 1969) over the Brownian motion of the score
//! statistic, so that P(cross at look i, not before | no change) = α(tᵢ) − α(tᵢ₋₁) exactly (up to
//! the grid). The boundaries are for a known variance; with an estimated one, each z boundary is
//! mapped to the t quantile of the same tail probability at that look's degrees of freedom — the
//! usual small-sample approximation (C. Jennison & B. W. Turnbull, *Group Sequential Methods*,
//! 2000, §3.8). The intervals reported at a look are the matching repeated confidence intervals,
//! which hold their 1 − α coverage jointly over all looks. The simulation tests measure the
//! whole procedure's error rate.
//!
//! Looks may come at any information fractions (they need not be equally spaced) as long as
//! *when* to look does not depend on the data; the last look spends whatever α is left.

use super::distributions::{normal_cdf, normal_pdf, normal_quantile, t_quantile};

/// The O'Brien–Fleming-type spending function of a two-sided, symmetric test of total level
/// `alpha`: α spent by information fraction `t` (0…1). Each side spends
/// `2 − 2Φ(z₁₋α/₄ / √t)` of its α/2 (Lan & DeMets' function applied per side, as R's `ldbounds`
/// and `gsDesign` do), so the two sides together spend `alpha` at t = 1.
pub fn spent(alpha: f64, t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let t = t.min(1.0);
    let per_side = alpha / 2.0;
    let z = normal_quantile(1.0 - per_side / 2.0);
    2.0 * (2.0 - 2.0 * normal_cdf(z / t.sqrt()))
}

/// Points of the integration grid per look (odd, so 0 is on it).
const GRID: usize = 401;

/// Two-sided z boundaries for looks at increasing information fractions `fractions` (each in
/// (0, 1]; the caller passes 1 for the last look). Boundary i is the |Z| a look must reach to
/// stop; `f64::INFINITY` when a look spends no α (e.g. a fraction equal to the previous).
pub fn z_boundaries(alpha: f64, fractions: &[f64]) -> Vec<f64> {
    // The same looks come back at every look of a comparison and in every report: remember
    // the last few plans.
    thread_local! {
        static CACHE: std::cell::RefCell<Vec<(Vec<u64>, Vec<f64>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let key: Vec<u64> = std::iter::once(alpha.to_bits())
        .chain(fractions.iter().map(|f| f.to_bits()))
        .collect();
    if let Some(hit) = CACHE.with(|c| {
        c.borrow()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }) {
        return hit;
    }
    let out = compute_boundaries(alpha, fractions);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 16 {
            c.remove(0);
        }
        c.push((key, out.clone()));
    });
    out
}

fn compute_boundaries(alpha: f64, fractions: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(fractions.len());
    // Sub-density of the score S(t) = Z·√t on the continuation region of the previous look:
    // grid points and weights (trapezoid) times density.
    let mut grid: Vec<f64> = Vec::new();
    let mut dens: Vec<f64> = Vec::new();
    let mut prev_t = 0.0;
    let mut prev_spent = 0.0;
    for &t in fractions {
        let t = t.clamp(1e-9, 1.0);
        let target = (spent(alpha, t) - prev_spent).max(0.0);
        let dt = t - prev_t;
        if target <= 0.0 || dt <= 0.0 {
            out.push(f64::INFINITY);
            continue;
        }
        let sd = dt.sqrt();
        // Probability of crossing ±b·√t at this look, starting from the previous density.
        let cross = |b: f64| -> f64 {
            let edge = b * t.sqrt();
            if grid.is_empty() {
                return 2.0 * (1.0 - normal_cdf(edge / sd));
            }
            integrate(&grid, &dens, |u| {
                normal_cdf((-edge - u) / sd) + 1.0 - normal_cdf((edge - u) / sd)
            })
        };
        // cross() decreases in b: bisect for cross(b) = target.
        let (mut lo, mut hi) = (0.0_f64, 40.0_f64);
        for _ in 0..80 {
            let mid = 0.5 * (lo + hi);
            if cross(mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let b = 0.5 * (lo + hi);
        out.push(b);
        // Propagate the density to this look's continuation region |s| < b·√t.
        let edge = b * t.sqrt();
        let new_grid: Vec<f64> = (0..GRID)
            .map(|i| -edge + 2.0 * edge * i as f64 / (GRID - 1) as f64)
            .collect();
        let new_dens: Vec<f64> = if grid.is_empty() {
            new_grid.iter().map(|s| normal_pdf(s / sd) / sd).collect()
        } else {
            new_grid
                .iter()
                .map(|s| integrate(&grid, &dens, |u| normal_pdf((s - u) / sd) / sd))
                .collect()
        };
        grid = new_grid;
        dens = new_dens;
        prev_t = t;
        prev_spent += target;
    }
    out
}

/// ∫ f(u)·g(u) du over an equally spaced grid by the trapezoid rule (`dens` holds f on `grid`).
fn integrate(grid: &[f64], dens: &[f64], g: impl Fn(f64) -> f64) -> f64 {
    let h = grid[1] - grid[0];
    let last = grid.len() - 1;
    grid.iter()
        .zip(dens)
        .enumerate()
        .map(|(i, (u, f))| {
            let w = if i == 0 || i == last { 0.5 } else { 1.0 };
            w * h * f * g(*u)
        })
        .sum()
}

/// A z boundary turned into a critical value for a t statistic with `df` degrees of freedom
/// (same two-sided tail probability).
pub fn t_boundary(z: f64, df: f64) -> f64 {
    if !z.is_finite() {
        return f64::INFINITY;
    }
    t_quantile(normal_cdf(z), df)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_look_is_the_fixed_sample_test() {
        let b = z_boundaries(0.05, &[1.0]);
        assert!((b[0] - 1.959_964).abs() < 1e-4, "{b:?}");
        assert!((spent(0.05, 1.0) - 0.05).abs() < 1e-9);
        assert!(spent(0.05, 0.25) < 2e-5);
    }

    #[test]
    fn obrien_fleming_boundaries_match_published_values() {
        // Lan–DeMets O'Brien–Fleming-type spending, α = 0.025 per side, 2 and 4 equally spaced
        // looks: boundaries 2.963, 1.969 and 4.333, 2.963, 2.359, 2.014 (R's ldbounds,
        // `bounds(t, iuse = 1, alpha = 0.025)`, and gsDesign's sfLDOF).
        let two = z_boundaries(0.05, &[0.5, 1.0]);
        assert!((two[0] - 2.963).abs() < 0.01, "{two:?}");
        assert!((two[1] - 1.969).abs() < 0.01, "{two:?}");
        let four = z_boundaries(0.05, &[0.25, 0.5, 0.75, 1.0]);
        for (got, want) in four.iter().zip([4.333, 2.963, 2.359, 2.014]) {
            assert!((got - want).abs() < 0.01, "{four:?}");
        }
    }

    #[test]
    fn t_boundaries_are_wider_at_few_degrees_of_freedom() {
        let z = 1.959_964;
        assert!((t_boundary(z, 4.0) - 2.776).abs() < 1e-3);
        assert!(t_boundary(z, 1000.0) > z);
        assert!(t_boundary(f64::INFINITY, 5.0).is_infinite());
    }
}
