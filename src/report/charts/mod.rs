//! SVG charts of benchmark results, re-renderable from the data they were drawn from.
//!
//! Why this shape: a chart is a picture of numbers the lab already computed, and the numbers are
//! the thing worth keeping. So every chart is a plain serde struct ([`RpsChartData`],
//! [`LatencyChartData`], [`RatioChartData`]) that knows how to draw itself ([`Chart`]), and
//! [`write_chart_with_data`] always writes the data as `stem.json` beside `stem.svg`. The JSON
//! carries a `"chart"` tag naming its kind, so [`rerender_dir`] can redraw every SVG in a folder
//! after the drawing code improves, without re-running a benchmark (`perflab report`).
//!
//! Charts are SVG only: plotters' SVG backend writes `<text>` elements and needs no font
//! library, which keeps the build free of fontconfig and freetype. Text widths are therefore
//! estimated, and the layout code leaves generous room.
//!
//! One file per chart: [`rps`], [`latency`], [`ratio`], [`blocks`], [`spectrum`], [`capacity`],
//! [`trend`], [`change`]; `bars` holds the grouped-bar drawing
//! the first two share and `common` the palette, legend and label helpers.

mod bars;
pub mod blocks;
pub mod capacity;
pub mod change;
mod common;
pub mod latency;
pub mod ratio;
pub mod rps;
pub mod spectrum;
pub mod trend;

pub use blocks::{BlockPoint, BlocksChartData};
pub use capacity::{CapacityChartData, CapacityPoint};
pub use change::{ChangeChartData, ChangeMark};
pub use latency::LatencyChartData;
pub use ratio::{RatioChartData, RatioRow};
pub use rps::{RpsChartData, RpsSeries};
pub use spectrum::{SpectrumChartData, SpectrumSeries};
pub use trend::{TrendChartData, TrendPoint};

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The name of the field that tags a chart data JSON file with its [`ChartKind`].
pub const CHART_TAG: &str = "chart";

/// What drawing code returns: plotters' error for the SVG backend (whose own error is I/O).
pub type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// The SVG drawing area a [`Chart`] draws on.
pub type SvgArea<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The kinds of chart, as written in the `"chart"` field of a chart's JSON data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// Throughput per case and version ([`RpsChartData`]).
    Rps,
    /// Latency percentiles per version for one case ([`LatencyChartData`]).
    Latency,
    /// Candidate/baseline ratios with confidence intervals ([`RatioChartData`]).
    Ratio,
    /// Per-block ratios of a multiplexed comparison over time ([`BlocksChartData`]).
    Blocks,
    /// Latency by percentile from merged histograms ([`SpectrumChartData`]).
    Spectrum,
    /// The latency curve of a capacity search ([`CapacityChartData`]).
    Capacity,
    /// One case's metric across stored results, per machine ([`TrendChartData`]).
    Trend,
    /// One run's load over time around its actions during load ([`ChangeChartData`]).
    Change,
}

impl ChartKind {
    /// The tag string used in JSON (`"rps"`, `"latency"`, `"ratio"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChartKind::Rps => "rps",
            ChartKind::Latency => "latency",
            ChartKind::Ratio => "ratio",
            ChartKind::Blocks => "blocks",
            ChartKind::Spectrum => "spectrum",
            ChartKind::Capacity => "capacity",
            ChartKind::Trend => "trend",
            ChartKind::Change => "change",
        }
    }
}

/// A chart: data that can draw itself onto an SVG drawing area.
pub trait Chart {
    /// Which kind of chart this is; written into the data JSON as the `"chart"` tag.
    fn kind(&self) -> ChartKind;

    /// The picture's size in pixels (width, height). Charts grow with their data (more cases,
    /// more rows) so that labels stay readable.
    fn size(&self) -> (u32, u32);

    /// Draws the chart onto `root`, which covers the whole picture.
    fn draw(&self, root: &SvgArea<'_>) -> DrawResult;

    /// A file name stem (no extension) derived from the data, for callers without one of their
    /// own; only ASCII letters, digits, `-` and `_`.
    fn file_stem(&self) -> String;
}

/// Renders `data` to an SVG document in memory.
pub fn render_svg_string<T: Chart + ?Sized>(data: &T) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, data.size()).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error(data.kind()))?;
        data.draw(&root).map_err(draw_error(data.kind()))?;
        root.present().map_err(draw_error(data.kind()))?;
    }
    Ok(svg)
}

/// Renders `data` as an SVG file at `path`, written atomically (a reader never sees half a
/// file). Parent directories are created.
pub fn render_svg<T: Chart + ?Sized>(data: &T, path: &Path) -> Result<()> {
    let svg = render_svg_string(data)?;
    crate::util::fs::atomic_write(path, svg.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Writes `dir/stem.json` (the data, tagged with its kind) and `dir/stem.svg` (the chart), each
/// atomically, and returns their paths as `(svg, json)`.
///
/// The JSON is written first: it is the source of truth, and [`rerender_dir`] can always
/// recreate the SVG from it.
pub fn write_chart_with_data<T: Chart + Serialize>(
    data: &T,
    dir: &Path,
    stem: &str,
) -> Result<(PathBuf, PathBuf)> {
    if stem.is_empty() || stem.contains(['/', '\\']) || stem == "." || stem == ".." {
        return Err(Error::Lab(format!(
            "chart file stem {stem:?} must be a plain, non-empty file name"
        )));
    }
    let json_path = dir.join(format!("{stem}.json"));
    let svg_path = dir.join(format!("{stem}.svg"));
    let json = tagged_json(data).map_err(|e| {
        Error::Lab(format!(
            "{}: cannot serialise chart data: {e}",
            json_path.display()
        ))
    })?;
    crate::util::fs::atomic_write(&json_path, json.as_bytes())
        .map_err(|e| Error::io(&json_path, e))?;
    render_svg(data, &svg_path)?;
    Ok((svg_path, json_path))
}

/// Re-renders the SVG of every chart data file directly inside `dir` (not in sub-folders) and
/// returns the SVG paths written, sorted by name.
///
/// A chart data file is a `*.json` whose top-level object has a `"chart"` field; other JSON files
/// (results, exports) are left alone. `x.json` re-renders `x.svg`. A file that is tagged as a
/// chart but cannot be read, names an unknown kind, or does not match its kind's fields is an
/// error naming the file.
pub fn rerender_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut json_files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            json_files.push(path);
        }
    }
    json_files.sort();

    let mut written = Vec::new();
    for json_path in json_files {
        let text = std::fs::read_to_string(&json_path).map_err(|e| Error::io(&json_path, e))?;
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(&text) else {
            continue; // not JSON we wrote, or not an object: not a chart
        };
        let Some(tag) = object.remove(CHART_TAG) else {
            continue;
        };
        let kind: ChartKind = serde_json::from_value(tag.clone()).map_err(|_| {
            Error::Lab(format!(
                "{}: unknown chart kind {tag} (known: \"rps\", \"latency\", \"ratio\", \"blocks\", \"spectrum\", \"capacity\", \"trend\", \"change\")",
                json_path.display()
            ))
        })?;
        let value = serde_json::Value::Object(object);
        let svg_path = json_path.with_extension("svg");
        match kind {
            ChartKind::Rps => render_svg(&parse::<RpsChartData>(value, &json_path)?, &svg_path)?,
            ChartKind::Latency => {
                render_svg(&parse::<LatencyChartData>(value, &json_path)?, &svg_path)?
            }
            ChartKind::Ratio => {
                render_svg(&parse::<RatioChartData>(value, &json_path)?, &svg_path)?
            }
            ChartKind::Blocks => {
                render_svg(&parse::<BlocksChartData>(value, &json_path)?, &svg_path)?
            }
            ChartKind::Spectrum => {
                render_svg(&parse::<SpectrumChartData>(value, &json_path)?, &svg_path)?
            }
            ChartKind::Capacity => {
                render_svg(&parse::<CapacityChartData>(value, &json_path)?, &svg_path)?
            }
            ChartKind::Trend => {
                render_svg(&parse::<TrendChartData>(value, &json_path)?, &svg_path)?
            }
            ChartKind::Change => {
                render_svg(&parse::<ChangeChartData>(value, &json_path)?, &svg_path)?
            }
        }
        written.push(svg_path);
    }
    Ok(written)
}

/// Serialises `data` as pretty JSON: the `"chart"` tag first, then the data's own fields in
/// declaration order.
fn tagged_json<T: Chart + Serialize>(data: &T) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Tagged<'a, T> {
        chart: ChartKind,
        #[serde(flatten)]
        data: &'a T,
    }
    let mut text = serde_json::to_string_pretty(&Tagged {
        chart: data.kind(),
        data,
    })?;
    text.push('\n');
    Ok(text)
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value, path: &Path) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::Lab(format!("{}: bad chart data: {e}", path.display())))
}

fn draw_error(kind: ChartKind) -> impl Fn(DrawingAreaErrorKind<std::io::Error>) -> Error {
    move |e| Error::Lab(format!("drawing {} chart: {e}", kind.as_str()))
}

/// Turns free text into a file-name-safe slug: ASCII alphanumerics kept (lower-cased), runs of
/// anything else become one `-`, at most 60 characters; `"chart"` if nothing is left.
pub(crate) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "chart".to_owned()
    } else {
        out.to_owned()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for the charts' unit tests.

    use super::*;

    /// Renders `data` to an SVG string, panicking on error. With `PERFLAB_CHART_DUMP=<dir>` set,
    /// also saves the SVG there for a visual check.
    pub fn render<T: Chart>(data: &T) -> String {
        let svg = render_svg_string(data).expect("chart renders");
        if let Ok(dir) = std::env::var("PERFLAB_CHART_DUMP") {
            let name = format!("{}-{}.svg", data.file_stem(), svg.len());
            std::fs::write(std::path::Path::new(&dir).join(name), &svg).unwrap();
        }
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        svg
    }

    /// The trimmed contents of every `<text>` element of `svg`, XML entities undone.
    pub fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|rest| {
                let body = &rest[rest.find('>')? + 1..];
                let text = body[..body.find("</text>")?].trim();
                Some(
                    text.replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&apos;", "'")
                        .replace("&amp;", "&"),
                )
            })
            .collect()
    }

    /// Asserts that each of `expected` is the whole content of some `<text>` element of `svg`.
    pub fn assert_texts(svg: &str, expected: &[&str]) {
        let found = texts(svg);
        for text in expected {
            assert!(
                found.iter().any(|t| t == text),
                "SVG has no text element {text:?}; it has {found:?}"
            );
        }
    }

    /// Writes `data` with [`write_chart_with_data`], checks the JSON's tag and round trip, deletes
    /// the SVG and checks [`rerender_dir`] writes the very same bytes back.
    pub fn assert_rerender_identical<T>(data: &T, tag: &str)
    where
        T: Chart + Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let dir = tempfile::tempdir().unwrap();
        let (svg_path, json_path) = write_chart_with_data(data, dir.path(), "chart-x").unwrap();
        assert_eq!(svg_path, dir.path().join("chart-x.svg"));
        assert_eq!(json_path, dir.path().join("chart-x.json"));

        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(json[CHART_TAG], tag);
        let back: T = serde_json::from_value(json).unwrap();
        assert_eq!(&back, data);

        let first = std::fs::read(&svg_path).unwrap();
        std::fs::remove_file(&svg_path).unwrap();
        assert_eq!(rerender_dir(dir.path()).unwrap(), vec![svg_path.clone()]);
        assert_eq!(std::fs::read(&svg_path).unwrap(), first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_rps() -> RpsChartData {
        RpsChartData {
            title: "t".into(),
            metric_label: "Requests/s".into(),
            cases: vec!["c".into()],
            series: vec![RpsSeries {
                version: "v".into(),
                means: vec![Some(1.0)],
                stdevs: vec![None],
                mins: vec![None],
                maxs: vec![None],
            }],
        }
    }

    #[test]
    fn rerender_dir_skips_other_json_and_renders_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("results.json"), r#"{"runs": []}"#).unwrap();
        std::fs::write(dir.path().join("list.json"), "[1, 2]").unwrap();
        std::fs::write(dir.path().join("broken.json"), "{not json").unwrap();
        write_chart_with_data(&small_rps(), dir.path(), "b-rps").unwrap();
        let latency = LatencyChartData {
            title: "l".into(),
            case: "c".into(),
            versions: vec!["v".into()],
            percentiles: vec!["p50".into()],
            values_ms: vec![vec![Some(1.0)]],
        };
        write_chart_with_data(&latency, dir.path(), "a-latency").unwrap();
        let written = rerender_dir(dir.path()).unwrap();
        assert_eq!(
            written,
            vec![
                dir.path().join("a-latency.svg"),
                dir.path().join("b-rps.svg")
            ]
        );
        assert!(!dir.path().join("results.svg").exists());
    }

    #[test]
    fn rerender_dir_reports_unknown_kinds_and_bad_data_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, r#"{"chart": "pie", "title": "t"}"#).unwrap();
        let err = rerender_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("x.json") && err.contains("pie"), "{err}");

        std::fs::write(&path, r#"{"chart": "ratio", "title": "t"}"#).unwrap();
        let err = rerender_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("x.json") && err.contains("bad chart data"),
            "{err}"
        );

        let missing = dir.path().join("nope");
        assert!(matches!(rerender_dir(&missing), Err(Error::Io { path, .. }) if path == missing));
    }

    #[test]
    fn json_tag_comes_first_and_stems_must_be_plain_names() {
        let dir = tempfile::tempdir().unwrap();
        let (_, json) = write_chart_with_data(&small_rps(), dir.path(), "s").unwrap();
        let text = std::fs::read_to_string(json).unwrap();
        assert!(text.starts_with("{\n  \"chart\": \"rps\","), "{text}");
        for bad in ["", "a/b", "..", "a\\b"] {
            assert!(matches!(
                write_chart_with_data(&small_rps(), dir.path(), bad),
                Err(Error::Lab(_))
            ));
        }
    }

    #[test]
    fn render_svg_writes_into_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/c.svg");
        render_svg(&small_rps(), &path).unwrap();
        assert!(std::fs::read_to_string(path).unwrap().starts_with("<svg"));
    }

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(slug("Kong 3.9 — key-auth!"), "kong-3-9-key-auth");
        assert_eq!(slug("···"), "chart");
        assert!(slug(&"x".repeat(200)).len() <= 60);
    }
}
