//! `bmf` → `bmf.json`: Bencher Metric Format, for tracking the candidate over time in Bencher
//! (<https://bencher.dev/docs/reference/bencher-metric-format>).
//!
//! Shape: benchmark name → measure slug → `{ value, lower_value, upper_value }`. Each metric gives
//! two measures: `<metric>` (candidate mean, with the candidate's min and max as bounds) and
//! `<metric>-ratio` (the paired ratio to the baseline, with its 95% interval as bounds).
//!
//! A single-version run ([`SuiteReport`]) gives the first kind only: the version's mean over its
//! runs, with their min and max as bounds.

use serde_json::{Map, Value, json};

use super::{CompareReport, Exporter, SuiteReport, benchmark_name};

/// Bencher Metric Format JSON for the candidate(s).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bmf;

/// A Bencher measure slug: lower-case ASCII letters, digits and `-`.
fn slug(metric: &str) -> String {
    metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

impl Exporter for Bmf {
    fn file_name(&self) -> &'static str {
        "bmf.json"
    }

    fn render(&self, r: &CompareReport) -> String {
        let mut root = Map::new();
        for c in &r.cases {
            let mut measures = Map::new();
            for m in &c.metrics {
                let s = slug(&m.metric);
                measures.insert(
                    s.clone(),
                    json!({
                        "value": m.candidate.mean,
                        "lower_value": m.candidate.min,
                        "upper_value": m.candidate.max,
                    }),
                );
                measures.insert(
                    format!("{s}-ratio"),
                    json!({ "value": m.ratio, "lower_value": m.ci_low, "upper_value": m.ci_high }),
                );
                if let Some(mde) = m.mde_pct {
                    // The smallest slowdown (percent) the comparison could have detected.
                    measures.insert(format!("{s}-mde-pct"), json!({ "value": mde }));
                }
            }
            root.insert(benchmark_name(r, c), Value::Object(measures));
        }
        pretty(root)
    }

    fn render_suite(&self, r: &SuiteReport) -> Option<String> {
        let mut root = Map::new();
        for c in &r.cases {
            let measures: Map<String, Value> = c
                .metrics
                .iter()
                .map(|m| {
                    (
                        slug(&m.metric),
                        json!({
                            "value": m.summary.mean,
                            "lower_value": m.summary.min,
                            "upper_value": m.summary.max,
                        }),
                    )
                })
                .collect();
            root.insert(c.case.clone(), Value::Object(measures));
        }
        Some(pretty(root))
    }
}

fn pretty(root: Map<String, Value>) -> String {
    let mut s = serde_json::to_string_pretty(&Value::Object(root)).expect("BMF serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::tests::sample;

    #[test]
    fn benchmark_measure_value_shape() {
        let v: Value = serde_json::from_str(&Bmf.render(&sample())).unwrap();
        let root = v.as_object().unwrap();
        assert_eq!(root.keys().collect::<Vec<_>>(), ["simple"]);
        let measures = root["simple"].as_object().unwrap();
        let mut keys: Vec<&String> = measures.keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "latency-p99-ms",
                "latency-p99-ms-mde-pct",
                "latency-p99-ms-ratio",
                "rps",
                "rps-mde-pct",
                "rps-ratio"
            ]
        );
        for (k, m) in measures {
            let mut fields: Vec<&String> = m.as_object().unwrap().keys().collect();
            fields.sort();
            if k.ends_with("-mde-pct") {
                assert_eq!(fields, ["value"]);
            } else {
                assert_eq!(fields, ["lower_value", "upper_value", "value"]);
            }
        }
        assert_eq!(measures["rps"]["value"], 800.0);
        assert_eq!(measures["latency-p99-ms-ratio"]["value"], 1.0);
    }

    #[test]
    fn single_version_gives_mean_with_min_and_max() {
        let text = Bmf
            .render_suite(&crate::report::export::tests::suite_sample())
            .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"simple": {
                "rps": {"value": 1000.0, "lower_value": 900.0, "upper_value": 1100.0},
                "latency-p99-ms": {"value": 3.0, "lower_value": 2.0, "upper_value": 4.0},
            }})
        );
    }
}
