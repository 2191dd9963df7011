//! Percentile spectrum chart: for one case, each version's latency at every percentile, from
//! the merged latency histograms of its open-loop runs.
//!
//! Why this shape: it is the plot HdrHistogram users read (Gil Tene's "percentile
//! distribution"). The x axis is `1 / (1 − percentile)` on a log scale, so 90%, 99%, 99.9% and
//! 99.99% sit at equal distances and the tail — where stalls and queueing show — gets as much
//! room as the median. Latency is log-scaled too, so a 0.2 ms median and a 200 ms stall fit on
//! one picture. The points come from merged histograms, never from averaged percentiles.

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::{FONT, LABEL_SIZE, TITLE_SIZE, series_color};
use super::{Chart, ChartKind, DrawResult, SvgArea, slug};

/// One version's spectrum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumSeries {
    /// Version label.
    pub version: String,
    /// Requests in its merged histogram.
    pub requests: u64,
    /// `(percentile 0–100, latency ms)` points, percentiles ascending.
    pub points: Vec<(f64, f64)>,
}

/// Data of a percentile spectrum chart for one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumChartData {
    /// Caption.
    pub title: String,
    /// The case measured.
    pub case: String,
    /// One line per version.
    pub series: Vec<SpectrumSeries>,
}

/// Highest percentile drawn: 99.999% (x = 100 000).
const TOP_X: f64 = 1e5;

/// The x position of a percentile: `1 / (1 − p)`, capped at [`TOP_X`].
fn x_of(percentile: f64) -> f64 {
    (1.0 / (1.0 - percentile / 100.0)).clamp(1.0, TOP_X)
}

/// The percentile label of an x position (1 → "0%", 10 → "90%", 100 → "99%"…).
fn label_of(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let digits = (x.log10().round() as usize).saturating_sub(2);
    format!("{p:.digits$}%")
}

impl Chart for SpectrumChartData {
    fn kind(&self) -> ChartKind {
        ChartKind::Spectrum
    }

    fn size(&self) -> (u32, u32) {
        (900, 520)
    }

    fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        let lat = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite() && *v > 0.0);
        let (lo, hi) = lat.fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if hi > 0.0 {
            (lo / 1.5, hi * 1.5)
        } else {
            (0.01, 10.0)
        };
        let caption = format!("{} — latency by percentile (merged histograms)", self.case);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((1.0..TOP_X).log_scale(), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc(caption.as_str())
            .x_label_formatter(&|x| label_of(*x))
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE))
            .draw()?;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i);
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.1 > 0.0 && p.0 < 100.0)
                .map(|p| (x_of(p.0), p.1))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(format!("{} ({} requests)", s.version, s.requests))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, LABEL_SIZE))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }

    fn file_stem(&self) -> String {
        format!("spectrum-{}", slug(&self.case))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_sit_at_equal_log_distances_and_are_labelled() {
        assert_eq!(x_of(90.0).round(), 10.0);
        assert_eq!(x_of(99.0).round(), 100.0);
        assert_eq!(x_of(100.0), TOP_X);
        assert_eq!(label_of(10.0), "90%");
        assert_eq!(label_of(1000.0), "99.9%");
    }

    #[test]
    fn renders_one_line_per_version_with_the_legend() {
        let d = SpectrumChartData {
            title: "spectrum".into(),
            case: "open@nginx".into(),
            series: vec![SpectrumSeries {
                version: "current".into(),
                requests: 1000,
                points: vec![(0.0, 0.2), (50.0, 0.3), (99.0, 150.0), (100.0, 210.0)],
            }],
        };
        let svg = super::super::render_svg_string(&d).unwrap();
        assert!(svg.contains("<polyline"), "no line");
        assert!(svg.contains("current (1000 requests)"));
        assert_eq!(d.file_stem(), "spectrum-open-nginx");
    }
}
