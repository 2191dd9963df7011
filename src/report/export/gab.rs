//! `gab-bigger` → `benchmark-bigger.json` and `gab-smaller` → `benchmark-smaller.json`: input for
//! github-action-benchmark's `customBiggerIsBetter` and `customSmallerIsBetter` tools
//! (<https://github.com/benchmark-action/github-action-benchmark>).
//!
//! That action takes one tool per file, so the throughput metrics (higher is better) and the
//! latency metrics (lower is better) go to two exporters. Each entry is
//! `{ name, unit, value, range, extra }`: the candidate's mean, `± stdev`, and the comparison
//! with the baseline as text. A single-version run ([`SuiteReport`]) gives the version's mean,
//! `± stdev`, and its run count and range as `extra`.

use serde::Serialize;

use super::{CompareReport, Exporter, SuiteReport, benchmark_name, fmt_value};
use crate::stats::metric_unit;

/// Throughput metrics for `tool: customBiggerIsBetter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GabBigger;

/// Latency metrics for `tool: customSmallerIsBetter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GabSmaller;

#[derive(Serialize)]
struct Entry {
    name: String,
    unit: String,
    value: f64,
    range: String,
    extra: String,
}

fn render(r: &CompareReport, higher_is_better: bool) -> String {
    let entries: Vec<Entry> = r
        .cases
        .iter()
        .flat_map(|c| {
            c.metrics
                .iter()
                .filter(move |m| m.higher_is_better == higher_is_better)
                .map(move |m| Entry {
                    name: format!("{} / {}", benchmark_name(r, c), m.metric),
                    unit: metric_unit(&m.metric).to_string(),
                    value: m.candidate.mean,
                    range: format!("± {}", fmt_value(m.candidate.stdev)),
                    extra: format!(
                        "{} vs {}: ratio {:.4} [{:.4}, {:.4}] {}, {} {}{}",
                        c.candidate,
                        r.baseline,
                        m.ratio,
                        m.ci_low,
                        m.ci_high,
                        m.verdict,
                        m.n_pairs,
                        if m.design.is_some() {
                            "blocks"
                        } else {
                            "pairs"
                        },
                        m.mde_pct
                            .map(|x| format!(", MDE {x:.1}%"))
                            .unwrap_or_default()
                    ),
                })
        })
        .collect();
    pretty(&entries)
}

fn pretty(entries: &[Entry]) -> String {
    let mut s = serde_json::to_string_pretty(entries).expect("entries serialise");
    s.push('\n');
    s
}

fn render_suite(r: &SuiteReport, higher_is_better: bool) -> String {
    let entries: Vec<Entry> = r
        .cases
        .iter()
        .flat_map(|c| {
            c.metrics
                .iter()
                .filter(move |m| m.higher_is_better == higher_is_better)
                .map(move |m| Entry {
                    name: format!("{} / {}", c.case, m.metric),
                    unit: metric_unit(&m.metric).to_string(),
                    value: m.summary.mean,
                    range: format!("± {}", fmt_value(m.summary.stdev)),
                    extra: format!(
                        "{}: {} runs, min {}, max {}",
                        r.version,
                        m.summary.n,
                        fmt_value(m.summary.min),
                        fmt_value(m.summary.max)
                    ),
                })
        })
        .collect();
    pretty(&entries)
}

impl Exporter for GabBigger {
    fn file_name(&self) -> &'static str {
        "benchmark-bigger.json"
    }

    fn render(&self, r: &CompareReport) -> String {
        render(r, true)
    }

    fn render_suite(&self, r: &SuiteReport) -> Option<String> {
        Some(render_suite(r, true))
    }
}

impl Exporter for GabSmaller {
    fn file_name(&self) -> &'static str {
        "benchmark-smaller.json"
    }

    fn render(&self, r: &CompareReport) -> String {
        render(r, false)
    }

    fn render_suite(&self, r: &SuiteReport) -> Option<String> {
        Some(render_suite(r, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::tests::sample;
    use serde_json::Value;

    #[test]
    fn arrays_split_by_direction() {
        let r = sample();
        let big: Value = serde_json::from_str(&GabBigger.render(&r)).unwrap();
        let small: Value = serde_json::from_str(&GabSmaller.render(&r)).unwrap();
        let big = big.as_array().unwrap();
        let small = small.as_array().unwrap();
        assert_eq!((big.len(), small.len()), (1, 1));
        assert_eq!(big[0]["name"], "simple / rps");
        assert_eq!(big[0]["unit"], "req/s");
        assert_eq!(big[0]["value"], 800.0);
        assert_eq!(big[0]["range"], "± 0.000");
        assert!(
            big[0]["extra"]
                .as_str()
                .unwrap()
                .contains("slower, 3 pairs")
        );
        assert_eq!(small[0]["name"], "simple / latency_p99_ms");
        assert_eq!(small[0]["unit"], "ms");
        assert_eq!(
            small[0]["extra"],
            "git:abc vs current: ratio 1.0000 [1.0000, 1.0000] no change, 3 pairs, MDE 0.0%"
        );
    }

    #[test]
    fn single_version_entries() {
        let r = crate::report::export::tests::suite_sample();
        let big: Value = serde_json::from_str(&GabBigger.render_suite(&r).unwrap()).unwrap();
        let small: Value = serde_json::from_str(&GabSmaller.render_suite(&r).unwrap()).unwrap();
        assert_eq!(
            big,
            serde_json::json!([{
                "name": "simple / rps", "unit": "req/s", "value": 1000.0,
                "range": "± 141.4", "extra": "git:abc: 2 runs, min 900.0, max 1100"
            }])
        );
        assert_eq!(small[0]["name"], "simple / latency_p99_ms");
        assert_eq!(small[0]["value"], 3.0);
        assert_eq!(small.as_array().unwrap().len(), 1);
    }
}
