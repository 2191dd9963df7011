//! Throughput chart: one group of bars per case, one bar per version.
//!
//! Why min–max whiskers rather than ±stdev: a suite usually repeats a case only a few times, and
//! with three or five runs a standard deviation is itself a noisy estimate, while the range shows
//! exactly what was measured (every run lies inside the whisker). The bar is the mean; the
//! footnote under the chart says so. Standard deviations stay in the data file for readers and
//! other reports.

use serde::{Deserialize, Serialize};

use super::bars::{BarSeries, GroupedBars};
use super::{Chart, ChartKind, DrawResult, SvgArea, slug};

/// Data of a throughput chart: per case, the mean (and spread) of each version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpsChartData {
    /// Caption.
    pub title: String,
    /// Y axis label, e.g. `"Requests/s"` or `"Requests per gateway CPU-second"`.
    pub metric_label: String,
    /// Case names, one group of bars each.
    pub cases: Vec<String>,
    /// One series per version.
    pub series: Vec<RpsSeries>,
}

/// One version's numbers, each vector indexed like [`RpsChartData::cases`]. `None` (or a
/// missing entry) means "not measured": no bar, or no whisker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpsSeries {
    /// Version label shown in the legend.
    pub version: String,
    /// Mean per case: the bar height.
    pub means: Vec<Option<f64>>,
    /// Standard deviation per case (kept in the data; not drawn).
    #[serde(default)]
    pub stdevs: Vec<Option<f64>>,
    /// Lowest run per case: the whisker's lower end.
    #[serde(default)]
    pub mins: Vec<Option<f64>>,
    /// Highest run per case: the whisker's upper end.
    #[serde(default)]
    pub maxs: Vec<Option<f64>>,
}

/// The footnote explaining the marks.
pub const RPS_NOTE: &str = "bar: mean of runs · whisker: min–max of runs";

impl RpsChartData {
    fn bars(&self) -> GroupedBars<'_> {
        let series = self
            .series
            .iter()
            .map(|s| BarSeries {
                name: &s.version,
                values: s.means.clone(),
                whiskers: (0..self.cases.len())
                    .map(|i| {
                        let lo = s.mins.get(i).copied().flatten()?;
                        let hi = s.maxs.get(i).copied().flatten()?;
                        Some((lo.min(hi), lo.max(hi)))
                    })
                    .collect(),
            })
            .collect();
        GroupedBars {
            title: &self.title,
            subtitle: None,
            y_desc: &self.metric_label,
            x_desc: "Case",
            note: RPS_NOTE.to_owned(),
            groups: &self.cases,
            series,
        }
    }
}

impl Chart for RpsChartData {
    fn kind(&self) -> ChartKind {
        ChartKind::Rps
    }

    fn size(&self) -> (u32, u32) {
        self.bars().size()
    }

    fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        self.bars().draw(root)
    }

    fn file_stem(&self) -> String {
        format!("rps-{}", slug(&self.title))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::charts::test_support::{assert_rerender_identical, assert_texts, render};

    fn sample() -> RpsChartData {
        RpsChartData {
            title: "Throughput, proxy suite".into(),
            metric_label: "Requests/s".into(),
            cases: vec![
                "plain proxy".into(),
                "key-auth".into(),
                "rate-limiting".into(),
            ],
            series: vec![
                RpsSeries {
                    version: "3.9.1".into(),
                    means: vec![Some(41_200.0), Some(30_500.0), Some(22_100.0)],
                    stdevs: vec![Some(800.0), Some(500.0), Some(300.0)],
                    mins: vec![Some(40_100.0), Some(29_900.0), Some(21_700.0)],
                    maxs: vec![Some(42_300.0), Some(31_200.0), Some(22_600.0)],
                },
                RpsSeries {
                    version: "git:main".into(),
                    means: vec![Some(43_900.0), None, Some(21_000.0)],
                    stdevs: vec![Some(900.0), None, Some(400.0)],
                    mins: vec![Some(42_800.0), None, Some(20_500.0)],
                    maxs: vec![Some(45_000.0), None, Some(21_600.0)],
                },
            ],
        }
    }

    #[test]
    fn svg_names_every_version_and_case() {
        let data = sample();
        let svg = render(&data);
        assert_texts(
            &svg,
            &["Throughput, proxy suite", "Requests/s", "3.9.1", "git:main"],
        );
        assert_texts(
            &svg,
            &["plain proxy", "key-auth", "rate-limiting", RPS_NOTE],
        );
        // value label of a present bar; the missing one has none
        assert_texts(&svg, &["41.2k", "43.9k"]);
    }

    #[test]
    fn json_round_trips_and_rerenders_identically() {
        assert_rerender_identical(&sample(), "rps");
    }

    #[test]
    fn single_version_equal_values_and_missing_data_render() {
        let data = RpsChartData {
            title: "flat".into(),
            metric_label: "Requests/s".into(),
            cases: vec!["a".into(), "b".into(), "c".into()],
            series: vec![RpsSeries {
                version: "only".into(),
                means: vec![Some(5.0), Some(5.0)], // shorter than cases
                stdevs: vec![],
                mins: vec![Some(5.0), None],
                maxs: vec![Some(5.0), Some(f64::NAN)],
            }],
        };
        assert_texts(&render(&data), &["only", "a", "b", "c", "5.00"]);
        let zeros = RpsChartData {
            series: vec![RpsSeries {
                version: "zero".into(),
                means: vec![Some(0.0), None, None],
                stdevs: vec![],
                mins: vec![],
                maxs: vec![],
            }],
            ..data.clone()
        };
        assert_texts(&render(&zeros), &["zero"]);
        let empty = RpsChartData {
            cases: vec![],
            series: vec![],
            ..data
        };
        assert_texts(&render(&empty), &["no data"]);
    }

    #[test]
    fn many_cases_and_long_labels_widen_and_rotate() {
        let cases: Vec<String> = (0..30)
            .map(|i| format!("case number {i} with a rather long descriptive name that goes on"))
            .collect();
        let series = (0..9)
            .map(|v| RpsSeries {
                version: format!("v{v}"),
                means: (0..30).map(|c| Some(1000.0 + (c * v) as f64)).collect(),
                stdevs: vec![],
                mins: vec![],
                maxs: vec![],
            })
            .collect();
        let data = RpsChartData {
            title: "wide".into(),
            metric_label: "Requests/s".into(),
            cases,
            series,
        };
        let (w, _) = data.size();
        assert!(
            w > 3000,
            "30 cases × 9 versions should widen the chart, got {w}"
        );
        let svg = render(&data);
        assert!(svg.contains("rotate(270"), "long case labels are rotated");
        assert!(svg.contains("case number 29 with a rather long descr…"));
        assert_texts(&svg, &["v0", "v8"]);
    }

    #[test]
    fn file_stem_is_a_slug() {
        assert_eq!(sample().file_stem(), "rps-throughput-proxy-suite");
    }
}
