//! Grouped bar drawing shared by the throughput and latency charts.
//!
//! Why shared: both charts are "one group per category, one bar per version", and readers
//! compare them side by side, so they should look alike (same colours per version position, same
//! label and legend placement). The chart files convert their data into a [`GroupedBars`] and
//! keep only what is specific to them (axis text, whiskers).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::common::{
    CategoryLabels, FONT, LABEL_SIZE, LegendItem, TITLE_SIZE, VALUE_SIZE, compact, draw_legend,
    draw_text_abs, legend_height, series_color, text_style, text_width,
};
use super::{DrawResult, SvgArea};

/// One bar per group: a version's values.
pub struct BarSeries<'a> {
    /// Legend label.
    pub name: &'a str,
    /// Bar heights per group; `None` draws no bar.
    pub values: Vec<Option<f64>>,
    /// Whisker (low, high) per group; `None` draws no whisker.
    pub whiskers: Vec<Option<(f64, f64)>>,
}

/// A grouped bar chart, ready to draw.
pub struct GroupedBars<'a> {
    /// Caption.
    pub title: &'a str,
    /// A line under the caption, if any.
    pub subtitle: Option<&'a str>,
    /// Y axis description.
    pub y_desc: &'a str,
    /// X axis description.
    pub x_desc: &'a str,
    /// Footnote under the chart (what bars and whiskers mean), may be empty.
    pub note: String,
    /// Group (category) labels.
    pub groups: &'a [String],
    /// The series, one bar each per group.
    pub series: Vec<BarSeries<'a>>,
}

const HEIGHT: u32 = 460;
const Y_LABEL_AREA: u32 = 80;
const NOTE_HEIGHT: u32 = 22;
/// Left plus right margin around the plot.
const MARGINS: u32 = 30;

impl GroupedBars<'_> {
    fn slot_width(&self) -> f64 {
        (self.series.len() as f64 * 26.0 + 34.0).max(90.0)
    }

    /// The picture width: wide enough for every group's slot, at least 800.
    fn width(&self) -> u32 {
        (f64::from(Y_LABEL_AREA + MARGINS) + self.groups.len() as f64 * self.slot_width())
            .max(800.0) as u32
    }

    /// The width in pixels one group really gets in a picture `width` wide.
    fn actual_slot(&self, width: u32) -> f64 {
        f64::from(width.saturating_sub(Y_LABEL_AREA + MARGINS)) / self.groups.len().max(1) as f64
    }

    fn labels(&self) -> CategoryLabels {
        CategoryLabels::new(self.groups, self.actual_slot(self.width()))
    }

    fn legend(&self) -> Vec<LegendItem> {
        self.series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendItem {
                label: s.name.to_owned(),
                color: series_color(i),
            })
            .collect()
    }

    /// The picture size: wide enough for every group's slot, tall enough for legend and labels.
    pub fn size(&self) -> (u32, u32) {
        let width = self.width();
        let subtitle = if self.subtitle.is_some() { 24 } else { 0 };
        let height = HEIGHT
            + subtitle
            + legend_height(&self.legend(), width)
            + self.labels().height()
            + NOTE_HEIGHT;
        (width, height)
    }

    /// The value at `(series, group)`, if present and finite.
    fn value(&self, s: usize, g: usize) -> Option<f64> {
        self.series[s]
            .values
            .get(g)
            .copied()
            .flatten()
            .filter(|v| v.is_finite())
    }

    fn whisker(&self, s: usize, g: usize) -> Option<(f64, f64)> {
        self.series[s]
            .whiskers
            .get(g)
            .copied()
            .flatten()
            .filter(|(lo, hi)| lo.is_finite() && hi.is_finite())
    }

    /// The lowest and highest value any bar or whisker reaches (0 is always included).
    fn extent(&self) -> (f64, f64) {
        let mut lo: f64 = 0.0;
        let mut hi: f64 = 0.0;
        for s in 0..self.series.len() {
            for g in 0..self.groups.len() {
                for v in self.value(s, g).into_iter().chain(
                    self.whisker(s, g)
                        .into_iter()
                        .flat_map(|(a, b)| [a, b].into_iter()),
                ) {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
        if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
            hi = lo + 1.0; // nothing but zeros: any non-empty range will do
        }
        (lo, hi)
    }

    /// Draws the chart onto the whole of `root`.
    pub fn draw(&self, root: &SvgArea<'_>) -> DrawResult {
        let mut area = root.titled(self.title, (FONT, TITLE_SIZE))?;
        if let Some(subtitle) = self.subtitle {
            area = area.titled(subtitle, (FONT, LABEL_SIZE + 1.0))?;
        }
        let (width, _) = area.dim_in_pixel();
        let legend = self.legend();
        let (legend_area, rest) = area.split_vertically(legend_height(&legend, width));
        draw_legend(&legend_area, &legend)?;
        let (_, rest_h) = rest.dim_in_pixel();
        let (plot_area, note_area) = rest.split_vertically(rest_h.saturating_sub(NOTE_HEIGHT));
        note_area.draw_text(
            &self.note,
            &text_style(
                LABEL_SIZE - 1.0,
                RGBColor(90, 90, 90),
                Pos::new(HPos::Center, VPos::Center),
                FontTransform::None,
            ),
            (width as i32 / 2, NOTE_HEIGHT as i32 / 2),
        )?;

        let labels = self.labels();
        let x_label_area = labels.height() + 26;
        let n = self.groups.len().max(1);
        let bar_w = 0.8 / self.series.len().max(1) as f64;
        let (lo, hi) = self.extent();

        // Leave room above the tallest bar for its value label, which may be rotated.
        let plot_h = f64::from(plot_area.dim_in_pixel().1) - f64::from(x_label_area) - 20.0;
        let slot_px = self.actual_slot(width) * bar_w;
        let rotate_values = text_width("000.0k", VALUE_SIZE) > slot_px;
        let label_px = if rotate_values {
            text_width("000.0k", VALUE_SIZE) + 8.0
        } else {
            VALUE_SIZE + 8.0
        };
        let headroom = (label_px / plot_h.max(100.0)).min(0.5);
        let top = lo + (hi - lo) / (1.0 - headroom);

        let mut chart = ChartBuilder::on(&plot_area)
            .margin(10)
            .margin_right(20)
            .x_label_area_size(x_label_area)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(0f64..n as f64, lo..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(self.y_desc)
            .x_desc(self.x_desc)
            .y_label_formatter(&|v| compact(*v))
            .y_max_light_lines(1)
            .axis_desc_style((FONT, LABEL_SIZE))
            .label_style((FONT, LABEL_SIZE - 1.0))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;

        for g in 0..self.groups.len() {
            let (x, y) = chart.backend_coord(&(g as f64 + 0.5, lo));
            labels.draw(root, g, (x, y))?;
        }

        let any_value = (0..self.series.len())
            .any(|s| (0..self.groups.len()).any(|g| self.value(s, g).is_some()));
        if !any_value {
            let (x, y) = chart.backend_coord(&(n as f64 / 2.0, (lo + top) / 2.0));
            let style = text_style(
                LABEL_SIZE,
                BLACK,
                Pos::new(HPos::Center, VPos::Center),
                FontTransform::None,
            );
            return draw_text_abs(root, "no data", &style, (x, y));
        }

        let value_style = if rotate_values {
            text_style(
                VALUE_SIZE,
                BLACK,
                Pos::new(HPos::Left, VPos::Center),
                FontTransform::Rotate270,
            )
        } else {
            text_style(
                VALUE_SIZE,
                BLACK,
                Pos::new(HPos::Center, VPos::Bottom),
                FontTransform::None,
            )
        };
        let base = 0f64.clamp(lo, top);
        for g in 0..self.groups.len() {
            for s in 0..self.series.len() {
                let x0 = g as f64 + 0.1 + s as f64 * bar_w;
                let xc = x0 + bar_w / 2.0;
                let color = series_color(s);
                let Some(v) = self.value(s, g) else {
                    continue;
                };
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0 + bar_w * 0.08, base), (x0 + bar_w * 0.92, v)],
                    color.filled(),
                )))?;
                let mut label_top = v.max(base);
                if let Some((wlo, whi)) = self.whisker(s, g) {
                    let half = bar_w * 0.22;
                    let stroke = BLACK.stroke_width(1);
                    chart.draw_series([
                        PathElement::new(vec![(xc, wlo), (xc, whi)], stroke),
                        PathElement::new(vec![(xc - half, wlo), (xc + half, wlo)], stroke),
                        PathElement::new(vec![(xc - half, whi), (xc + half, whi)], stroke),
                    ])?;
                    label_top = label_top.max(whi);
                }
                let (px, py) = chart.backend_coord(&(xc, label_top));
                draw_text_abs(root, &compact(v), &value_style, (px, py - 4))?;
            }
        }
        Ok(())
    }
}
