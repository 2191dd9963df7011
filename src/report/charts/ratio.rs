//! Ratio chart (a forest plot): each comparison's candidate/baseline ratio with its confidence
//! interval, against the line of "no change" and the noise band.
//!
//! Why this picture: a verdict is only given when the whole interval clears the noise band
//! (criterion's rule), and a forest plot shows exactly that test — the reader sees at a glance
//! whether an interval lies inside the shaded band [1 − b, 1 + b], straddles its edge, or lies
//! clear of it. Colour repeats the verdict the statistics already reached; the chart does not
//! decide anything itself.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use super::common::{
    FONT, LABEL_SIZE, LegendItem, TITLE_SIZE, draw_legend, draw_text_abs, legend_height,
    text_style, text_width, truncate,
};
use super::{Chart, ChartKind, DrawResult, SvgArea, slug};

/// Data of a ratio (forest) chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioChartData {
    /// Caption.
    pub title: String,
    /// The version every ratio is relative to (the denominator).
    pub baseline: String,
    /// One row per comparison, drawn top to bottom.
    pub rows: Vec<RatioRow>,
    /// Half-width `b` of the noise band, as a fraction: 0.02 shades [0.98, 1.02].
    pub noise_band: f64,
}

/// One comparison: a ratio and its confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioRow {
    /// Row label, e.g. `"key-auth · git:main · Requests/s"`.
    pub label: String,
    /// Candidate / baseline.
    pub ratio: f64,
    /// Lower end of the ratio's confidence interval.
    pub ci_low: f64,
    /// Upper end of the ratio's confidence interval.
    pub ci_high: f64,
    /// The verdict from the statistics, e.g. `"faster"`, `"slower"`, `"no change"`; it picks
    /// the colour and is printed beside the interval.
    pub verdict: String,
}

/// The colour class of a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Faster,
    Slower,
    Same,
}

impl Class {
    fn of(verdict: &str) -> Class {
        let v = verdict.to_lowercase();
        if ["slower", "regress", "worse"].iter().any(|w| v.contains(w)) {
            Class::Slower
        } else if ["faster", "improv", "better"].iter().any(|w| v.contains(w)) {
            Class::Faster
        } else {
            Class::Same
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Class::Faster => RGBColor(0, 158, 115),
            Class::Slower => RGBColor(213, 94, 0),
            Class::Same => RGBColor(110, 110, 110),
        }
    }
}

const BAND_COLOR: RGBColor = RGBColor(220, 220, 220);
const MAX_ROW_LABEL: usize = 48;
const ROW_HEIGHT: u32 = 30;
const PLOT_WIDTH: u32 = 520;

impl RatioChartData {
    fn band(&self) -> f64 {
        if self.noise_band.is_finite() {
            self.noise_band.abs()
        } else {
            0.0
        }
    }

    fn legend(&self) -> Vec<LegendItem> {
        let mut items = vec![
            LegendItem {
                label: "faster".into(),
                color: Class::Faster.color(),
            },
            LegendItem {
                label: "slower".into(),
                color: Class::Slower.color(),
            },
            LegendItem {
                label: "no change".into(),
                color: Class::Same.color(),
            },
        ];
        if self.band() > 0.0 {
            items.push(LegendItem {
                label: format!("noise band ±{:.1}%", self.band() * 100.0),
                color: BAND_COLOR,
            });
        }
        items
    }

    fn label_width(&self) -> u32 {
        let widest = self
            .rows
            .iter()
            .map(|r| text_width(&truncate(&r.label, MAX_ROW_LABEL), LABEL_SIZE))
            .fold(60.0, f64::max);
        widest as u32 + 20
    }

    fn annotation(row: &RatioRow) -> String {
        if !row.ratio.is_finite() {
            return "n/a".to_owned();
        }
        let (lo, hi) = interval(row);
        match (lo.is_finite(), hi.is_finite()) {
            (true, true) => format!("{:.3} [{lo:.3}, {hi:.3}] {}", row.ratio, row.verdict),
            _ => format!("{:.3} {}", row.ratio, row.verdict),
        }
    }

    fn annotation_width(&self) -> u32 {
        let widest = self
            .rows
            .iter()
            .map(|r| text_width(&truncate(&Self::annotation(r), MAX_ROW_LABEL), LABEL_SIZE))
            .fold(60.0, f64::max);
        widest as u32 + 24
    }

    /// The x range: every finite ratio and interval end, 1.0 and the band, padded.
    fn x_range(&self) -> (f64, f64) {
        let b = self.band();
        let mut lo = 1.0 - b;
        let mut hi = 1.0 + b;
        for row in &self.rows {
            let (l, h) = interval(row);
            for v in [row.ratio, l, h] {
                if v.is_finite() {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
        let pad = ((hi - lo) * 0.08).max(0.02);
        (lo - pad, hi + pad)
    }
}

/// The row's interval with its ends in order.
fn interval(row: &RatioRow) -> (f64, f64) {
    if row.ci_low <= row.ci_high {
        (row.ci_low, row.ci_high)
    } else {
        (row.ci_high, row.ci_low)
    }
}

impl Chart for RatioChartData {
    fn kind(&self) -> ChartKind {
        ChartKind::Ratio
    }

    fn size(&self) -> (u32, u32) {
        let width = self.label_width() + PLOT_WIDTH + self.annotation_width();
        let rows = self.rows.len().max(3) as u32;
        let height = 150 + legend_height(&self.legend(), width) + rows * ROW_HEIGHT;
        (width, height)
    }

    fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        let area = root.titled(&self.title, (FONT, TITLE_SIZE))?.titled(
            &format!("ratio = candidate / baseline, baseline: {}", self.baseline),
            (FONT, LABEL_SIZE + 1.0),
        )?;
        let legend = self.legend();
        let (legend_area, plot_area) =
            area.split_vertically(legend_height(&legend, area.dim_in_pixel().0));
        draw_legend(&legend_area, &legend)?;

        let n = self.rows.len().max(1) as f64;
        let (xlo, xhi) = self.x_range();
        let decimals = if xhi - xlo < 0.1 { 3 } else { 2 };
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(10)
            .margin_right(self.annotation_width())
            .x_label_area_size(50)
            .y_label_area_size(self.label_width())
            .build_cartesian_2d(xlo..xhi, 0f64..n)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(format!("ratio to {}", truncate(&self.baseline, 40)))
            .x_label_formatter(&|v| format!("{v:.decimals$}"))
            .x_max_light_lines(1)
            .axis_desc_style((FONT, LABEL_SIZE))
            .label_style((FONT, LABEL_SIZE - 1.0))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;

        if self.rows.is_empty() {
            let (x, y) = chart.backend_coord(&((xlo + xhi) / 2.0, n / 2.0));
            let style = text_style(
                LABEL_SIZE,
                BLACK,
                Pos::new(HPos::Center, VPos::Center),
                FontTransform::None,
            );
            return draw_text_abs(root, "no data", &style, (x, y));
        }

        let b = self.band();
        if b > 0.0 {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(1.0 - b, 0.0), (1.0 + b, n)],
                BAND_COLOR.mix(0.6).filled(),
            )))?;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n)],
            BLACK.stroke_width(1),
        )))?;

        let label_style = text_style(
            LABEL_SIZE,
            BLACK,
            Pos::new(HPos::Right, VPos::Center),
            FontTransform::None,
        );
        for (i, row) in self.rows.iter().enumerate() {
            let y = n - i as f64 - 0.5;
            let color = Class::of(&row.verdict).color();
            let (lx, ly) = chart.backend_coord(&(xlo, y));
            draw_text_abs(
                root,
                &truncate(&row.label, MAX_ROW_LABEL),
                &label_style,
                (lx - 8, ly),
            )?;
            let (rx, ry) = chart.backend_coord(&(xhi, y));
            let note_style = text_style(
                LABEL_SIZE,
                color,
                Pos::new(HPos::Left, VPos::Center),
                FontTransform::None,
            );
            draw_text_abs(
                root,
                &truncate(&Self::annotation(row), MAX_ROW_LABEL),
                &note_style,
                (rx + 10, ry),
            )?;
            if !row.ratio.is_finite() {
                continue;
            }
            let (lo, hi) = interval(row);
            if lo.is_finite() && hi.is_finite() {
                let stroke = color.stroke_width(2);
                let cap = 0.18;
                chart.draw_series([
                    PathElement::new(vec![(lo, y), (hi, y)], stroke),
                    PathElement::new(vec![(lo, y - cap), (lo, y + cap)], stroke),
                    PathElement::new(vec![(hi, y - cap), (hi, y + cap)], stroke),
                ])?;
            }
            chart.draw_series(std::iter::once(Circle::new(
                (row.ratio, y),
                5,
                color.filled(),
            )))?;
        }
        Ok(())
    }

    fn file_stem(&self) -> String {
        format!("ratio-{}", slug(&self.title))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::charts::test_support::{assert_rerender_identical, assert_texts, render};

    fn row(label: &str, ratio: f64, lo: f64, hi: f64, verdict: &str) -> RatioRow {
        RatioRow {
            label: label.into(),
            ratio,
            ci_low: lo,
            ci_high: hi,
            verdict: verdict.into(),
        }
    }

    fn sample() -> RatioChartData {
        RatioChartData {
            title: "git:main vs 3.9.1".into(),
            baseline: "3.9.1".into(),
            rows: vec![
                row(
                    "plain proxy · git:main · Requests/s",
                    1.062,
                    1.041,
                    1.083,
                    "faster",
                ),
                row(
                    "key-auth · git:main · Requests/s",
                    0.955,
                    0.931,
                    0.972,
                    "slower",
                ),
                row(
                    "key-auth · git:main · p99 latency",
                    1.004,
                    0.987,
                    1.021,
                    "no change",
                ),
            ],
            noise_band: 0.02,
        }
    }

    #[test]
    fn svg_has_rows_baseline_band_and_verdict_colours() {
        let svg = render(&sample());
        assert_texts(
            &svg,
            &[
                "git:main vs 3.9.1",
                "plain proxy · git:main · Requests/s",
                "key-auth · git:main · Requests/s",
                "key-auth · git:main · p99 latency",
                "noise band ±2.0%",
                "ratio to 3.9.1",
                "1.062 [1.041, 1.083] faster",
            ],
        );
        assert!(svg.contains("#009E73"), "faster row drawn in green");
        assert!(svg.contains("#D55E00"), "slower row drawn in vermillion");
    }

    #[test]
    fn verdict_words_pick_colours() {
        assert_eq!(Class::of("Faster"), Class::Faster);
        assert_eq!(Class::of("regression"), Class::Slower);
        assert_eq!(Class::of("no change"), Class::Same);
        assert_eq!(Class::of("inconclusive"), Class::Same);
    }

    #[test]
    fn json_round_trips_and_rerenders_identically() {
        assert_rerender_identical(&sample(), "ratio");
    }

    #[test]
    fn degenerate_rows_render() {
        let long = "a very long case name · image:registry.example.com/kong:3.9.1-ubuntu · Requests per gateway CPU-second";
        let data = RatioChartData {
            title: "odd".into(),
            baseline: "b".into(),
            rows: vec![
                row("flat", 1.0, 1.0, 1.0, "no change"),
                row("reversed", 0.9, 0.95, 0.85, "slower"),
                row("broken", f64::NAN, f64::NAN, f64::INFINITY, "no change"),
                row(long, 1.3, f64::NAN, 1.4, "faster"),
            ],
            noise_band: f64::NAN,
        };
        let svg = render(&data);
        assert_texts(&svg, &["flat", "reversed", "broken", "n/a"]);
        assert!(!svg.contains("noise band"), "no band, no band legend");
        assert_texts(&svg, &[&truncate(long, MAX_ROW_LABEL)]);
        let (lo, hi) = data.x_range();
        assert!(lo < 0.85 && hi > 1.3 && hi.is_finite());
        let single = RatioChartData {
            rows: vec![row("same", 1.0, 1.0, 1.0, "no change")],
            noise_band: 0.0,
            ..data.clone()
        };
        let (lo, hi) = single.x_range();
        assert!(hi - lo > 0.0, "equal values still give a non-empty range");
        assert_texts(&render(&single), &["same"]);
        let empty = RatioChartData {
            rows: vec![],
            ..data
        };
        assert_texts(&render(&empty), &["no data"]);
    }

    #[test]
    fn file_stem_is_a_slug() {
        assert_eq!(sample().file_stem(), "ratio-git-main-vs-3-9-1");
    }
}
