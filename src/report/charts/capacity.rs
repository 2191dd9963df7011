//! Capacity chart: the latency curve a `perflab capacity` search measured on its way — the
//! judged percentile at every rate tried — with the target and the rate found.
//!
//! Why: the answer of a capacity search is one number, but whether to trust it shows in the
//! curve (a knee that is sharp or gradual, a step that does not fit). Latency is log-scaled
//! because it spans orders of magnitude across the knee; passing steps are filled, failing ones
//! hollow.

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::{FONT, LABEL_SIZE, TITLE_SIZE};
use super::{Chart, ChartKind, DrawResult, SvgArea, slug};

/// One step of the search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CapacityPoint {
    /// Rate asked, requests per second.
    pub rate: f64,
    /// The judged percentile's latency, ms.
    pub latency_ms: f64,
    /// Latency and errors within their limits.
    pub passed: bool,
}

/// Data of a capacity chart for one case and version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityChartData {
    /// Caption.
    pub title: String,
    /// Case id.
    pub case: String,
    /// Version label.
    pub version: String,
    /// The judged percentile (e.g. 99).
    pub percentile: f64,
    /// The latency target, ms.
    pub target_ms: f64,
    /// The rate found (highest passing), if any.
    pub capacity_rps: Option<f64>,
    /// The steps.
    pub points: Vec<CapacityPoint>,
}

impl Chart for CapacityChartData {
    fn kind(&self) -> ChartKind {
        ChartKind::Capacity
    }

    fn size(&self) -> (u32, u32) {
        (900, 520)
    }

    fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        let pts: Vec<&CapacityPoint> = self
            .points
            .iter()
            .filter(|p| ok(p.rate) && ok(p.latency_ms))
            .collect();
        let x_max = pts.iter().map(|p| p.rate).fold(1.0f64, f64::max) * 1.1;
        let (lo, hi) = pts
            .iter()
            .map(|p| p.latency_ms)
            .chain(ok(self.target_ms).then_some(self.target_ms))
            .fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if hi > 0.0 {
            (lo / 2.0, hi * 2.0)
        } else {
            (0.1, 100.0)
        };
        let y_desc = format!("p{} latency (ms)", self.percentile);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "{} · {} — rate asked (req/s)",
                self.case, self.version
            ))
            .y_desc(y_desc.as_str())
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE))
            .draw()?;
        if ok(self.target_ms) {
            chart.draw_series(LineSeries::new(
                [(0.0, self.target_ms), (x_max, self.target_ms)],
                RED.stroke_width(1),
            ))?;
        }
        if let Some(c) = self.capacity_rps.filter(|c| ok(*c)) {
            chart.draw_series(LineSeries::new([(c, lo), (c, hi)], BLUE.stroke_width(2)))?;
        }
        let mut sorted = pts.clone();
        sorted.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        chart.draw_series(LineSeries::new(
            sorted.iter().map(|p| (p.rate, p.latency_ms)),
            BLACK.stroke_width(1),
        ))?;
        chart.draw_series(pts.iter().map(|p| {
            let style = if p.passed {
                GREEN.filled()
            } else {
                RED.stroke_width(2)
            };
            Circle::new((p.rate, p.latency_ms), 5, style)
        }))?;
        Ok(())
    }

    fn file_stem(&self) -> String {
        format!("capacity-{}-{}", slug(&self.case), slug(&self.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_steps_target_and_capacity() {
        let d = CapacityChartData {
            title: "capacity".into(),
            case: "simple-proxy@nginx".into(),
            version: "current".into(),
            percentile: 99.0,
            target_ms: 10.0,
            capacity_rps: Some(2250.0),
            points: vec![
                CapacityPoint {
                    rate: 1000.0,
                    latency_ms: 2.0,
                    passed: true,
                },
                CapacityPoint {
                    rate: 4000.0,
                    latency_ms: 80.0,
                    passed: false,
                },
            ],
        };
        let svg = super::super::render_svg_string(&d).unwrap();
        assert!(svg.contains("<circle") && svg.contains("p99 latency (ms)"));
        assert_eq!(d.file_stem(), "capacity-simple-proxy-nginx-current");
        super::super::render_svg_string(&CapacityChartData {
            points: Vec::new(),
            capacity_rps: None,
            ..d
        })
        .unwrap();
    }
}
