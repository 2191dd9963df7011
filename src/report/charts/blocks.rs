//! Block chart: for one case and candidate of a multiplexed comparison, the ratio candidate /
//! baseline of every block over time, with the estimate and its interval.
//!
//! Why: the verdict rests on the block ratios being exchangeable around one value. Drawn over
//! the comparison's time, drift, a machine-wide dip caught by a few blocks, or a segment whose
//! instances differ (blocks of one colour off the line) are visible at a glance — things a single
//! interval hides.

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::{FONT, LABEL_SIZE, TITLE_SIZE, series_color};
use super::{Chart, ChartKind, DrawResult, SvgArea, slug};

/// One block: when it started, its ratio, its segment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BlockPoint {
    /// Seconds since the case's first burst.
    pub t_s: f64,
    /// exp(d) of the block: candidate / baseline.
    pub ratio: f64,
    /// Segment (colour).
    pub segment: u32,
}

/// Data of a block chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlocksChartData {
    /// Caption.
    pub title: String,
    /// Case id.
    pub case: String,
    /// Candidate label.
    pub candidate: String,
    /// The metric plotted (the primary one).
    pub metric: String,
    /// The blocks.
    pub points: Vec<BlockPoint>,
    /// The comparison's ratio.
    pub ratio: f64,
    /// Its interval.
    pub ci_low: f64,
    /// Its interval.
    pub ci_high: f64,
}

impl Chart for BlocksChartData {
    fn kind(&self) -> ChartKind {
        ChartKind::Blocks
    }

    fn size(&self) -> (u32, u32) {
        (900, 480)
    }

    fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        let finite = |v: f64| v.is_finite() && v > 0.0;
        let mut lo = 1.0f64.min(self.ci_low);
        let mut hi = 1.0f64.max(self.ci_high);
        for p in self.points.iter().filter(|p| finite(p.ratio)) {
            lo = lo.min(p.ratio);
            hi = hi.max(p.ratio);
        }
        if !(finite(lo) && finite(hi)) {
            lo = 0.9;
            hi = 1.1;
        }
        let pad = ((hi - lo) * 0.1).max(0.005);
        let t_max = self.points.iter().map(|p| p.t_s).fold(1.0f64, f64::max) * 1.05;
        let caption = format!(
            "{} — {} / baseline, {} per block",
            self.case, self.candidate, self.metric
        );
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first burst")
            .y_desc(caption.as_str())
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE))
            .draw()?;
        // The interval as a band, the estimate and 1.0 as lines.
        if finite(self.ci_low) && finite(self.ci_high) {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, self.ci_low), (t_max, self.ci_high)],
                RGBColor(200, 200, 230).mix(0.5).filled(),
            )))?;
        }
        chart.draw_series(LineSeries::new(
            [(0.0, 1.0), (t_max, 1.0)],
            BLACK.stroke_width(1),
        ))?;
        if finite(self.ratio) {
            chart.draw_series(LineSeries::new(
                [(0.0, self.ratio), (t_max, self.ratio)],
                BLUE.stroke_width(2),
            ))?;
        }
        chart.draw_series(self.points.iter().filter(|p| finite(p.ratio)).map(|p| {
            Circle::new(
                (p.t_s, p.ratio),
                4,
                series_color(p.segment as usize).filled(),
            )
        }))?;
        Ok(())
    }

    fn file_stem(&self) -> String {
        format!("blocks-{}-{}", slug(&self.case), slug(&self.candidate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_points_band_and_labels() {
        let d = BlocksChartData {
            title: "blocks".into(),
            case: "simple@nginx".into(),
            candidate: "git:B".into(),
            metric: "rps".into(),
            points: (0..10)
                .map(|i| BlockPoint {
                    t_s: 8.0 * i as f64,
                    ratio: 0.97 + 0.002 * i as f64,
                    segment: i / 3,
                })
                .collect(),
            ratio: 0.98,
            ci_low: 0.975,
            ci_high: 0.985,
        };
        let svg = super::super::render_svg_string(&d).unwrap();
        assert!(svg.contains("<circle"), "no points");
        assert!(svg.contains("seconds since the first burst"));
        assert_eq!(d.file_stem(), "blocks-simple-nginx-git-b");
        let empty = BlocksChartData {
            points: Vec::new(),
            ratio: f64::NAN,
            ..d
        };
        super::super::render_svg_string(&empty).unwrap();
    }
}
