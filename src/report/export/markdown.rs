//! `markdown` → `compare.md`: a table per case, ready to paste into a pull-request comment.

use super::{CompareReport, Exporter, fmt_value, marker};
use crate::stats::metric_unit;

/// GitHub-flavoured Markdown, one table per case and candidate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Markdown;

/// Escapes the characters that would break a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Exporter for Markdown {
    fn file_name(&self) -> &'static str {
        "compare.md"
    }

    fn render(&self, r: &CompareReport) -> String {
        let mut out = format!(
            "## perflab: `{}` — baseline `{}`\n",
            cell(&r.suite),
            cell(&r.baseline)
        );
        for c in &r.cases {
            out.push_str(&format!(
                "\n### {} — `{}` vs `{}`\n\n",
                cell(&c.case),
                cell(&c.candidate),
                cell(&r.baseline)
            ));
            out.push_str(
                "| metric | baseline mean | candidate mean | ratio | 95% CI | MDE | verdict |\n",
            );
            out.push_str("|---|---:|---:|---:|---|---:|---|\n");
            for m in &c.metrics {
                let unit = metric_unit(&m.metric);
                let unit = if unit.is_empty() {
                    String::new()
                } else {
                    format!(" ({unit})")
                };
                out.push_str(&format!(
                    "| {}{}{} | {} | {} | {:.3} | [{:.3}, {:.3}] | {} | {} |\n",
                    if m.primary { "**" } else { "" },
                    cell(&m.metric),
                    if m.primary { format!("{unit}**") } else { unit },
                    fmt_value(m.baseline.mean),
                    fmt_value(m.candidate.mean),
                    m.ratio,
                    m.ci_low,
                    m.ci_high,
                    m.mde_pct
                        .map(|x| format!("{x:.1}%"))
                        .unwrap_or_else(|| "–".into()),
                    marker(m.verdict)
                ));
            }
            match c.metrics.iter().find(|m| m.primary) {
                Some(p) => out.push_str(&format!("\n{}", cell(&crate::report::design_line(p)))),
                None => out.push_str("\nno primary metric could be compared"),
            }
            if c.excluded_runs > 0 {
                out.push_str(&format!("; {} flagged run(s) excluded", c.excluded_runs));
            }
            out.push_str(".\n");
            for m in &c.metrics {
                for n in &m.notes {
                    out.push_str(&format!("- {}: {}\n", cell(&m.metric), n));
                }
            }
        }
        out.push_str(
            "\nRatio = geometric mean of candidate/baseline (per block of bursts in the multiplexed \
             design, per pair in the restart design), with its Student-t 95% interval. Only the \
             **primary** metric gets a verdict (sequential looks included, its false-verdict rate \
             is at most 5%); the others are estimates. MDE = the smallest slowdown the comparison \
             could have detected with 90% power: `no change` means \"smaller than the MDE\". \
             Latency percentile rows compare per-burst percentiles, not percentiles of all \
             requests. Methods: docs/statistics.md.\n",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::tests::sample;

    #[test]
    fn table_header_and_rows() {
        let md = Markdown.render(&sample());
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "## perflab: `smoke` — baseline `current`");
        assert!(
            lines.contains(&"### simple — `git:abc` vs `current`"),
            "{md}"
        );
        let header = lines
            .iter()
            .position(|l| l.starts_with("| metric |"))
            .expect("table header");
        assert_eq!(
            lines[header],
            "| metric | baseline mean | candidate mean | ratio | 95% CI | MDE | verdict |"
        );
        assert_eq!(lines[header + 1], "|---|---:|---:|---:|---|---:|---|");
        assert_eq!(
            lines[header + 2],
            "| **rps (req/s)** | 1000 | 800.0 | 0.800 | [0.800, 0.800] | 0.0% | ▼ slower |"
        );
        assert_eq!(
            lines[header + 3],
            "| latency_p99_ms (ms) | 2.000 | 2.000 | 1.000 | [1.000, 1.000] | 0.0% | = no change |"
        );
        assert!(
            md.contains("restart design: 3 pairs, Student-t interval of the mean log ratio, noise band ±2.0%; 1 flagged run(s) excluded."),
            "{md}"
        );
    }

    #[test]
    fn pipes_are_escaped() {
        let mut r = sample();
        r.cases[0].case = "a|b".into();
        assert!(Markdown.render(&r).contains("### a\\|b —"));
    }
}
