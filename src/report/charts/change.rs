//! "Config change under load" chart: for one run with actions during load, the throughput,
//! errors and p99 latency per 100 ms, with a line at each action.
//!
//! Why a time series rather than bars: the question is what happened *around* a reload or an
//! admin API change — a dip, a latency spike, lost requests — and when it recovered, which only
//! a picture over time shows. Two panels share the time axis: throughput (and errors) above,
//! p99 latency below, so a spike in one lines up with the other.

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::{FONT, LABEL_SIZE, TITLE_SIZE, series_color};
use super::{Chart, ChartKind, DrawResult, SvgArea, slug};

/// One action, as a marker on the time axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeMark {
    /// When it started, seconds after the load started.
    pub t_s: f64,
    /// Label (`reload`, `PATCH /upstreams/u1/targets/t1`, …).
    pub label: String,
    /// It failed.
    pub failed: bool,
}

/// Data of a change-under-load chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeChartData {
    /// Caption.
    pub title: String,
    /// Run folder name (unique per run), for the file name.
    pub run: String,
    /// Bucket width, seconds.
    pub bucket_s: f64,
    /// Per bucket: start (s), responses per second, errors and lost requests per second, p99 ms.
    pub points: Vec<(f64, f64, f64, Option<f64>)>,
    /// The actions.
    pub marks: Vec<ChangeMark>,
}

impl Chart for ChangeChartData {
    fn kind(&self) -> ChartKind {
        ChartKind::Change
    }

    fn size(&self) -> (u32, u32) {
        (1000, 640)
    }

    fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        let root = root.titled(&self.title, (FONT, TITLE_SIZE))?;
        let (upper, lower) = root.split_vertically(320);
        let t_max = self
            .points
            .iter()
            .map(|p| p.0 + self.bucket_s)
            .fold(1.0f64, f64::max);
        let rps_max = self.points.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
        let p99_max = self
            .points
            .iter()
            .filter_map(|p| p.3)
            .fold(1.0f64, f64::max)
            * 1.1;
        let mark_color = |m: &ChangeMark| if m.failed { RED } else { BLACK };

        let mut top = ChartBuilder::on(&upper)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..rps_max)?;
        top.configure_mesh()
            .y_desc("responses / s (errors + lost: red)")
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE))
            .draw()?;
        top.draw_series(LineSeries::new(
            self.points.iter().map(|p| (p.0, p.1)),
            series_color(0).stroke_width(2),
        ))?;
        top.draw_series(
            self.points
                .iter()
                .filter(|p| p.2 > 0.0)
                .map(|p| Rectangle::new([(p.0, 0.0), (p.0 + self.bucket_s, p.2)], RED.filled())),
        )?;
        for m in &self.marks {
            top.draw_series(LineSeries::new(
                [(m.t_s, 0.0), (m.t_s, rps_max)],
                mark_color(m).stroke_width(1),
            ))?;
            top.draw_series(std::iter::once(Text::new(
                m.label.clone(),
                (m.t_s, rps_max * 0.97),
                (FONT, LABEL_SIZE).into_font().color(&mark_color(m)),
            )))?;
        }

        let mut bottom = ChartBuilder::on(&lower)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..p99_max)?;
        bottom
            .configure_mesh()
            .x_desc("seconds after the load started")
            .y_desc("p99 latency (ms)")
            .label_style((FONT, LABEL_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE))
            .draw()?;
        bottom.draw_series(LineSeries::new(
            self.points.iter().filter_map(|p| p.3.map(|v| (p.0, v))),
            series_color(1).stroke_width(2),
        ))?;
        for m in &self.marks {
            bottom.draw_series(LineSeries::new(
                [(m.t_s, 0.0), (m.t_s, p99_max)],
                mark_color(m).stroke_width(1),
            ))?;
        }
        Ok(())
    }

    fn file_stem(&self) -> String {
        format!("change-{}", slug(&self.run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_series_and_action_marks() {
        let d = ChangeChartData {
            title: "reload@nginx · current · repeat 1: config change under load".into(),
            run: "0001-reload@nginx-current-1".into(),
            bucket_s: 0.1,
            points: (0..50)
                .map(|i| {
                    let t = i as f64 / 10.0;
                    (
                        t,
                        9000.0,
                        if i == 20 { 30.0 } else { 0.0 },
                        Some(1.0 + (i == 21) as u8 as f64 * 20.0),
                    )
                })
                .collect(),
            marks: vec![
                ChangeMark {
                    t_s: 2.0,
                    label: "reload".into(),
                    failed: false,
                },
                ChangeMark {
                    t_s: 3.5,
                    label: "PATCH /x".into(),
                    failed: true,
                },
            ],
        };
        let svg = super::super::test_support::render(&d);
        super::super::test_support::assert_texts(
            &svg,
            &[
                "reload",
                "PATCH /x",
                "p99 latency (ms)",
                "seconds after the load started",
            ],
        );
        assert_eq!(d.file_stem(), "change-0001-reload-nginx-current-1");
        super::super::test_support::assert_rerender_identical(&d, "change");
    }
}
