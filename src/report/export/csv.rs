//! `csv` → `compare.csv`: one row per case, candidate and metric (RFC 4180 quoting).

use super::{CompareReport, Exporter};

/// Comma-separated values with a header row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv;

/// The header row's columns.
pub const CSV_COLUMNS: &[&str] = &[
    "case",
    "candidate",
    "metric",
    "baseline_mean",
    "candidate_mean",
    "ratio",
    "ci_low",
    "ci_high",
    "verdict",
    "n_pairs",
    "primary",
    "mde_pct",
    "method",
    "bursts",
    "segments",
    "block_sd_pct",
    "measured_s",
];

/// Quotes a field when it contains a comma, a quote or a line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Exporter for Csv {
    fn file_name(&self) -> &'static str {
        "compare.csv"
    }

    fn render(&self, r: &CompareReport) -> String {
        let mut out = CSV_COLUMNS.join(",");
        out.push('\n');
        for c in &r.cases {
            for m in &c.metrics {
                let d = m.design.as_ref();
                let row = [
                    field(&c.case),
                    field(&c.candidate),
                    field(&m.metric),
                    m.baseline.mean.to_string(),
                    m.candidate.mean.to_string(),
                    m.ratio.to_string(),
                    m.ci_low.to_string(),
                    m.ci_high.to_string(),
                    field(m.verdict.as_str()),
                    m.n_pairs.to_string(),
                    m.primary.to_string(),
                    m.mde_pct.map(|x| x.to_string()).unwrap_or_default(),
                    field(&m.method),
                    d.map(|d| d.bursts.to_string()).unwrap_or_default(),
                    d.map(|d| d.segments.to_string()).unwrap_or_default(),
                    d.map(|d| d.block_sd_pct.to_string()).unwrap_or_default(),
                    d.map(|d| d.measured_s.to_string()).unwrap_or_default(),
                ];
                out.push_str(&row.join(","));
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::tests::sample;

    #[test]
    fn header_and_columns() {
        let mut r = sample();
        r.cases[0].case = "with,comma".into();
        let text = Csv.render(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "case,candidate,metric,baseline_mean,candidate_mean,ratio,ci_low,ci_high,verdict,n_pairs,primary,mde_pct,method,bursts,segments,block_sd_pct,measured_s"
        );
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("\"with,comma\",git:abc,rps,1000,800,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[1].ends_with(",slower,3,true,0,paired-t,,,,"),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "\"with,comma\",git:abc,latency_p99_ms,2,2,1,1,1,no change,3,false,0,paired-t,,,,"
        );
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
