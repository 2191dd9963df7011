//! `report.html`: the whole results folder on one page — summary table, comparison tables with
//! their verdicts, intervals and detectable effects, the charts, links to the flame graphs, the
//! environment fingerprint and the exact commands.
//!
//! # Why
//!
//! A results folder uploaded as a CI artifact is opened by someone who has no perflab at hand,
//! often in a browser that may not reach the internet. So the page is one self-contained file:
//! inline CSS, no script, no font or CDN, and the charts embedded as `data:` URIs of the very
//! SVGs in `charts/` (an `<img>` keeps each SVG isolated: a chart can never break the page's
//! markup). Flame graphs are interactive SVGs with their own scripts; they stay files in
//! `flamegraphs/` and the page links to them by relative path, which works wherever the folder
//! is unpacked.
//!
//! Unlike the other exporters this one needs more than a [`CompareReport`] (a single-version
//! suite has no comparison but still gets a page), so its input is an [`HtmlPage`]; it is
//! rendered by [`crate::report::render_all`] into every results folder.

use std::fmt::Write as _;

use base64::Engine as _;

use super::{CompareReport, fmt_value, marker};
use crate::stats::{CombinedRuns, Verdict, metric_unit};
use crate::store::Manifest;

/// The file name of the page in a results folder.
pub const FILE_NAME: &str = "report.html";

/// Everything the page shows. Built by [`crate::report::render_all`] from the store.
#[derive(Debug, Clone, Default)]
pub struct HtmlPage<'a> {
    /// Suite name.
    pub suite: &'a str,
    /// The results folder, as the commands on the page should name it.
    pub folder: String,
    /// The manifest, if the folder has one (imported or very old folders may not).
    pub manifest: Option<&'a Manifest>,
    /// The combined figures of every case and version.
    pub rows: &'a [CombinedRuns],
    /// The comparison, when more than one version ran.
    pub compare: Option<&'a CompareReport>,
    /// Charts to embed: (file name in `charts/`, SVG text), in display order.
    pub charts: Vec<(String, String)>,
    /// Flame graph file names in `flamegraphs/`, linked by relative path.
    pub flamegraphs: Vec<String>,
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The CSS class of a verdict cell (colour plus the text marker, so it reads without colour).
fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Faster => "faster",
        Verdict::Slower => "slower",
        Verdict::NoChange => "same",
        Verdict::Inconclusive | Verdict::Descriptive => "muted",
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1400px}\
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem}\
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.slower{background:#fbe3e3;font-weight:bold}.faster{background:#e2f4e2;font-weight:bold}\
.same{background:#eef}.muted{color:#666}.primary{font-weight:bold}\
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto}figure{margin:1rem 0}\
img.chart{max-width:100%;height:auto;border:1px solid #ddd}figcaption{color:#555}\
p.note{color:#555;font-size:.9rem}";

/// The document's start, up to and including the page heading.
fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(title)
    )
}

/// The charts, each embedded as a `data:` URI of its SVG, captioned with its file in `charts/`.
fn charts_section(h: &mut String, charts: &[(String, String)]) {
    if charts.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"charts\">Charts</h2>\n");
    for (name, svg) in charts {
        let data = base64::engine::general_purpose::STANDARD.encode(svg.as_bytes());
        let _ = writeln!(
            h,
            "<figure><img class=\"chart\" alt=\"{n}\" src=\"data:image/svg+xml;base64,{data}\">\
             <figcaption>charts/{n}</figcaption></figure>",
            n = escape(name)
        );
    }
}

/// Renders the page of `perflab history`: the machines, every point with its verdict, and the
/// trend charts.
pub fn render_history(
    history: &crate::report::history::History,
    charts: Vec<(String, String)>,
) -> String {
    let mut h = head("perflab history");
    let mut machines: Vec<(&str, &str)> = Vec::new();
    for p in history.points.iter().rev() {
        if !machines.iter().any(|(m, _)| *m == p.machine) {
            machines.push((&p.machine, &p.machine_description));
        }
    }
    h.push_str("<h2 id=\"machines\">Machines</h2>\n<ul>\n");
    for (i, (id, desc)) in machines.iter().enumerate() {
        let _ = writeln!(
            h,
            "<li><code>{}</code>{}: {}</li>",
            escape(id),
            if i == 0 {
                " (the newest result's: the reference)"
            } else {
                " (another machine: its results are not comparable and are drawn apart)"
            },
            escape(desc)
        );
    }
    h.push_str("</ul>\n");
    h.push_str(
        "<h2 id=\"results\">Results</h2>\n<table class=\"history\">\n<tr><th>started</th>\
         <th>case</th><th>version</th><th>commit</th><th>machine</th><th>runs</th>\
         <th>req/s</th><th>CV</th><th>p99 ms*</th><th>verdict</th><th>folder</th></tr>\n",
    );
    for p in &history.points {
        let _ = writeln!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code>{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{:.0}</td><td class=\"n\">{:.1}%</td>\
             <td class=\"n\">{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            if p.other_machine {
                " class=\"muted\""
            } else {
                ""
            },
            escape(&crate::util::time::timestamp(p.started_unix_s)),
            escape(&p.case),
            escape(&p.version),
            escape(p.commit.as_deref().unwrap_or("–")),
            escape(&p.machine),
            if p.other_machine {
                " (other machine)"
            } else {
                ""
            },
            p.runs,
            p.rps,
            100.0 * p.rps_cv,
            p.latency_p99_ms
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "–".into()),
            p.verdict.map(verdict_class).unwrap_or(""),
            p.verdict.map(|v| escape(marker(v))).unwrap_or_default(),
            escape(&p.folder.display().to_string())
        );
    }
    h.push_str(
        "</table>\n<p class=\"note\">* mean over runs of each run's own p99. Verdicts are the \
         primary metric's, against the baseline of the same folder.</p>\n",
    );
    charts_section(&mut h, &charts);
    if !history.skipped.is_empty() {
        h.push_str("<h2 id=\"skipped\">Skipped folders</h2>\n<ul>\n");
        for (f, why) in &history.skipped {
            let _ = writeln!(
                h,
                "<li>{}: {}</li>",
                escape(&f.display().to_string()),
                escape(why)
            );
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// Renders the page.
pub fn render(p: &HtmlPage) -> String {
    let title = format!("perflab results: {}", p.suite);
    let mut h = head(&title);
    if let Some(m) = p.manifest {
        let _ = writeln!(
            h,
            "<p id=\"status\">{} · driver <code>{}</code> · versions {} · status <b>{}</b> · started {}</p>",
            escape(&m.kind.to_string()),
            escape(&m.driver.to_string()),
            m.versions
                .iter()
                .map(|v| format!("<code>{}</code>", escape(v)))
                .collect::<Vec<_>>()
                .join(", "),
            escape(&m.status),
            escape(&crate::util::time::timestamp(m.started_unix_s))
        );
    }
    if let Some(cr) = p.compare {
        comparison(&mut h, cr);
    }
    summary(&mut h, p.rows);
    charts_section(&mut h, &p.charts);
    if !p.flamegraphs.is_empty() {
        h.push_str("<h2 id=\"flamegraphs\">Flame graphs</h2>\n<ul>\n");
        for f in &p.flamegraphs {
            let _ = writeln!(
                h,
                "<li><a href=\"flamegraphs/{f}\">{f}</a></li>",
                f = escape(f)
            );
        }
        h.push_str("</ul>\n");
    }
    commands(&mut h, p);
    if let Some(fp) = p.manifest.and_then(|m| m.fingerprint.as_ref()) {
        // Shown as recorded: every field, whatever the driver added.
        fingerprint(&mut h, &serde_json::to_value(fp).unwrap_or_default());
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// One table per case and candidate: every metric with its ratio, interval, MDE and verdict.
fn comparison(h: &mut String, cr: &CompareReport) {
    let _ = writeln!(
        h,
        "<h2 id=\"comparison\">Comparison against <code>{}</code></h2>",
        escape(&cr.baseline)
    );
    for c in &cr.cases {
        let _ = writeln!(
            h,
            "<h3>{} — <code>{}</code> vs <code>{}</code></h3>",
            escape(&c.case),
            escape(&c.candidate),
            escape(&cr.baseline)
        );
        h.push_str(
            "<table class=\"compare\">\n<tr><th>metric</th><th>baseline mean</th>\
             <th>candidate mean</th><th>ratio</th><th>change</th><th>95% CI</th><th>MDE</th>\
             <th>verdict</th></tr>\n",
        );
        for m in &c.metrics {
            let unit = metric_unit(&m.metric);
            let _ = writeln!(
                h,
                "<tr{}><td>{}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{:.4}</td><td class=\"n\">{:+.2}%</td>\
                 <td class=\"n\">[{:.4}, {:.4}]</td><td class=\"n\">{}</td>\
                 <td class=\"{}\">{}</td></tr>",
                if m.primary { " class=\"primary\"" } else { "" },
                escape(&m.metric),
                if unit.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", escape(unit))
                },
                fmt_value(m.baseline.mean),
                fmt_value(m.candidate.mean),
                m.ratio,
                m.change_pct,
                m.ci_low,
                m.ci_high,
                m.mde_pct
                    .map(|x| format!("{x:.1}%"))
                    .unwrap_or_else(|| "–".into()),
                verdict_class(m.verdict),
                escape(marker(m.verdict))
            );
        }
        h.push_str("</table>\n");
        let design = match c.metrics.iter().find(|m| m.primary) {
            Some(p) => crate::report::design_line(p),
            None => "no primary metric could be compared".into(),
        };
        let excluded = if c.excluded_runs > 0 {
            format!("; {} flagged run(s) excluded", c.excluded_runs)
        } else {
            String::new()
        };
        let _ = writeln!(h, "<p class=\"note\">{}{}.</p>", escape(&design), excluded);
        let notes: Vec<String> = c
            .metrics
            .iter()
            .flat_map(|m| m.notes.iter().map(move |n| format!("{}: {n}", m.metric)))
            .collect();
        if !notes.is_empty() {
            h.push_str("<ul class=\"note\">\n");
            for n in notes {
                let _ = writeln!(h, "<li>{}</li>", escape(&n));
            }
            h.push_str("</ul>\n");
        }
    }
    h.push_str(
        "<p class=\"note\">Ratio = geometric mean of candidate/baseline with its Student-t 95% \
         interval. Only the <b>primary</b> metric (bold row) gets a verdict; the others are \
         estimates. MDE = the smallest slowdown the comparison could have detected with 90% \
         power: “no change” means “smaller than the MDE”. Methods: docs/statistics.md.</p>\n",
    );
}

/// The summary table: one row per case and version.
fn summary(h: &mut String, rows: &[CombinedRuns]) {
    h.push_str(
        "<h2 id=\"summary\">Summary</h2>\n<table class=\"summary\">\n<tr><th>case</th>\
         <th>version</th><th>runs</th><th>req/s (mean ± sd)</th><th>CV</th>\
         <th>req per gateway CPU-s (CV)</th><th>mean latency ms</th><th>p50 ms*</th>\
         <th>p99 ms*</th><th>max ms</th><th>errors</th><th>flagged runs</th></tr>\n",
    );
    let opt = |s: &Option<crate::stats::Summary>| {
        s.as_ref()
            .map(|s| format!("{:.3}", s.mean))
            .unwrap_or_else(|| "–".into())
    };
    for r in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0} ± {:.0}</td>\
             <td class=\"n\">{:.1}%</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&r.case),
            escape(&r.version),
            r.runs,
            r.rps.mean,
            r.rps.stdev,
            100.0 * r.rps.cv,
            r.rps_per_gateway_cpu_s
                .as_ref()
                .map(|s| format!("{:.0} ({:.1}%)", s.mean, 100.0 * s.cv))
                .unwrap_or_else(|| "–".into()),
            r.weighted_latency_mean_ms
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "–".into()),
            opt(&r.latency_p50_ms),
            opt(&r.latency_p99_ms),
            r.max_latency_ms,
            r.total_errors,
            r.flagged_runs
        );
    }
    h.push_str(
        "</table>\n<p class=\"note\">* mean over runs of each run's own percentile (not a \
         percentile of all requests).</p>\n",
    );
}

/// The command that made the folder, and the ones that re-render and reproduce it.
fn commands(h: &mut String, p: &HtmlPage) {
    h.push_str("<h2 id=\"commands\">Commands</h2>\n");
    if let Some(m) = p.manifest.filter(|m| !m.command.is_empty()) {
        let _ = writeln!(
            h,
            "<p>Made by:</p>\n<pre id=\"command\">{}</pre>",
            escape(&crate::host::quote::join(&m.command))
        );
    }
    let folder = crate::host::quote::quote(&p.folder);
    let _ = writeln!(
        h,
        "<p>Re-render this folder, or run the same cases and versions again and compare:</p>\n\
         <pre>perflab report {f}\nperflab reproduce {f}</pre>",
        f = escape(&folder)
    );
}

/// The environment fingerprint as a flat table of dotted keys.
fn fingerprint(h: &mut String, fp: &serde_json::Value) {
    let mut rows = Vec::new();
    flatten("", fp, &mut rows);
    if rows.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"fingerprint\">Environment fingerprint</h2>\n<table class=\"fingerprint\">\n",
    );
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    h.push_str("</table>\n");
}

/// Flattens JSON into (dotted key, value) rows; arrays of scalars become one comma-joined row.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let items: Vec<String> = a.iter().map(scalar).collect();
            out.push((prefix.to_string(), items.join(", ")));
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&key(&i.to_string()), x, out);
            }
        }
        Value::Null => {}
        _ => out.push((prefix.to_string(), scalar(v))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::tests::sample;

    #[test]
    fn text_is_escaped_everywhere() {
        let mut r = sample();
        r.cases[0].case = "<script>alert('x')</script>&".into();
        let manifest = Manifest {
            command: vec!["perflab".into(), "suite".into(), "a b\"<c>".into()],
            fingerprint: serde_json::from_value(serde_json::json!({
                "hosts": {"gateway": {"kernel": "<b>6.1</b>"}},
                "load_commands": ["wrk -c 1 <url>", "wrk -c 2 <url>"],
            }))
            .unwrap(),
            ..Default::default()
        };
        let page = HtmlPage {
            suite: "s<1>",
            folder: "out/x y".into(),
            manifest: Some(&manifest),
            compare: Some(&r),
            charts: vec![(
                "rps.svg".into(),
                "<svg xmlns=\"http://www.w3.org/2000/svg\"/>".into(),
            )],
            flamegraphs: vec!["a\"b.svg".into()],
            ..Default::default()
        };
        let html = render(&page);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
        assert!(html.contains("<title>perflab results: s&lt;1&gt;</title>"));
        assert!(
            html.contains("perflab suite &#39;a b&quot;&lt;c&gt;&#39;"),
            "{html}"
        );
        assert!(
            html.contains("<tr><th>hosts.gateway.kernel</th><td>&lt;b&gt;6.1&lt;/b&gt;</td></tr>")
        );
        assert!(html.contains(
            "<tr><th>load_commands</th><td>wrk -c 1 &lt;url&gt;, wrk -c 2 &lt;url&gt;</td></tr>"
        ));
        assert!(html.contains("href=\"flamegraphs/a&quot;b.svg\""));
        assert!(html.contains("perflab report &#39;out/x y&#39;"));
        // Self-contained: nothing is fetched from elsewhere.
        // Self-contained: no URL at all (the chart's SVG namespace is inside its base64 data).
        assert!(!html.contains("://"), "{html}");
    }

    #[test]
    fn verdicts_carry_interval_mde_and_marker() {
        let r = sample();
        let html = render(&HtmlPage {
            suite: "smoke",
            compare: Some(&r),
            ..Default::default()
        });
        assert!(html.contains(
            "<td class=\"n\">[0.8000, 0.8000]</td><td class=\"n\">0.0%</td><td class=\"slower\">▼ slower</td>"
        ), "{html}");
        assert!(html.contains("<tr class=\"primary\"><td>rps (req/s)</td>"));
        assert!(html.contains("restart design: 3 pairs"));
        assert!(html.contains("1 flagged run(s) excluded"));
    }
}
