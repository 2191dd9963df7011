//! Latency chart: for one case, each version's latency at each percentile.
//!
//! Why grouped bars (one group per percentile, one bar per version) rather than lines: the
//! percentiles are categories, not a continuous axis, and bars keep a missing value visibly
//! missing instead of bridging it with a line. The look matches the throughput chart, so a
//! version has the same colour in both.

use serde::{Deserialize, Serialize};

use super::bars::{BarSeries, GroupedBars};
use super::{Chart, ChartKind, DrawResult, SvgArea, slug};

/// Data of a latency chart for one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyChartData {
    /// Caption.
    pub title: String,
    /// The case measured; shown under the caption.
    pub case: String,
    /// Version labels, one bar per percentile each.
    pub versions: Vec<String>,
    /// Percentile labels, e.g. `"p50"`, `"p75"`, `"p90"`, `"p99"`: one group of bars each.
    pub percentiles: Vec<String>,
    /// Latency in milliseconds, indexed `[version][percentile]`. `None` (or a missing entry)
    /// draws no bar.
    pub values_ms: Vec<Vec<Option<f64>>>,
}

/// The footnote explaining the marks.
pub const LATENCY_NOTE: &str = "bar: latency at the percentile (lower is better)";

impl LatencyChartData {
    fn bars(&self) -> GroupedBars<'_> {
        let series = self
            .versions
            .iter()
            .enumerate()
            .map(|(v, name)| BarSeries {
                name,
                values: (0..self.percentiles.len())
                    .map(|p| {
                        self.values_ms
                            .get(v)
                            .and_then(|row| row.get(p).copied().flatten())
                    })
                    .collect(),
                whiskers: Vec::new(),
            })
            .collect();
        GroupedBars {
            title: &self.title,
            subtitle: Some(&self.case),
            y_desc: "Latency (ms)",
            x_desc: "Percentile",
            note: LATENCY_NOTE.to_owned(),
            groups: &self.percentiles,
            series,
        }
    }
}

impl Chart for LatencyChartData {
    fn kind(&self) -> ChartKind {
        ChartKind::Latency
    }

    fn size(&self) -> (u32, u32) {
        self.bars().size()
    }

    fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        self.bars().draw(root)
    }

    fn file_stem(&self) -> String {
        format!("latency-{}", slug(&self.case))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::charts::test_support::{assert_rerender_identical, assert_texts, render};

    fn percentiles() -> Vec<String> {
        ["p50", "p75", "p90", "p99"].map(String::from).to_vec()
    }

    fn sample() -> LatencyChartData {
        LatencyChartData {
            title: "Latency".into(),
            case: "key-auth, 100 connections".into(),
            versions: vec!["3.9.1".into(), "git:main".into(), "image:kong:3.8".into()],
            percentiles: percentiles(),
            values_ms: vec![
                vec![Some(1.8), Some(2.4), Some(3.9), Some(11.2)],
                vec![Some(1.7), Some(2.2), None, Some(9.8)],
                vec![Some(2.1), Some(2.9), Some(4.6), Some(14.0)],
            ],
        }
    }

    #[test]
    fn svg_names_every_version_percentile_and_the_case() {
        let svg = render(&sample());
        assert_texts(
            &svg,
            &["Latency", "key-auth, 100 connections", "Latency (ms)"],
        );
        assert_texts(&svg, &["3.9.1", "git:main", "image:kong:3.8"]);
        assert_texts(&svg, &["p50", "p75", "p90", "p99", "11.2", "1.80"]);
    }

    #[test]
    fn json_round_trips_and_rerenders_identically() {
        assert_rerender_identical(&sample(), "latency");
    }

    #[test]
    fn ragged_missing_and_equal_values_render() {
        let data = LatencyChartData {
            title: "odd".into(),
            case: "c".into(),
            versions: vec!["one".into(), "two".into()],
            percentiles: percentiles(),
            // the second version has no row at all, the first is short and flat
            values_ms: vec![vec![Some(3.0), Some(3.0), None]],
        };
        assert_texts(&render(&data), &["one", "two", "p99", "3.00"]);
        let nothing = LatencyChartData {
            values_ms: vec![],
            ..data.clone()
        };
        assert_texts(&render(&nothing), &["one", "p50", "no data"]);
        let empty = LatencyChartData {
            versions: vec![],
            percentiles: vec![],
            ..data
        };
        assert_texts(&render(&empty), &["no data"]);
    }

    #[test]
    fn file_stem_names_the_case() {
        assert_eq!(sample().file_stem(), "latency-key-auth-100-connections");
    }
}
