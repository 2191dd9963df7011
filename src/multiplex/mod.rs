//! The multiplexed comparison: every version's gateway up at once, load in short bursts ordered
//! in balanced blocks, instances restarted every segment, a verdict judged at planned looks.
//!
//! # Why
//!
//! Restarting a gateway for every run and running A then B seconds apart makes the two halves
//! of a pair nearly independent on a shared 2-core VM (SD of ln(B/A) 8–14%): a 5% slowdown is
//! invisible in two minutes. Keeping all versions up and alternating short bursts between them
//! makes neighbouring bursts share the machine's state (block SD ~2% with 2 s bursts), so the
//! same two minutes resolve a few percent (`reference/environment-notes.md`, "Load
//! generation"). The statistics are in [`crate::stats::blocks`],
//! [`crate::stats::sequential`] and [`crate::stats::multiplexed`]; this module plans and runs
//! the design ([`run`]), turns stored bursts back into verdicts ([`analysis`]), and measures the
//! machine beforehand ([`calibrate`]).
//!
//! Every burst is an ordinary run in the store (its `result.json` carries a [`BurstPlace`]), and
//! `design.json` beside the manifest records the design and the looks, so `perflab report`
//! re-derives every verdict from the stored data alone.
//!
//! [`BurstPlace`]: crate::result::BurstPlace

pub mod analysis;
pub mod calibrate;
pub mod run;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::Xoshiro256pp;
use crate::stats::multiplexed::Look;

/// Schema identifier of `design.json`.
pub const DESIGN_SCHEMA: &str = "perflab.design/1";
/// File name of the design record in a results folder.
pub const DESIGN_FILE: &str = "design.json";

/// The design's settings (flags of `compare`, or a calibration's choice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiplexOptions {
    /// Seconds of load per burst.
    pub burst_s: f64,
    /// Seconds after which every instance is restarted (a new segment); 0 restarts them after
    /// every block (the default: on the project's machines instances of one build differ by
    /// ~2%, so the segment — the statistical unit — should be as short as restarts allow).
    pub segment_s: f64,
    /// Wall-clock seconds per case, starts and warm-ups included.
    pub budget_s: f64,
    /// A look (a possible early verdict) after every this many segments.
    pub look_every: usize,
    /// Seed of the order coin (recorded; the same seed gives the same order).
    pub order_seed: u64,
    /// The metric that gets the verdict.
    pub primary_metric: String,
    /// Keep bursts with errors in the statistics.
    pub include_flagged: bool,
}

impl Default for MultiplexOptions {
    fn default() -> Self {
        MultiplexOptions {
            burst_s: 2.0,
            segment_s: 0.0,
            budget_s: 120.0,
            look_every: 3,
            order_seed: 1,
            primary_metric: "rps".into(),
            include_flagged: false,
        }
    }
}

impl MultiplexOptions {
    /// Checks the settings' bounds, naming the flag at fault.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |flag: &str, what: &str| Err(crate::Error::Usage(format!("{flag} {what}")));
        if !(self.burst_s.is_finite() && (1.0..=60.0).contains(&self.burst_s)) {
            return bad("--burst", "must be between 1 and 60 seconds");
        }
        if !(self.segment_s.is_finite()
            && (self.segment_s == 0.0 || (4.0 * self.burst_s..=86_400.0).contains(&self.segment_s)))
        {
            return bad(
                "--segment",
                "must be 0 (restart after every block) or at least 4 bursts long (4 × --burst)",
            );
        }
        if !(self.budget_s.is_finite() && (10.0..=86_400.0).contains(&self.budget_s)) {
            return bad("--budget", "must be between 10 s and 24 h");
        }
        if self.look_every < 1 {
            return bad("--look-every", "must be at least 1 segment");
        }
        if crate::stats::STANDARD_METRICS
            .iter()
            .all(|m| m.name != self.primary_metric)
        {
            return bad(
                "--metric",
                &format!(
                    "must be one of {}",
                    crate::stats::STANDARD_METRICS
                        .iter()
                        .map(|m| m.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        Ok(())
    }
}

/// What one case's design did: its looks, blocks and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseDesign {
    /// Looks taken, in order (the last at fraction 1 unless interrupted).
    pub looks: Vec<Look>,
    /// Complete blocks.
    pub blocks: usize,
    /// Segments started.
    pub segments: u32,
    /// Mean wall seconds per block (bursts plus switching).
    pub block_wall_s: f64,
    /// Mean seconds between bursts (the cost of switching: wrk start, parse, CPU snapshots).
    pub switch_s: f64,
    /// Seconds from the case's start to its end.
    pub wall_s: f64,
    /// Why it stopped: `decided at look N`, `budget`, `interrupted`, or the error.
    pub stopped: String,
}

/// `design.json`: the multiplexed design of a results folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesignRecord {
    /// [`DESIGN_SCHEMA`].
    pub schema: String,
    /// `multiplexed`.
    pub design: String,
    /// The settings.
    pub options: MultiplexOptions,
    /// The error rate α of the primary metric's verdict (per candidate).
    pub alpha: f64,
    /// Per case id.
    pub cases: BTreeMap<String, CaseDesign>,
}

impl DesignRecord {
    /// A new record for these settings.
    pub fn new(options: &MultiplexOptions) -> Self {
        DesignRecord {
            schema: DESIGN_SCHEMA.into(),
            design: "multiplexed".into(),
            options: options.clone(),
            alpha: crate::stats::ALPHA,
            cases: BTreeMap::new(),
        }
    }

    /// Reads `design.json` from a results folder (`None` when it has none: not multiplexed).
    pub fn load(store: &crate::store::Store) -> Option<DesignRecord> {
        let data = std::fs::read(store.root().join(DESIGN_FILE)).ok()?;
        serde_json::from_slice(&data).ok()
    }
}

/// The order of one block for `versions` versions: a random permutation followed by its
/// reverse, so every version's mean position is the same and a linear drift cancels. For two
/// versions that is the coin A B B A / B A A B (Abedi & Brecht, ICPE 2017).
pub fn balanced_order(versions: usize, rng: &mut Xoshiro256pp) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..versions).collect();
    // Fisher–Yates.
    for i in (1..versions).rev() {
        let j = rng.below(i + 1);
        perm.swap(i, j);
    }
    let mut order = perm.clone();
    order.extend(perm.iter().rev());
    order
}

/// A per-case seed from the design's seed and the case id (FNV-1a), so adding a case does not
/// change another case's order.
pub fn case_seed(seed: u64, case_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in case_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    seed ^ h
}

/// Parses a duration such as `90`, `90s`, `2m`, `1.5m`, `1h` into seconds.
pub fn parse_duration(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let v: f64 = num.trim().parse().ok()?;
    let mult = match unit.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let s = v * mult;
    (s.is_finite() && s > 0.0).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_versions_get_abba_or_baab_by_a_seeded_coin() {
        let mut rng = Xoshiro256pp::new(42);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let o = balanced_order(2, &mut rng);
            assert!(o == [0, 1, 1, 0] || o == [1, 0, 0, 1], "{o:?}");
            seen.insert(o);
        }
        assert_eq!(seen.len(), 2);
        // The same seed gives the same sequence.
        let a: Vec<Vec<usize>> = {
            let mut r = Xoshiro256pp::new(7);
            (0..10).map(|_| balanced_order(3, &mut r)).collect()
        };
        let b: Vec<Vec<usize>> = {
            let mut r = Xoshiro256pp::new(7);
            (0..10).map(|_| balanced_order(3, &mut r)).collect()
        };
        assert_eq!(a, b);
        for o in &a {
            // Mirror: mean position of every version is the same.
            assert_eq!(o.len(), 6);
            for v in 0..3 {
                let pos: usize = o
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| **x == v)
                    .map(|(i, _)| i)
                    .sum();
                assert_eq!(pos, 5, "{o:?}");
            }
        }
    }

    #[test]
    fn durations_and_bounds() {
        assert_eq!(parse_duration("2m"), Some(120.0));
        assert_eq!(parse_duration("90"), Some(90.0));
        assert_eq!(parse_duration("1.5m"), Some(90.0));
        assert_eq!(parse_duration("45s"), Some(45.0));
        assert_eq!(parse_duration("1h"), Some(3600.0));
        assert_eq!(parse_duration("inf"), None);
        assert_eq!(parse_duration("-3s"), None);
        assert_eq!(parse_duration("3 parsecs"), None);
        assert!(MultiplexOptions::default().validate().is_ok());
        let e = MultiplexOptions {
            burst_s: 0.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("--burst"), "{e}");
        let e = MultiplexOptions {
            primary_metric: "speed".into(),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("rps"), "{e}");
        assert_ne!(case_seed(1, "a"), case_seed(1, "b"));
    }
}
