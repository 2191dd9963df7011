//! Drawing helpers shared by the charts: colours, text sizing, legend, category labels.
//!
//! Why hand-made labels and legend: plotters places axis labels at "nice" numeric ticks and its
//! series legend sits inside the plot, over the data. Categories (cases, percentiles, rows) need
//! one label per slot, rotated when they are long, and a legend that never hides a bar. Text
//! widths are estimates (no font library), so everything here errs on the side of room.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{DrawResult, SvgArea};

/// Font family for all chart text.
pub const FONT: &str = "sans-serif";
/// Caption font size.
pub const TITLE_SIZE: f64 = 22.0;
/// Axis, legend and category label font size.
pub const LABEL_SIZE: f64 = 13.0;
/// Value label font size.
pub const VALUE_SIZE: f64 = 11.0;
/// Labels longer than this many characters are cut and end in `…`.
pub const MAX_LABEL_CHARS: usize = 40;

/// Series colours: the colour-blind-safe Okabe–Ito set first (yellow dropped: too pale on
/// white), then darker distinct hues for charts with many versions.
const SERIES: [RGBColor; 12] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(60, 60, 60),
    RGBColor(0, 60, 120),
    RGBColor(130, 120, 0),
    RGBColor(120, 60, 160),
    RGBColor(140, 80, 40),
    RGBColor(0, 120, 120),
];

/// The colour of the `i`-th series; cycles after twelve.
pub fn series_color(i: usize) -> RGBColor {
    SERIES[i % SERIES.len()]
}

/// Estimated width in pixels of `text` at `size`. The SVG backend writes `font-size` as
/// `size / 1.24`, and a sans-serif character averages about 0.55 em, so 0.45 × `size` per
/// character is typical; 0.52 leaves room for wide glyphs.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.52
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A number in a short form for value labels: `123.4k`, `1.23M`, `987`, `12.3`, `1.23`.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A text style of `size` in `color`, anchored at `pos`, rotated by `transform`.
pub fn text_style(
    size: f64,
    color: RGBColor,
    pos: Pos,
    transform: FontTransform,
) -> TextStyle<'static> {
    TextStyle {
        font: (FONT, size).into_font().transform(transform),
        color: color.to_backend_color(),
        pos,
    }
}

/// Draws `text` on `area` at a position given in backend (whole-picture) pixels.
pub fn draw_text_abs(
    area: &SvgArea<'_>,
    text: &str,
    style: &TextStyle<'_>,
    (x, y): (i32, i32),
) -> DrawResult {
    let (xr, yr) = area.get_pixel_range();
    area.draw_text(text, style, (x - xr.start, y - yr.start))
}

/// One legend entry: a colour swatch and its label.
pub struct LegendItem {
    /// The label (truncated when drawn).
    pub label: String,
    /// The swatch colour.
    pub color: RGBColor,
}

const SWATCH: i32 = 12;
const ITEM_GAP: i32 = 22;
const ROW_HEIGHT: i32 = 20;

fn item_width(item: &LegendItem) -> i32 {
    SWATCH + 6 + text_width(&truncate(&item.label, MAX_LABEL_CHARS), LABEL_SIZE) as i32 + ITEM_GAP
}

/// Lays legend items into rows that fit `width` pixels; returns the rows as index lists.
fn legend_rows(items: &[LegendItem], width: i32) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for (i, item) in items.iter().enumerate() {
        let w = item_width(item);
        match rows.last_mut() {
            Some(row) if used + w <= width => row.push(i),
            _ => {
                rows.push(vec![i]);
                used = 0;
            }
        }
        used += w;
    }
    rows
}

/// The height in pixels a legend of `items` needs when laid out across `width` pixels.
pub fn legend_height(items: &[LegendItem], width: u32) -> u32 {
    let rows = legend_rows(items, width as i32 - 40).len() as u32;
    if rows == 0 {
        0
    } else {
        rows * ROW_HEIGHT as u32 + 10
    }
}

/// Draws the legend into `area` (as tall as [`legend_height`] said), rows centred.
pub fn draw_legend(area: &SvgArea<'_>, items: &[LegendItem]) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let style = text_style(
        LABEL_SIZE,
        BLACK,
        Pos::new(HPos::Left, VPos::Center),
        FontTransform::None,
    );
    for (r, row) in legend_rows(items, w as i32 - 40).iter().enumerate() {
        let total: i32 = row.iter().map(|&i| item_width(&items[i])).sum::<i32>() - ITEM_GAP;
        let mut x = (w as i32 - total) / 2;
        let y = 5 + r as i32 * ROW_HEIGHT + ROW_HEIGHT / 2;
        for &i in row {
            let item = &items[i];
            area.draw(&Rectangle::new(
                [(x, y - SWATCH / 2), (x + SWATCH, y + SWATCH / 2)],
                item.color.filled(),
            ))?;
            area.draw_text(
                &truncate(&item.label, MAX_LABEL_CHARS),
                &style,
                (x + SWATCH + 6, y),
            )?;
            x += item_width(item);
        }
    }
    Ok(())
}

/// How category labels under an x axis are drawn: flat when they fit their slot, else rotated.
pub struct CategoryLabels {
    /// The labels, already truncated.
    pub labels: Vec<String>,
    /// Whether they are drawn rotated (reading upwards).
    pub rotated: bool,
}

impl CategoryLabels {
    /// Decides the layout of `labels` for slots `slot_width` pixels wide.
    pub fn new(labels: &[String], slot_width: f64) -> Self {
        let labels: Vec<String> = labels
            .iter()
            .map(|l| truncate(l, MAX_LABEL_CHARS))
            .collect();
        let widest = labels
            .iter()
            .map(|l| text_width(l, LABEL_SIZE))
            .fold(0.0, f64::max);
        CategoryLabels {
            rotated: widest > slot_width * 0.95,
            labels,
        }
    }

    /// The height in pixels the labels need below the axis.
    pub fn height(&self) -> u32 {
        if self.rotated {
            let widest = self
                .labels
                .iter()
                .map(|l| text_width(l, LABEL_SIZE))
                .fold(0.0, f64::max);
            widest as u32 + 16
        } else {
            LABEL_SIZE as u32 + 16
        }
    }

    /// Draws label `i` with its slot centred at backend x `x` and the axis at backend y `y`.
    pub fn draw(&self, area: &SvgArea<'_>, i: usize, (x, y): (i32, i32)) -> DrawResult {
        let (pos, transform) = if self.rotated {
            (
                Pos::new(HPos::Right, VPos::Center),
                FontTransform::Rotate270,
            )
        } else {
            (Pos::new(HPos::Center, VPos::Top), FontTransform::None)
        };
        let style = text_style(LABEL_SIZE, BLACK, pos, transform);
        draw_text_abs(area, &self.labels[i], &style, (x, y + 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_and_cuts_long_labels() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("abcdefghijkl", 5);
        assert_eq!(cut, "abcd…");
        assert_eq!(cut.chars().count(), 5);
    }

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(123_456.0), "123.5k");
        assert_eq!(compact(2_500_000.0), "2.50M");
        assert_eq!(compact(987.2), "987");
        assert_eq!(compact(5000.0), "5.00k");
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(12.34), "12.3");
        assert_eq!(compact(1.234), "1.23");
    }

    #[test]
    fn legend_wraps_into_rows() {
        let items: Vec<LegendItem> = (0..12)
            .map(|i| LegendItem {
                label: format!("version-{i}"),
                color: series_color(i),
            })
            .collect();
        assert!(legend_height(&items, 300) > legend_height(&items, 3000));
        assert_eq!(legend_height(&[], 800), 0);
    }

    #[test]
    fn long_category_labels_rotate() {
        let short = CategoryLabels::new(&["a".into(), "b".into()], 100.0);
        assert!(!short.rotated);
        let long = CategoryLabels::new(&["a very long case name indeed".into()], 100.0);
        assert!(long.rotated);
        assert!(long.height() > short.height());
    }
}
