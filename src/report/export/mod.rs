//! Exporters for comparison results: one small [`Exporter`] trait, one file per format.
//!
//! # Why
//!
//! A comparison is only useful where people look: a pull-request comment (Markdown), a
//! spreadsheet (CSV), a program (JSON), or a continuous-benchmarking service (Bencher's BMF,
//! github-action-benchmark). Each format is a pure function from a [`CompareReport`] to text, so
//! `perflab report DIR` can re-render every format from stored results without re-running
//! anything, and a new format is one new file plus one variant of [`ExportFormat`].
//!
//! Every format carries the interval and the verdict, not just a point value: the verdicts come
//! from [`crate::stats::compare`] (bootstrap percentile interval of the geometric mean of paired
//! ratios, criterion's noise-band rule). Formats are documented with examples in
//! `docs/formats.md`.

use serde::{Deserialize, Serialize};

use crate::stats::{Comparison, Verdict};

mod bmf;
mod csv;
mod gab;
pub mod html;
mod json;
mod markdown;

pub use bmf::Bmf;
pub use csv::{CSV_COLUMNS, Csv};
pub use gab::{GabBigger, GabSmaller};
pub use json::{COMPARE_SCHEMA, Json};
pub use markdown::Markdown;

/// Everything a comparison report shows: one baseline against one or more candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// Suite name.
    pub suite: String,
    /// Baseline version label.
    pub baseline: String,
    /// Candidate version labels, in the order given by the user.
    pub candidates: Vec<String>,
    /// One entry per case and candidate.
    pub cases: Vec<CaseComparison>,
}

/// The comparisons of one case for one candidate against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseComparison {
    /// Case name.
    pub case: String,
    /// Candidate version label.
    pub candidate: String,
    /// One comparison per metric.
    pub metrics: Vec<Comparison>,
    /// Flagged runs (of either version) left out of these comparisons.
    pub excluded_runs: usize,
}

/// One version's figures per case: what a single-version `suite` run gives the time-series
/// formats (BMF, github-action-benchmark), so a job on `main` can feed them without comparing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteReport {
    /// Suite name.
    pub suite: String,
    /// The version that ran.
    pub version: String,
    /// One entry per case, in run order.
    pub cases: Vec<CaseFigures>,
}

/// The figures of one case over its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFigures {
    /// Case name.
    pub case: String,
    /// One entry per metric the runs have.
    pub metrics: Vec<MetricFigures>,
}

/// One metric over a case's runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricFigures {
    /// Metric name (`rps`, `latency_p99_ms`, …).
    pub metric: String,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
    /// Mean, spread and extremes over the runs.
    pub summary: crate::stats::Summary,
}

/// Renders a [`CompareReport`] in one format.
pub trait Exporter {
    /// The file name the output is conventionally written to (`compare.md`, …).
    fn file_name(&self) -> &'static str;
    /// The whole file's content.
    fn render(&self, r: &CompareReport) -> String;
    /// The file's content for a single-version run, for formats that track one version over
    /// time; `None` (the default) for formats that only describe a comparison.
    fn render_suite(&self, _r: &SuiteReport) -> Option<String> {
        None
    }
}

/// The output formats, in the order they are documented (docs/formats.md). The `match` in
/// [`ExportFormat::exporter`] is the registry; the names are clap's and serde's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// A Markdown table for a pull-request comment (`compare.md`).
    Markdown,
    /// Every figure, for programs (`compare.json`).
    Json,
    /// One row per case, candidate and metric (`compare.csv`).
    Csv,
    /// Bencher Metric Format (`bmf.json`).
    Bmf,
    /// github-action-benchmark, bigger is better (`benchmark-bigger.json`).
    GabBigger,
    /// github-action-benchmark, smaller is better (`benchmark-smaller.json`).
    GabSmaller,
}

crate::names::impl_names!(ExportFormat => "format");

impl ExportFormat {
    /// The exporter that renders this format.
    pub fn exporter(self) -> Box<dyn Exporter> {
        match self {
            ExportFormat::Markdown => Box::new(Markdown),
            ExportFormat::Json => Box::new(Json),
            ExportFormat::Csv => Box::new(Csv),
            ExportFormat::Bmf => Box::new(Bmf),
            ExportFormat::GabBigger => Box::new(GabBigger),
            ExportFormat::GabSmaller => Box::new(GabSmaller),
        }
    }

    /// Every format, in the order they are documented.
    pub fn all() -> Vec<ExportFormat> {
        <ExportFormat as clap::ValueEnum>::value_variants().to_vec()
    }
}

/// The name a case is tracked under in time-series formats (BMF, github-action-benchmark): the
/// case name, plus ` @ <candidate>` when the report has more than one candidate so names stay
/// unique.
fn benchmark_name(r: &CompareReport, c: &CaseComparison) -> String {
    if r.candidates.len() > 1 {
        format!("{} @ {}", c.case, c.candidate)
    } else {
        c.case.clone()
    }
}

/// A text marker for a verdict that needs no emoji or colour.
fn marker(v: Verdict) -> &'static str {
    match v {
        Verdict::Faster => "▲ faster",
        Verdict::Slower => "▼ slower",
        Verdict::NoChange => "= no change",
        Verdict::Inconclusive => "? inconclusive",
        Verdict::Descriptive => "· descriptive",
    }
}

/// A value with precision that suits its size (3 significant-ish digits after the point for
/// small numbers, fewer for large ones).
fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stats::compare;

    /// A report with one case, two metrics: rps 20% slower, p99 latency unchanged.
    pub(crate) fn sample() -> CompareReport {
        let rps = compare(
            "rps",
            true,
            &[1000.0, 1000.0, 1000.0],
            &[800.0, 800.0, 800.0],
            0.02,
            1,
        )
        .unwrap();
        let mut p99 = compare(
            "latency_p99_ms",
            false,
            &[2.0, 2.0, 2.0],
            &[2.0, 2.0, 2.0],
            0.02,
            1,
        )
        .unwrap();
        p99.primary = false;
        CompareReport {
            suite: "smoke".into(),
            baseline: "current".into(),
            candidates: vec!["git:abc".into()],
            cases: vec![CaseComparison {
                case: "simple".into(),
                candidate: "git:abc".into(),
                metrics: vec![rps, p99],
                excluded_runs: 1,
            }],
        }
    }

    /// One version, one case, two runs: rps 900 and 1100, p99 2 and 4 ms.
    pub(crate) fn suite_sample() -> SuiteReport {
        let figures = |metric: &str, higher_is_better, values: &[f64]| MetricFigures {
            metric: metric.into(),
            higher_is_better,
            summary: crate::stats::summarize(values).unwrap(),
        };
        SuiteReport {
            suite: "smoke".into(),
            version: "git:abc".into(),
            cases: vec![CaseFigures {
                case: "simple".into(),
                metrics: vec![
                    figures("rps", true, &[900.0, 1100.0]),
                    figures("latency_p99_ms", false, &[2.0, 4.0]),
                ],
            }],
        }
    }

    #[test]
    fn every_format_has_an_exporter_and_a_file() {
        let names: Vec<String> = ExportFormat::all().iter().map(|f| f.to_string()).collect();
        let files: Vec<(&str, &str)> = ExportFormat::all()
            .iter()
            .zip(&names)
            .map(|(f, n)| (n.as_str(), f.exporter().file_name()))
            .collect();
        assert_eq!(
            files,
            [
                ("markdown", "compare.md"),
                ("json", "compare.json"),
                ("csv", "compare.csv"),
                ("bmf", "bmf.json"),
                ("gab-bigger", "benchmark-bigger.json"),
                ("gab-smaller", "benchmark-smaller.json"),
            ]
        );
        assert!("xml".parse::<ExportFormat>().is_err());
    }

    #[test]
    fn benchmark_names_stay_unique_with_several_candidates() {
        let mut r = sample();
        assert_eq!(benchmark_name(&r, &r.cases[0]), "simple");
        r.candidates.push("git:def".into());
        assert_eq!(benchmark_name(&r, &r.cases[0]), "simple @ git:abc");
        assert_eq!(fmt_value(12345.67), "12346");
        assert_eq!(fmt_value(12.345), "12.3");
        assert_eq!(fmt_value(1.23456), "1.235");
    }
}
