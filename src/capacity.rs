//! `perflab capacity`: the highest request rate a gateway serves with a latency percentile under
//! a target and errors under a threshold.
//!
//! Why a search over open-loop runs: throughput from a closed loop (wrk) is the rate at which the
//! gateway is *saturated*, with whatever latency that brings; what an operator plans with is the
//! rate at which latency is still acceptable. Only an open-loop run at a fixed rate measures the
//! latency at that rate (docs/open-loop.md). The search doubles the rate from `start_rate`
//! until a step fails (or halves it until one passes), then bisects between the highest passing
//! and the lowest failing rate until they are within `precision_pct` of each other. The answer
//! is that bracket: the capacity is at least the passing rate and below the failing one, at this
//! run length. Every step is an ordinary run in the results folder (case id `<case>~<rate>rps`),
//! so the latency measured on the way — the latency curve — is kept and reported.

use serde::{Deserialize, Serialize};

use crate::result::RunRecord;
use crate::role::load::wrk::LoadKind;
use crate::runner::{Execution, RunRequest, run_lab, run_one};
use crate::store::Store;
use crate::suite::PlannedRun;
use crate::{Error, Result};

/// What counts as serving a rate, and how the search proceeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityOptions {
    /// The latency percentile judged (0–100, default 99).
    pub percentile: f64,
    /// The percentile must stay at or under this many milliseconds.
    pub target_ms: f64,
    /// Failed requests must stay at or under this share of those sent, percent (default 0.1).
    pub max_error_pct: f64,
    /// First rate tried, requests per second (default 1000).
    pub start_rate: f64,
    /// Highest rate tried (default 1000000).
    pub max_rate: f64,
    /// Stop when the failing rate is within this many percent above the passing one (default 5).
    pub precision_pct: f64,
    /// Most steps (runs) per case (default 20).
    pub max_steps: u32,
}

impl Default for CapacityOptions {
    fn default() -> Self {
        CapacityOptions {
            percentile: 99.0,
            target_ms: 10.0,
            max_error_pct: 0.1,
            start_rate: 1000.0,
            max_rate: 1_000_000.0,
            precision_pct: 5.0,
            max_steps: 20,
        }
    }
}

impl CapacityOptions {
    /// Checks the bounds (each names its flag).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Usage(m));
        if !(self.percentile > 0.0 && self.percentile < 100.0) {
            return bad(format!(
                "--percentile must be above 0 and below 100 (got {})",
                self.percentile
            ));
        }
        if !(self.target_ms.is_finite() && self.target_ms > 0.0) {
            return bad(format!(
                "--target-ms must be a positive number of milliseconds (got {})",
                self.target_ms
            ));
        }
        if !(0.0..=100.0).contains(&self.max_error_pct) {
            return bad(format!(
                "--max-errors must be a percentage from 0 to 100 (got {})",
                self.max_error_pct
            ));
        }
        let max = crate::role::load::wrk::MAX_RATE;
        if !(1.0..=max).contains(&self.start_rate)
            || !(self.start_rate..=max).contains(&self.max_rate)
        {
            return bad(format!(
                "--start-rate and --max-rate must satisfy 1 <= start <= max <= {max} (got {} and {})",
                self.start_rate, self.max_rate
            ));
        }
        if !(0.1..=100.0).contains(&self.precision_pct) {
            return bad(format!(
                "--precision must be from 0.1 to 100 percent (got {})",
                self.precision_pct
            ));
        }
        if !(2..=100).contains(&self.max_steps) {
            return bad(format!(
                "--max-steps must be from 2 to 100 (got {})",
                self.max_steps
            ));
        }
        Ok(())
    }
}

/// One rate tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStep {
    /// Requests per second asked for.
    pub rate_asked: f64,
    /// Requests per second sent.
    pub rate_achieved: f64,
    /// Latency at the judged percentile, ms.
    pub latency_ms: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// Worst latency, ms.
    pub max_ms: f64,
    /// Failed requests, percent of those sent.
    pub error_pct: f64,
    /// The generator could not keep the rate.
    pub generator_limited: bool,
    /// Latency and errors within their limits.
    pub passed: bool,
    /// The run's sequence number in the results folder.
    pub sequence: u32,
}

/// The answer for one case and version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityResult {
    /// Case id.
    pub case: String,
    /// Version label.
    pub version: String,
    /// The criteria.
    pub options: CapacityOptions,
    /// Highest rate that passed (`null`: none did).
    pub capacity_rps: Option<f64>,
    /// Lowest rate that failed (`null`: none did).
    pub failed_rps: Option<f64>,
    /// Why the search stopped.
    pub stopped: String,
    /// Every step, in the order run: the latency curve measured on the way.
    pub steps: Vec<CapacityStep>,
}

impl CapacityResult {
    /// The result in one line: `1875 req/s (between 1875 and 2000: ±3.2%)`.
    pub fn headline(&self) -> String {
        match (self.capacity_rps, self.failed_rps) {
            (Some(lo), Some(hi)) => format!(
                "{lo:.0} req/s (capacity between {lo:.0} and {hi:.0} req/s: {:.0} ± {:.1}%)",
                (lo + hi) / 2.0,
                100.0 * (hi - lo) / (hi + lo)
            ),
            (Some(lo), None) => format!("at least {lo:.0} req/s ({})", self.stopped),
            (None, Some(hi)) => format!("below {hi:.0} req/s ({})", self.stopped),
            (None, None) => format!("unknown ({})", self.stopped),
        }
    }
}

/// The step of a finished run: its rate, percentile and errors, judged against `opts`.
pub fn judge(rec: &RunRecord, opts: &CapacityOptions, latency_ms: f64) -> CapacityStep {
    let ol = rec.load.open_loop.clone().unwrap_or_default();
    let sent = ol.sent.max(1) as f64;
    let error_pct = 100.0 * rec.load.errors.total() as f64 / sent;
    CapacityStep {
        rate_asked: ol.rate_asked,
        rate_achieved: ol.rate_achieved,
        latency_ms,
        p50_ms: rec.load.latency_ms.p50.unwrap_or(f64::NAN),
        max_ms: rec.load.latency_ms.max,
        error_pct,
        generator_limited: ol.generator_limited,
        passed: latency_ms <= opts.target_ms && error_pct <= opts.max_error_pct,
        sequence: rec.sequence,
    }
}

/// Where a search ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// Highest rate that passed.
    pub passed: Option<f64>,
    /// Lowest rate that failed.
    pub failed: Option<f64>,
    /// Why it stopped.
    pub stopped: String,
    /// Every step, in the order run.
    pub steps: Vec<CapacityStep>,
}

/// The search itself: calls `measure(rate)` for each rate to try and returns where it ended.
/// Separate from the lab so its logic is tested on its own.
pub fn search(
    opts: &CapacityOptions,
    mut measure: impl FnMut(f64) -> Result<CapacityStep>,
) -> Result<SearchOutcome> {
    let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
    let mut steps = Vec::new();
    let mut rate = opts.start_rate;
    let stopped = loop {
        if steps.len() as u32 >= opts.max_steps {
            break format!("{} steps run (--max-steps)", opts.max_steps);
        }
        let step = measure(rate)?;
        let (passed, limited) = (step.passed, step.generator_limited);
        steps.push(step);
        // A pass at a rate the generator could not send says nothing about that rate: try it
        // once more (a passing hiccup of a shared machine), then give up.
        if passed && limited {
            let again = steps.len() >= 2 && steps[steps.len() - 2].rate_asked == rate;
            if again {
                break format!(
                    "the load generator could not send {rate:.0} req/s: add connections or load hosts"
                );
            }
            continue;
        }
        if passed {
            lo = Some(lo.map_or(rate, |l: f64| l.max(rate)));
        } else {
            hi = Some(hi.map_or(rate, |h: f64| h.min(rate)));
        }
        rate = match (lo, hi) {
            (Some(l), Some(h)) => {
                if (h - l) / l <= opts.precision_pct / 100.0 {
                    break format!("converged within {}%", opts.precision_pct);
                }
                ((l + h) / 2.0).round()
            }
            (Some(l), None) => {
                if l >= opts.max_rate {
                    break format!("passed at --max-rate {}", opts.max_rate);
                }
                (l * 2.0).min(opts.max_rate)
            }
            (None, Some(h)) => {
                if h <= 1.0 {
                    break "failed even at 1 req/s".into();
                }
                (h / 2.0).max(1.0).round()
            }
            (None, None) => unreachable!("every step passes or fails"),
        };
    };
    Ok(SearchOutcome {
        passed: lo,
        failed: hi,
        stopped,
        steps,
    })
}

/// Runs the search for every case (and version) of `req`, each step an open-loop run written
/// to the results folder; writes `capacity.json` and `capacity.md` there.
pub fn run(req: RunRequest, opts: &CapacityOptions) -> Result<(Execution, Vec<CapacityResult>)> {
    opts.validate()?;
    let quiet = req.progress == crate::progress::Mode::Quiet;
    let mut results = Vec::new();
    let exec = run_lab(&req, 0, |session, store, runs| {
        let progress = crate::progress::Progress::new(
            crate::progress::Mode::Quiet,
            &[],
            &req.cases,
            &req.versions,
        );
        let mut current_case = None;
        for (ci, case) in req.cases.iter().enumerate() {
            for (vi, version) in req.versions.iter().enumerate() {
                let mut n = 0u32;
                // Every step starts its own gateway: its rate is a new condition.
                let mut no_kept_gateway = None;
                let found = search(opts, |rate| {
                    crate::signals::check()?;
                    n += 1;
                    let mut step_case = case.clone();
                    step_case.id = format!("{}~{rate:.0}rps", case.id);
                    step_case.load.kind = LoadKind::Open;
                    step_case.load.rate = Some(rate);
                    let planned = PlannedRun {
                        case: ci,
                        version: vi,
                        repeat: n,
                        profile: false,
                    };
                    let seq = runs.len() as u32 + 1;
                    let rec = run_one(
                        session,
                        &req,
                        store,
                        &step_case,
                        &planned,
                        seq,
                        &mut current_case,
                        (&mut no_kept_gateway, false),
                        &progress,
                    )?;
                    let hist = crate::role::load::open::read_run_histogram(&store.run_dir(
                        rec.sequence,
                        &rec.case,
                        &rec.version,
                        rec.repeat,
                    ));
                    let latency = hist
                        .as_ref()
                        .and_then(|h| {
                            crate::role::load::histogram::percentile_ms(h, opts.percentile)
                        })
                        .unwrap_or(f64::INFINITY);
                    let step = judge(&rec, opts, latency);
                    if !quiet {
                        tracing::info!(
                            "capacity {} {}: {:.0} req/s asked, {:.0} sent, p{} {:.3} ms, errors {:.2}%: {}",
                            case.id,
                            version.label,
                            step.rate_asked,
                            step.rate_achieved,
                            opts.percentile,
                            step.latency_ms,
                            step.error_pct,
                            if step.passed { "pass" } else { "fail" }
                        );
                    }
                    runs.push(rec);
                    Ok(step)
                })?;
                results.push(CapacityResult {
                    case: case.id.clone(),
                    version: version.label.clone(),
                    options: opts.clone(),
                    capacity_rps: found.passed,
                    failed_rps: found.failed,
                    stopped: found.stopped,
                    steps: found.steps,
                });
                write_results(store, &results)?;
            }
        }
        Ok(())
    })?;
    Ok((exec, results))
}

/// Writes `capacity.json` (the results), `capacity.md` (a table per case) and a latency-curve
/// chart per case (`charts/capacity-<case>-<version>.svg`) to the store.
pub fn write_results(store: &Store, results: &[CapacityResult]) -> Result<()> {
    use crate::report::charts::{self, CapacityChartData, CapacityPoint, Chart};
    let json = serde_json::to_vec_pretty(results).map_err(|e| Error::Lab(e.to_string()))?;
    store.write("capacity.json", &json)?;
    store.write("capacity.md", markdown(results).as_bytes())?;
    for r in results {
        let data = CapacityChartData {
            title: format!(
                "capacity: p{} ≤ {} ms, errors ≤ {}%",
                r.options.percentile, r.options.target_ms, r.options.max_error_pct
            ),
            case: r.case.clone(),
            version: r.version.clone(),
            percentile: r.options.percentile,
            target_ms: r.options.target_ms,
            capacity_rps: r.capacity_rps,
            points: r
                .steps
                .iter()
                .map(|s| CapacityPoint {
                    rate: s.rate_asked,
                    latency_ms: s.latency_ms,
                    passed: s.passed,
                })
                .collect(),
        };
        charts::write_chart_with_data(&data, &store.root().join("charts"), &data.file_stem())?;
    }
    Ok(())
}

/// The capacity report: per case and version the answer, then the latency curve.
pub fn markdown(results: &[CapacityResult]) -> String {
    use std::fmt::Write as _;
    let mut m = String::from("# perflab capacity\n");
    for r in results {
        let o = &r.options;
        let _ = write!(
            m,
            "\n## {} · {}\n\nHighest rate with p{} ≤ {} ms and errors ≤ {}%: **{}**\n\n",
            r.case,
            r.version,
            o.percentile,
            o.target_ms,
            o.max_error_pct,
            r.headline()
        );
        let _ = writeln!(
            m,
            "| run | rate asked | rate sent | p{} ms | p50 ms | max ms | errors % | |\n|---:|---:|---:|---:|---:|---:|---:|---|",
            o.percentile
        );
        let mut steps = r.steps.clone();
        steps.sort_by(|a, b| a.rate_asked.total_cmp(&b.rate_asked));
        for s in &steps {
            let _ = writeln!(
                m,
                "| {} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.2} | {}{} |",
                s.sequence,
                s.rate_asked,
                s.rate_achieved,
                s.latency_ms,
                s.p50_ms,
                s.max_ms,
                s.error_pct,
                if s.passed { "pass" } else { "fail" },
                if s.generator_limited {
                    ", generator-limited"
                } else {
                    ""
                }
            );
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step of a system whose latency grows past the target above `limit` req/s.
    fn system(limit: f64) -> impl FnMut(f64) -> Result<CapacityStep> {
        move |rate| {
            let latency = if rate <= limit { 1.0 } else { 50.0 };
            Ok(CapacityStep {
                rate_asked: rate,
                rate_achieved: rate,
                latency_ms: latency,
                p50_ms: 0.5,
                max_ms: latency,
                error_pct: 0.0,
                generator_limited: false,
                passed: latency <= 10.0,
                sequence: 0,
            })
        }
    }

    #[test]
    fn brackets_the_limit_within_the_precision() {
        for limit in [150.0, 1000.0, 2600.0, 77_000.0] {
            let opts = CapacityOptions::default();
            let SearchOutcome {
                passed,
                failed,
                stopped,
                steps,
            } = search(&opts, system(limit)).unwrap();
            let (lo, hi) = (passed.unwrap(), failed.unwrap());
            assert!(lo <= limit && limit < hi, "{lo} ≤ {limit} < {hi}");
            assert!((hi - lo) / lo <= 0.05, "{lo}..{hi}");
            assert!(stopped.starts_with("converged"), "{stopped}");
            assert!(steps.len() <= 20);
        }
    }

    #[test]
    fn stops_at_the_bounds_and_on_a_limited_generator() {
        let opts = CapacityOptions {
            max_rate: 4000.0,
            ..Default::default()
        };
        let o = search(&opts, system(1e9)).unwrap();
        assert_eq!((o.passed, o.failed), (Some(4000.0), None));
        assert!(o.stopped.contains("--max-rate"), "{}", o.stopped);
        let o = search(&opts, system(0.5)).unwrap();
        assert_eq!((o.passed, o.failed), (None, Some(1.0)));
        assert!(o.stopped.contains("1 req/s"), "{}", o.stopped);
        let limited = |rate| {
            let mut s = system(1e9)(rate)?;
            s.generator_limited = rate > 1500.0;
            Ok(s)
        };
        let o = search(&opts, limited).unwrap();
        let asked: Vec<f64> = o.steps.iter().map(|s| s.rate_asked).collect();
        assert_eq!(
            asked,
            [1000.0, 2000.0, 2000.0],
            "a limited step is tried twice"
        );
        assert_eq!(
            o.passed,
            Some(1000.0),
            "a rate the generator could not send is not a pass"
        );
        assert!(o.stopped.contains("load generator"), "{}", o.stopped);
    }

    #[test]
    fn bounds_are_checked_by_flag_name() {
        let e = CapacityOptions {
            percentile: 100.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("--percentile"));
    }
}
