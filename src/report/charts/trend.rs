//! Trend chart: one case's metric across stored results, oldest to newest, one line per machine.
//!
//! Why one line per machine: figures from two machines are not comparable, so `perflab history`
//! never joins them into one line; a point measured elsewhere is drawn in that machine's own
//! colour and named in the legend as another machine. Points where a comparison's verdict said
//! "slower" are ringed in red, so a step down in the line can be traced to the change that made
//! it.

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::{FONT, LABEL_SIZE, LegendItem, TITLE_SIZE, draw_legend, legend_height};
use super::{Chart, ChartKind, DrawResult, SvgArea, slug};

/// One stored result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// A short label (commit or version).
    pub label: String,
    /// The metric's mean over the result's runs.
    pub value: f64,
    /// Index into [`TrendChartData::machines`].
    pub machine: usize,
    /// A comparison said this version was slower than its baseline.
    pub slower: bool,
}

/// Data of a trend chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendChartData {
    /// Caption.
    pub title: String,
    /// Case id.
    pub case: String,
    /// Metric plotted, as labelled on the y axis.
    pub metric_label: String,
    /// Machine names for the legend; the first is the reference (newest) machine.
    pub machines: Vec<String>,
    /// Points, oldest first.
    pub points: Vec<TrendPoint>,
}

impl Chart for TrendChartData {
    fn kind(&self) -> ChartKind {
        ChartKind::Trend
    }

    fn size(&self) -> (u32, u32) {
        let w = (500 + 30 * self.points.len() as u32).clamp(700, 1600);
        (w, 460 + legend_height(&self.legend(), w))
    }

    fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        let legend = self.legend();
        let (w, h) = self.size();
        let (plot, key) = root.split_vertically(h - legend_height(&legend, w));
        let finite: Vec<f64> = self
            .points
            .iter()
            .map(|p| p.value)
            .filter(|v| v.is_finite())
            .collect();
        let hi = finite.iter().copied().fold(0.0f64, f64::max).max(1e-9) * 1.15;
        let n = self.points.len().max(1);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, (FONT, TITLE_SIZE))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..hi)?;
        chart
            .configure_mesh()
            .x_desc("stored results, oldest → newest")
            .y_desc(self.metric_label.as_str())
            .x_labels(n.min(20))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    self.points
                        .get(i as usize)
                        .map(|p| p.label.chars().take(10).collect())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE))
            .draw()?;
        for m in 0..self.machines.len() {
            let color = super::common::series_color(m);
            let pts: Vec<(f64, f64)> = self
                .points
                .iter()
                .enumerate()
                .filter(|(_, p)| p.machine == m && p.value.is_finite())
                .map(|(i, p)| (i as f64, p.value))
                .collect();
            chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
            chart.draw_series(pts.iter().map(|&xy| Circle::new(xy, 4, color.filled())))?;
        }
        chart.draw_series(
            self.points
                .iter()
                .enumerate()
                .filter(|(_, p)| p.slower && p.value.is_finite())
                .map(|(i, p)| Circle::new((i as f64, p.value), 9, RED.stroke_width(2))),
        )?;
        draw_legend(&key, &legend)
    }

    fn file_stem(&self) -> String {
        format!("trend-{}-{}", slug(&self.case), slug(&self.metric_label))
    }
}

impl TrendChartData {
    fn legend(&self) -> Vec<LegendItem> {
        let mut items: Vec<LegendItem> = self
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| LegendItem {
                label: if i == 0 {
                    format!("machine {m}")
                } else {
                    format!("other machine {m}")
                },
                color: super::common::series_color(i),
            })
            .collect();
        if self.points.iter().any(|p| p.slower) {
            items.push(LegendItem {
                label: "verdict: slower".into(),
                color: RED,
            });
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_machine_and_slower_points_ringed() {
        let point = |label: &str, value, machine, slower| TrendPoint {
            label: label.into(),
            value,
            machine,
            slower,
        };
        let d = TrendChartData {
            title: "rps: simple@nginx".into(),
            case: "simple@nginx".into(),
            metric_label: "req/s".into(),
            machines: vec!["aaaa".into(), "bbbb".into()],
            points: vec![
                point("c1", 1000.0, 0, false),
                point("c2", 990.0, 1, false),
                point("c3", 800.0, 0, true),
            ],
        };
        let svg = super::super::render_svg_string(&d).unwrap();
        let lines = |color: &str| {
            svg.split("<polyline")
                .skip(1)
                .filter(|l| l.split('>').next().unwrap().contains(color))
                .count()
        };
        // One line per machine, in the machine's colour; the two are not joined.
        assert_eq!((lines("#0072B2"), lines("#E69F00")), (1, 1), "{svg}");
        assert!(svg.contains("other machine bbbb"));
        assert!(svg.contains("verdict: slower"));
        assert_eq!(d.file_stem(), "trend-simple-nginx-req-s");
        let empty = TrendChartData {
            points: Vec::new(),
            ..d
        };
        super::super::render_svg_string(&empty).unwrap();
    }
}
