//! Reports: the summary table, Markdown and JSON summaries, comparisons with their exporters,
//! charts and flame graphs — all rendered from the store, so `perflab report DIR` can redo them
//! without re-running anything.

pub mod charts;
pub mod export;
pub use crate::flamegraph;
pub mod history;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::Result;
use crate::result::RunRecord;
use crate::stats::{self, CombinedRuns, Summary};
use crate::store::Store;
use export::{CaseComparison, CompareReport};

/// How to render reports.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Exporter formats for comparisons (empty: all).
    pub formats: Vec<export::ExportFormat>,
    /// Noise band as a fraction (0.02 = ±2%) for the restart design; 0 by default.
    pub noise_band: f64,
    /// Use flagged runs in verdicts (restart design; a multiplexed design records its own).
    pub include_flagged: bool,
    /// Seed recorded with restart-design comparisons.
    pub seed: u64,
    /// The metric that gets the verdict in a restart-design comparison (a multiplexed design
    /// records its own).
    pub primary_metric: String,
    /// Render SVG charts.
    pub charts: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            formats: Vec::new(),
            noise_band: 0.0,
            include_flagged: false,
            seed: 1,
            primary_metric: "rps".into(),
            charts: true,
        }
    }
}

impl ReportOptions {
    /// From command-line values (noise band in percent).
    pub fn from_flags(
        formats: &[export::ExportFormat],
        noise_band_pct: f64,
        include_flagged: bool,
        seed: u64,
    ) -> Self {
        ReportOptions {
            formats: formats.to_vec(),
            noise_band: noise_band_pct / 100.0,
            include_flagged,
            seed,
            ..Default::default()
        }
    }
}

/// Case ids and version labels in the order they first ran (the manifest's order for versions).
pub fn ordering(store: &Store, runs: &[RunRecord]) -> (Vec<String>, Vec<String>) {
    let mut cases: Vec<String> = Vec::new();
    let mut versions: Vec<String> = store.manifest().map(|m| m.versions).unwrap_or_default();
    for r in runs {
        if !cases.contains(&r.case) {
            cases.push(r.case.clone());
        }
        if !versions.contains(&r.version) {
            versions.push(r.version.clone());
        }
    }
    (cases, versions)
}

/// Groups runs by (case, version), leaving profiled runs out (their throughput is not mixed
/// with unprofiled statistics) and runs whose gateway died (they measured a broken gateway; they
/// are listed under "Flagged runs").
pub fn group(runs: &[RunRecord]) -> BTreeMap<(String, String), Vec<&RunRecord>> {
    let mut m: BTreeMap<(String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in runs
        .iter()
        .filter(|r| !r.flags.profiled && !r.flags.gateway_died)
    {
        m.entry((r.case.clone(), r.version.clone()))
            .or_default()
            .push(r);
    }
    m
}

fn fmt_opt(s: &Option<Summary>, digits: usize) -> String {
    s.as_ref()
        .map(|s| format!("{:.*}", digits, s.mean))
        .unwrap_or_else(|| "-".into())
}

/// The combined figures of every case and version, in run order.
pub fn combined(store: &Store, runs: &[RunRecord]) -> Vec<CombinedRuns> {
    let (cases, versions) = ordering(store, runs);
    let groups = group(runs);
    let mut out = Vec::new();
    for c in &cases {
        for v in &versions {
            if let Some(g) = groups.get(&(c.clone(), v.clone()))
                && let Some(mut comb) = stats::combine(g)
            {
                comb.merged_latency_ms = merged_latency(store, g);
                out.push(comb);
            }
        }
    }
    out
}

/// The percentiles of all requests of `runs`, from their merged latency histograms; `None`
/// unless every run kept one (open-loop runs do).
pub fn merged_latency(
    store: &Store,
    runs: &[&RunRecord],
) -> Option<crate::role::load::histogram::MergedLatency> {
    crate::role::load::histogram::merged_latency(&run_histograms(store, runs)?)
}

/// The latency histograms `runs` kept in their folders; `None` unless every run kept one.
fn run_histograms(
    store: &Store,
    runs: &[&RunRecord],
) -> Option<Vec<crate::role::load::histogram::LatencyHistogram>> {
    runs.iter()
        .map(|r| {
            crate::role::load::open::read_run_histogram(
                &store.run_dir(r.sequence, &r.case, &r.version, r.repeat),
            )
        })
        .collect()
}

/// Writes a percentile spectrum chart per case whose runs kept latency histograms (open-loop
/// runs): one line per version, from the merge of its runs' histograms. Returns how many.
pub fn write_spectrum_charts(
    store: &Store,
    suite: &str,
    runs: &[RunRecord],
    cases: &[String],
    versions: &[String],
) -> Result<usize> {
    use crate::role::load::histogram;
    let groups = group(runs);
    let mut n = 0;
    for c in cases {
        let series: Vec<charts::SpectrumSeries> = versions
            .iter()
            .filter_map(|v| {
                let hists = run_histograms(store, groups.get(&(c.clone(), v.clone()))?)?;
                let merged = histogram::merge(&hists);
                (!merged.is_empty()).then(|| charts::SpectrumSeries {
                    version: v.clone(),
                    requests: merged.len(),
                    points: histogram::spectrum(&merged)
                        .iter()
                        .map(|p| (p.percentile, p.latency_ms))
                        .collect(),
                })
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let data = charts::SpectrumChartData {
            title: format!("{suite}: latency percentile spectrum"),
            case: c.clone(),
            series,
        };
        charts::write_chart_with_data(
            &data,
            &store.root().join("charts"),
            &format!("spectrum-{}", crate::util::fs::sanitize(c)),
        )?;
        n += 1;
    }
    Ok(n)
}

/// Lines under the table for cases whose runs kept latency histograms: percentiles of all
/// their requests (empty when none did).
pub fn merged_latency_lines(rows: &[CombinedRuns]) -> String {
    let mut t = String::new();
    for r in rows {
        if let Some(m) = &r.merged_latency_ms {
            if t.is_empty() {
                t.push_str("percentiles of all requests (merged histograms):\n");
            }
            let _ = writeln!(
                t,
                "  {} / {}: {} requests, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                r.case, r.version, m.requests, m.p50, m.p90, m.p99, m.p99_9, m.max
            );
        }
    }
    t
}

/// The plain-text table printed at the end of a suite.
pub fn table(rows: &[CombinedRuns]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<28} {:<14} {:>3} {:>11} {:>6} {:>13} {:>6} {:>9} {:>9} {:>9} {:>7} {:>5}",
        "case",
        "version",
        "n",
        "req/s",
        "cv%",
        "req/gw-CPU-s",
        "cv%",
        "mean ms",
        "p50 ms*",
        "p99 ms*",
        "errors",
        "flag"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:<28} {:<14} {:>3} {:>11.0} {:>6.1} {:>13} {:>6} {:>9.3} {:>9} {:>9} {:>7} {:>5}",
            r.case,
            truncate(&r.version, 14),
            r.runs,
            r.rps.mean,
            100.0 * r.rps.cv,
            r.rps_per_gateway_cpu_s
                .as_ref()
                .map(|s| format!("{:.0}", s.mean))
                .unwrap_or_else(|| "-".into()),
            r.rps_per_gateway_cpu_s
                .as_ref()
                .map(|s| format!("{:.1}", 100.0 * s.cv))
                .unwrap_or_else(|| "-".into()),
            r.weighted_latency_mean_ms.unwrap_or(f64::NAN),
            fmt_opt(&r.latency_p50_ms, 3),
            fmt_opt(&r.latency_p99_ms, 3),
            r.total_errors,
            r.flagged_runs,
        );
    }
    t.push_str(
        "* mean over runs of each run's own percentile (not a percentile of all requests)\n",
    );
    t.push_str(&merged_latency_lines(rows));
    t
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// The Markdown summary written to `summary.md`.
pub fn markdown(suite: &str, rows: &[CombinedRuns], runs: &[RunRecord]) -> String {
    let mut m = format!("# perflab results: {suite}\n\n");
    m.push_str("| case | version | runs | req/s (mean ± sd) | CV | req per gateway CPU-s (CV) | mean latency ms | p50 ms* | p99 ms* | max ms | errors | flagged runs |\n");
    m.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {:.0} ± {:.0} | {:.1}% | {} | {:.3} | {} | {} | {:.2} | {} | {} |",
            r.case,
            r.version,
            r.runs,
            r.rps.mean,
            r.rps.stdev,
            100.0 * r.rps.cv,
            r.rps_per_gateway_cpu_s
                .as_ref()
                .map(|s| format!("{:.0} ({:.1}%)", s.mean, 100.0 * s.cv))
                .unwrap_or_else(|| "-".into()),
            r.weighted_latency_mean_ms.unwrap_or(f64::NAN),
            fmt_opt(&r.latency_p50_ms, 3),
            fmt_opt(&r.latency_p99_ms, 3),
            r.max_latency_ms,
            r.total_errors,
            r.flagged_runs
        );
    }
    let merged = merged_latency_lines(rows);
    if !merged.is_empty() {
        let _ = write!(m, "\n```\n{merged}```\n");
    }
    m.push_str("\n\\* Percentile columns are the mean over runs of each run's own percentile; percentiles of different runs cannot be averaged into a percentile of all requests. Mean latency is request-weighted across runs. See docs/statistics.md.\n");
    let flagged: Vec<&RunRecord> = runs.iter().filter(|r| r.flags.any()).collect();
    if !flagged.is_empty() {
        m.push_str("\n## Flagged runs\n\n");
        for r in flagged {
            let _ = writeln!(
                m,
                "- run {} ({} · {} · repeat {}): {} (background CPU {:.1}%, errors {}){}",
                r.sequence,
                r.case,
                r.version,
                r.repeat,
                r.flags.words().join(", "),
                r.cpu.background_pct,
                r.load.errors.total(),
                if r.notes.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.notes.join("; "))
                }
            );
        }
    }
    m.push_str(&crate::during::markdown(runs.iter().filter_map(|r| {
        let heading = format!("{} · {} · repeat {}", r.case, r.version, r.repeat);
        r.during.as_ref().map(|d| (heading, d))
    })));
    m
}

/// Builds the comparison of every candidate against the baseline (the first version), per case.
/// With a multiplexed `design` the bursts are judged by blocks at the recorded looks
/// ([`crate::multiplex::analysis`]); without, runs are paired by repeat (restart design).
pub fn compare_report(
    suite: &str,
    versions: &[String],
    cases: &[String],
    runs: &[RunRecord],
    opts: &ReportOptions,
    design: Option<&crate::multiplex::DesignRecord>,
) -> Option<CompareReport> {
    if versions.len() < 2 {
        return None;
    }
    let groups = group(runs);
    let baseline = &versions[0];
    let mut out = Vec::new();
    for cand in &versions[1..] {
        for case in cases {
            let (Some(a), Some(b)) = (
                groups.get(&(case.clone(), baseline.clone())),
                groups.get(&(case.clone(), cand.clone())),
            ) else {
                continue;
            };
            if let Some(d) = design {
                let cd = d.cases.get(case).cloned().unwrap_or_default();
                let metrics =
                    crate::multiplex::analysis::compare_case(runs, case, baseline, cand, d, &cd);
                let excluded = a
                    .iter()
                    .chain(b.iter())
                    .filter(|r| crate::multiplex::analysis::exclusion(r).is_some())
                    .count();
                out.push(CaseComparison {
                    case: case.clone(),
                    candidate: cand.clone(),
                    metrics,
                    excluded_runs: if d.options.include_flagged {
                        0
                    } else {
                        excluded
                    },
                });
                continue;
            }
            let ka: Vec<&RunRecord> = a
                .iter()
                .copied()
                .filter(|r| opts.include_flagged || !r.flags.any())
                .collect();
            let kb: Vec<&RunRecord> = b
                .iter()
                .copied()
                .filter(|r| opts.include_flagged || !r.flags.any())
                .collect();
            let excluded = a.len() + b.len() - ka.len() - kb.len();
            let metrics =
                stats::compare_runs(&ka, &kb, opts.noise_band, opts.seed, &opts.primary_metric);
            out.push(CaseComparison {
                case: case.clone(),
                candidate: cand.clone(),
                metrics,
                excluded_runs: excluded,
            });
        }
    }
    Some(CompareReport {
        suite: suite.to_string(),
        baseline: baseline.clone(),
        candidates: versions[1..].to_vec(),
        cases: out,
    })
}

/// The figures of the only version, per case and standard metric, for the time-series formats
/// (BMF, github-action-benchmark); `None` unless exactly one version ran. The runs are those of
/// the summary table (flagged runs included, and counted there).
pub fn suite_report(
    suite: &str,
    versions: &[String],
    cases: &[String],
    runs: &[RunRecord],
) -> Option<export::SuiteReport> {
    let [version] = versions else {
        return None;
    };
    let groups = group(runs);
    let mut out = Vec::new();
    for case in cases {
        let Some(g) = groups.get(&(case.clone(), version.clone())) else {
            continue;
        };
        let metrics: Vec<export::MetricFigures> = stats::STANDARD_METRICS
            .iter()
            .filter_map(|m| {
                let values: Vec<f64> = g
                    .iter()
                    .filter_map(|r| stats::metric_value(r, m.name))
                    .collect();
                // A metric some runs lack is left out rather than summarised over fewer runs.
                if values.len() < g.len() {
                    return None;
                }
                Some(export::MetricFigures {
                    metric: m.name.to_string(),
                    higher_is_better: m.higher_is_better,
                    summary: stats::summarize(&values)?,
                })
            })
            .collect();
        if !metrics.is_empty() {
            out.push(export::CaseFigures {
                case: case.clone(),
                metrics,
            });
        }
    }
    Some(export::SuiteReport {
        suite: suite.to_string(),
        version: version.clone(),
        cases: out,
    })
}

/// The plain-text verdict table of a comparison: the primary metric's verdict with its
/// interval and detectable effect, the other metrics as descriptive estimates, and the design.
pub fn compare_table(r: &CompareReport) -> String {
    let mut t = format!("\nbaseline: {}\n", r.baseline);
    let _ = writeln!(
        t,
        "{:<28} {:<14} {:<22} {:>8} {:>8} {:>19} {:>7} {:<12}",
        "case", "candidate", "metric", "ratio", "change", "95% CI", "MDE", "verdict"
    );
    for c in &r.cases {
        if c.metrics.is_empty() {
            let _ = writeln!(
                t,
                "{:<28} {:<14} no comparable runs ({} excluded as flagged)",
                c.case,
                truncate(&c.candidate, 14),
                c.excluded_runs
            );
        }
        for m in &c.metrics {
            let _ = writeln!(
                t,
                "{:<28} {:<14} {:<22} {:>8.4} {:>7.2}% {:>19} {:>7} {:<12}",
                c.case,
                truncate(&c.candidate, 14),
                if m.primary {
                    format!("{} *", m.metric)
                } else {
                    m.metric.clone()
                },
                m.ratio,
                m.change_pct,
                format!("[{:.4}, {:.4}]", m.ci_low, m.ci_high),
                m.mde_pct
                    .map(|x| format!("{x:.1}%"))
                    .unwrap_or_else(|| "-".into()),
                m.verdict.to_string()
            );
        }
        if let Some(p) = c.metrics.iter().find(|m| m.primary) {
            let _ = writeln!(t, "  {}", design_line(p));
        }
    }
    t.push_str(
        "* primary metric: the only one with a verdict; the others are estimates with intervals.\n",
    );
    t.push_str("MDE: the smallest slowdown this comparison could have detected with 90% power (\"no change\" means \"smaller than this\").\n");
    t
}

/// One line describing how a comparison was measured.
pub fn design_line(m: &stats::Comparison) -> String {
    match &m.design {
        Some(d) => format!(
            "multiplexed: {} blocks ({} bursts of {} s) in {} segment(s), {:.0} s measured; {}, df {:.1}, look {} of {} (critical value {:.3}), order seed {}{}; background CPU {:.1}%",
            d.blocks,
            d.bursts,
            d.burst_s,
            d.segments,
            d.measured_s,
            if d.segments < 2 {
                format!(
                    "block SD {:.2}% (one segment: instance variance not sampled)",
                    d.block_sd_pct
                )
            } else if d.blocks > d.segments {
                format!(
                    "unit (segment) SD {:.2}%, block SD within segments {:.2}%",
                    d.segment_sd_pct, d.block_sd_pct
                )
            } else {
                format!(
                    "unit (block with fresh instances) SD {:.2}%",
                    d.segment_sd_pct
                )
            },
            d.df,
            d.look,
            d.looks,
            d.critical,
            d.order_seed,
            if d.excluded.is_empty() {
                String::new()
            } else {
                format!("; excluded bursts: {}", d.excluded.join(", "))
            },
            d.background_cpu_pct
        ),
        None => format!(
            "restart design: {} pairs, Student-t interval of the mean log ratio{}",
            m.n_pairs,
            if m.noise_band > 0.0 {
                format!(", noise band ±{:.1}%", 100.0 * m.noise_band)
            } else {
                String::new()
            }
        ),
    }
}

/// Renders everything for a results folder: summary table (returned), `summary.md`,
/// `summary.json`, comparison files and charts.
pub fn render_all(store: &Store, opts: &ReportOptions) -> Result<String> {
    let runs = store.load_runs()?;
    let suite = store
        .manifest()
        .map(|m| m.suite)
        .unwrap_or_else(|_| runs.first().map(|r| r.suite.clone()).unwrap_or_default());
    if runs.is_empty() {
        return Ok(format!("no finished runs in {}\n", store.root().display()));
    }
    let rows = combined(store, &runs);
    let mut text = table(&rows);
    store.write("summary.md", markdown(&suite, &rows, &runs).as_bytes())?;
    store.write(
        "summary.json",
        &serde_json::to_vec_pretty(&rows).map_err(|e| crate::Error::Lab(e.to_string()))?,
    )?;
    let (cases, versions) = ordering(store, &runs);
    let design = crate::multiplex::DesignRecord::load(store);
    let cr = compare_report(&suite, &versions, &cases, &runs, opts, design.as_ref());
    if opts.charts {
        let written = write_charts(
            store,
            &suite,
            &rows,
            &cases,
            &versions,
            cr.as_ref(),
            opts.noise_band,
        )?;
        let written = written + write_spectrum_charts(store, &suite, &runs, &cases, &versions)?;
        let blocks = match (&design, &cr) {
            (Some(d), Some(cr)) => write_block_charts(store, &runs, d, cr)?,
            _ => 0,
        };
        let changes = write_change_charts(store, &runs)?;
        text.push_str(&format!(
            "charts: {} files in {}\n",
            written + blocks + changes,
            store.root().join("charts").display()
        ));
    }
    let flames = write_flamegraphs(store, &runs, &versions)?;
    if flames > 0 {
        text.push_str(&format!(
            "flame graphs: {flames} files in {}\n",
            store.root().join("flamegraphs").display()
        ));
    }
    let html = write_html(store, &suite, &rows, cr.as_ref())?;
    let formats = if opts.formats.is_empty() {
        export::ExportFormat::all()
    } else {
        opts.formats.clone()
    };
    let single = suite_report(&suite, &versions, &cases, &runs);
    for f in formats {
        let e = f.exporter();
        let content = match (&cr, &single) {
            (Some(cr), _) => Some(e.render(cr)),
            (None, Some(sr)) => e.render_suite(sr),
            (None, None) => None,
        };
        if let Some(content) = content {
            store.write(e.file_name(), content.as_bytes())?;
        }
    }
    if let Some(cr) = &cr {
        text.push_str(&compare_table(cr));
    }
    text.push_str(&format!("report: {}\n", html.display()));
    text.push_str(&result_line(store, cr.as_ref()));
    Ok(text)
}

/// The version of the [`result_line`] format.
pub const RESULT_LINE_SCHEMA: &str = "perflab.result-line/1";

/// The last line `suite`, `compare`, `reproduce` and `report` print on stdout, for scripts and
/// CI: one JSON object naming the results folder, its status, the report page and how many
/// primary-metric verdicts of each kind the comparison gave (all zero without a comparison).
/// Documented in docs/ci.md.
pub fn result_line(store: &Store, cr: Option<&CompareReport>) -> String {
    let mut counts: BTreeMap<&str, usize> = ["slower", "faster", "no_change", "inconclusive"]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
    for m in cr
        .iter()
        .flat_map(|cr| cr.cases.iter())
        .flat_map(|c| c.metrics.iter().filter(|m| m.primary))
    {
        let key = match m.verdict {
            stats::Verdict::Slower => "slower",
            stats::Verdict::Faster => "faster",
            stats::Verdict::NoChange => "no_change",
            stats::Verdict::Inconclusive | stats::Verdict::Descriptive => "inconclusive",
        };
        *counts.entry(key).or_default() += 1;
    }
    let line = serde_json::json!({
        "perflab": RESULT_LINE_SCHEMA,
        "dir": store.root(),
        "status": store.manifest().map(|m| m.status).unwrap_or_default(),
        "report": store.root().join(export::html::FILE_NAME),
        "verdicts": counts,
    });
    format!("{line}\n")
}

/// The `*.svg` file names directly in `dir`, sorted by name; none if it does not exist.
fn svg_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".svg"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Writes `report.html` (every table, the charts in `charts/` embedded, the flame graphs in
/// `flamegraphs/` linked); returns its path.
fn write_html(
    store: &Store,
    suite: &str,
    rows: &[CombinedRuns],
    cr: Option<&CompareReport>,
) -> Result<std::path::PathBuf> {
    let charts_dir = store.root().join("charts");
    // The verdict pictures first, then throughput, then the rest by name.
    let rank = |n: &str| {
        ["ratio", "blocks", "rps"]
            .iter()
            .position(|p| n.starts_with(p))
            .unwrap_or(3)
    };
    let mut names = svg_names(&charts_dir);
    names.sort_by_key(|n| rank(n));
    let mut charts = Vec::new();
    for name in names {
        let path = charts_dir.join(&name);
        let svg = std::fs::read_to_string(&path).map_err(|e| crate::Error::io(&path, e))?;
        charts.push((name, svg));
    }
    let manifest = store.manifest().ok();
    let page = export::html::HtmlPage {
        suite,
        folder: store.root().display().to_string(),
        manifest: manifest.as_ref(),
        rows,
        compare: cr,
        charts,
        flamegraphs: svg_names(&store.root().join("flamegraphs")),
    };
    store.write(
        export::html::FILE_NAME,
        export::html::render(&page).as_bytes(),
    )
}

/// Writes one block chart per case and candidate of a multiplexed comparison (the primary
/// metric's block ratios over time); returns how many.
fn write_block_charts(
    store: &Store,
    runs: &[RunRecord],
    design: &crate::multiplex::DesignRecord,
    cr: &CompareReport,
) -> Result<usize> {
    let dir = store.root().join("charts");
    let mut n = 0;
    for c in &cr.cases {
        let Some(m) = c.metrics.iter().find(|m| m.primary) else {
            continue;
        };
        let points = crate::multiplex::analysis::block_points(
            runs,
            &c.case,
            &cr.baseline,
            &c.candidate,
            &m.metric,
            design.options.include_flagged,
        )
        .into_iter()
        .map(|(t_s, ratio, segment)| charts::BlockPoint {
            t_s,
            ratio,
            segment,
        })
        .collect();
        let data = charts::BlocksChartData {
            title: format!("{}: block ratios over time ({})", c.case, m.verdict),
            case: c.case.clone(),
            candidate: c.candidate.clone(),
            metric: m.metric.clone(),
            points,
            ratio: m.ratio,
            ci_low: m.ci_low,
            ci_high: m.ci_high,
        };
        let stem = charts::Chart::file_stem(&data);
        charts::write_chart_with_data(&data, &dir, &stem)?;
        n += 1;
    }
    Ok(n)
}

/// The "config change under load" chart of a run with actions during load and a time series.
fn change_chart(r: &RunRecord) -> Option<charts::ChangeChartData> {
    let d = r.during.as_ref().filter(|d| !d.series.is_empty())?;
    let per_s = |n: u64| n as f64 / d.bucket_s;
    Some(charts::ChangeChartData {
        title: format!(
            "{} · {} · repeat {}: config change under load",
            r.case, r.version, r.repeat
        ),
        run: format!("{:04}-{}-{}-{}", r.sequence, r.case, r.version, r.repeat),
        bucket_s: d.bucket_s,
        points: d
            .series
            .iter()
            .map(|(t, n, e, lost, p99)| (*t, per_s(*n), per_s(*e + *lost), *p99))
            .collect(),
        marks: d
            .actions
            .iter()
            .map(|a| charts::ChangeMark {
                t_s: a.started_s,
                label: crate::during::label(a),
                failed: !a.ok,
            })
            .collect(),
    })
}

/// Writes one "config change under load" chart per run with actions during load; returns how
/// many.
fn write_change_charts(store: &Store, runs: &[RunRecord]) -> Result<usize> {
    let dir = store.root().join("charts");
    let mut n = 0;
    for r in runs {
        let Some(data) = change_chart(r) else {
            continue;
        };
        let stem = charts::Chart::file_stem(&data);
        charts::write_chart_with_data(&data, &dir, &stem)?;
        n += 1;
    }
    Ok(n)
}

/// Writes the suite's charts (and their data as JSON beside them) into `charts/`; returns how
/// many SVGs were written.
pub fn write_charts(
    store: &Store,
    suite: &str,
    rows: &[CombinedRuns],
    cases: &[String],
    versions: &[String],
    cr: Option<&CompareReport>,
    noise_band: f64,
) -> Result<usize> {
    use charts::latency::LatencyChartData;
    use charts::ratio::{RatioChartData, RatioRow};
    use charts::rps::{RpsChartData, RpsSeries};
    let dir = store.root().join("charts");
    let find = |c: &str, v: &str| rows.iter().find(|r| r.case == c && r.version == v);
    let mut n = 0;
    let mut rps_chart = |metric_label: &str,
                         stem: &str,
                         pick: &dyn Fn(&CombinedRuns) -> Option<Summary>|
     -> Result<()> {
        let series: Vec<RpsSeries> = versions
            .iter()
            .map(|v| {
                let s: Vec<Option<Summary>> =
                    cases.iter().map(|c| find(c, v).and_then(pick)).collect();
                RpsSeries {
                    version: v.clone(),
                    means: s.iter().map(|x| x.as_ref().map(|x| x.mean)).collect(),
                    stdevs: s.iter().map(|x| x.as_ref().map(|x| x.stdev)).collect(),
                    mins: s.iter().map(|x| x.as_ref().map(|x| x.min)).collect(),
                    maxs: s.iter().map(|x| x.as_ref().map(|x| x.max)).collect(),
                }
            })
            .collect();
        let data = RpsChartData {
            title: format!("{suite}: {metric_label}"),
            metric_label: metric_label.into(),
            cases: cases.to_vec(),
            series,
        };
        charts::write_chart_with_data(&data, &dir, stem)?;
        n += 1;
        Ok(())
    };
    rps_chart("Requests/s", "rps", &|r| Some(r.rps.clone()))?;
    rps_chart(
        "Requests per gateway CPU-second",
        "rps-per-gateway-cpu",
        &|r| r.rps_per_gateway_cpu_s.clone(),
    )?;
    for c in cases {
        let values_ms: Vec<Vec<Option<f64>>> = versions
            .iter()
            .map(|v| {
                let r = find(c, v);
                let m = |s: Option<&Option<Summary>>| s.and_then(|s| s.as_ref().map(|s| s.mean));
                vec![
                    m(r.map(|r| &r.latency_p50_ms)),
                    m(r.map(|r| &r.latency_p75_ms)),
                    m(r.map(|r| &r.latency_p90_ms)),
                    m(r.map(|r| &r.latency_p99_ms)),
                ]
            })
            .collect();
        let data = LatencyChartData {
            title: format!("{suite}: latency percentiles (mean of per-run values)"),
            case: c.clone(),
            versions: versions.to_vec(),
            percentiles: ["p50", "p75", "p90", "p99"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            values_ms,
        };
        charts::write_chart_with_data(
            &data,
            &dir,
            &format!("latency-{}", crate::util::fs::sanitize(c)),
        )?;
        n += 1;
    }
    if let Some(cr) = cr {
        let rows: Vec<RatioRow> = cr
            .cases
            .iter()
            .flat_map(|c| {
                c.metrics
                    .iter()
                    .filter(|m| {
                        m.metric == "rps"
                            || m.metric == "rps_per_gateway_cpu_s"
                            || m.metric == "latency_p99_ms"
                    })
                    .map(move |m| RatioRow {
                        label: format!("{} · {} · {}", c.case, c.candidate, m.metric),
                        ratio: m.ratio,
                        ci_low: m.ci_low,
                        ci_high: m.ci_high,
                        verdict: m.verdict.to_string(),
                    })
            })
            .collect();
        let data = RatioChartData {
            title: format!("{suite}: candidate / {} (95% CI)", cr.baseline),
            baseline: cr.baseline.clone(),
            rows,
            noise_band,
        };
        charts::write_chart_with_data(&data, &dir, "ratio")?;
        n += 1;
    }
    Ok(n)
}

/// Renders flame graphs from the folded stacks stored with profiled runs: one per case and
/// version (all its profiled runs merged), and for each candidate a differential graph against
/// the baseline (red: more samples in the candidate). Returns how many SVGs were written.
pub fn write_flamegraphs(store: &Store, runs: &[RunRecord], versions: &[String]) -> Result<usize> {
    let mut folded: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.flags.profiled) {
        let p = store
            .run_dir(r.sequence, &r.case, &r.version, r.repeat)
            .join("profile.folded");
        if let Ok(text) = std::fs::read_to_string(&p) {
            folded
                .entry((r.case.clone(), r.version.clone()))
                .or_default()
                .push_str(&text);
        }
    }
    let dir = store.root().join("flamegraphs");
    let mut n = 0;
    for ((case, version), text) in &folded {
        let name = format!(
            "{}-{}",
            crate::util::fs::sanitize(case),
            crate::util::fs::sanitize(version)
        );
        flamegraph::write_profile(&dir, &name, text, &format!("{case} · {version}"))?;
        n += 1;
    }
    if let Some(base) = versions.first() {
        for cand in versions.iter().skip(1) {
            for ((case, version), after) in folded.iter().filter(|((_, v), _)| v == cand) {
                if let Some(before) = folded.get(&(case.clone(), base.clone())) {
                    let out = dir.join(format!(
                        "{}-diff-{}-vs-{}.svg",
                        crate::util::fs::sanitize(case),
                        crate::util::fs::sanitize(version),
                        crate::util::fs::sanitize(base)
                    ));
                    flamegraph::render_differential(
                        before,
                        after,
                        &format!("{case}: {version} vs {base} (red = more in {version})"),
                        &out,
                    )?;
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}
