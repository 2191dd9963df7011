//! Actions during load: what a case schedules while its load runs (`[[case.during]]`), what
//! each action did, and how the traffic fared around it.
//!
//! Why: a gateway's steady-state speed is half the story; Kong engineers also ask what a config
//! change, a reload or a metrics scrape does to the traffic flowing through it. An action is an
//! HTTP request to one of the gateway's listeners (its admin API, typically), a reload through
//! the gateway's adapter, or a scrape (a GET whose body is kept with the run). The session runs
//! them on time while the load runs (the session's `run_during`); wrk records the
//! load per 100 ms ([`crate::role::load::series`]); [`analyse`] compares errors and latency in a
//! window around each action with the rest of the run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::role::gateway::GatewayKind;
use crate::role::load::series::{Series, quantile_ms};

/// Seconds before an action's start and after its end that count as "around" it.
pub const WINDOW_S: f64 = 1.0;
/// Shortest repeat period, seconds.
pub const MIN_EVERY_S: f64 = 0.1;
/// Most actions one run may schedule (all repeats counted).
pub const MAX_ACTIONS: usize = 10_000;
/// Bytes of an `http` action's answer kept in the run record.
pub const ANSWER_BYTES: usize = 1024;

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// An HTTP request (method, path, body) to one of the gateway's listeners.
    Http,
    /// The gateway rereads its configuration (nginx `-s reload`, HAProxy's master reload,
    /// `kong reload`).
    Reload,
    /// A GET whose answer is saved in the run's folder (e.g. Kong's `/metrics`).
    Scrape,
}

impl ActionKind {
    /// The name as written in case files.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Http => "http",
            ActionKind::Reload => "reload",
            ActionKind::Scrape => "scrape",
        }
    }
}

/// Which listener of the gateway an `http` or `scrape` action goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listener {
    /// The admin API (the default).
    #[default]
    Admin,
    /// The proxy port the load goes to.
    Proxy,
    /// A status listener (Kong's `status_listen`).
    Status,
}

impl Listener {
    /// The name as written in case files.
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Admin => "admin",
            Listener::Proxy => "proxy",
            Listener::Status => "status",
        }
    }
}

/// One `[[case.during]]` entry, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuringAction {
    /// Seconds after the load starts (first time).
    pub at: f64,
    /// Repeat period in seconds, if the action repeats until the load ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<f64>,
    /// What to do.
    pub action: ActionKind,
    /// HTTP method (`http` only; default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path on the listener (`http` and `scrape`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Request body, sent as JSON (`http` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Which listener (`http` and `scrape`; default admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Listener>,
}

/// Whether a gateway kind has an admin API or a status listener in the lab.
fn has_admin(kind: GatewayKind) -> bool {
    matches!(kind, GatewayKind::Kong | GatewayKind::Command)
}

impl DuringAction {
    /// The listener an `http` or `scrape` action goes to.
    pub fn listener(&self) -> Listener {
        self.port.unwrap_or_default()
    }

    /// The method an `http` action sends (GET for scrapes).
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("GET")
    }

    /// Checks one action against the case: the run's `duration` and the gateway `kind`.
    /// Messages start with the field they are about.
    pub fn validate(&self, duration_s: f64, kind: GatewayKind) -> Result<(), String> {
        if !self.at.is_finite() || self.at < 0.0 {
            return Err(format!(
                "at must be a number of seconds from 0 (got {})",
                self.at
            ));
        }
        if self.at >= duration_s {
            return Err(format!(
                "at ({} s) must be before the end of the load (load.duration = {duration_s} s)",
                self.at
            ));
        }
        if let Some(e) = self.every
            && (!e.is_finite() || e < MIN_EVERY_S)
        {
            return Err(format!(
                "every must be at least {MIN_EVERY_S} seconds (got {e})"
            ));
        }
        let a = self.action.as_str();
        if self.action != ActionKind::Http {
            if self.method.is_some() {
                return Err(format!(
                    "method is only for action = \"http\" (this is \"{a}\")"
                ));
            }
            if self.body.is_some() {
                return Err(format!(
                    "body is only for action = \"http\" (this is \"{a}\")"
                ));
            }
        }
        if kind == GatewayKind::Baseline {
            return Err(format!(
                "action: a baseline case has no gateway to act on (action \"{a}\")"
            ));
        }
        if self.action == ActionKind::Reload {
            if self.path.is_some() || self.port.is_some() {
                return Err("path and port are not for action = \"reload\"".into());
            }
            return Ok(());
        }
        match &self.path {
            None => {
                return Err(format!(
                    "path is needed for action = \"{a}\" (e.g. \"/status\")"
                ));
            }
            Some(p) if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace()) => {
                return Err(format!(
                    "path must start with '/' and contain no spaces (got \"{p}\")"
                ));
            }
            _ => {}
        }
        if let Some(m) = &self.method
            && (m.is_empty() || !m.chars().all(|c| c.is_ascii_uppercase()))
        {
            return Err(format!(
                "method must be an upper-case HTTP method such as GET, POST, PATCH (got \"{m}\")"
            ));
        }
        if self.listener() != Listener::Proxy && !has_admin(kind) {
            return Err(format!(
                "port: gateway {kind} has no {} listener in the lab; use port = \"proxy\" or another gateway",
                self.listener().as_str()
            ));
        }
        Ok(())
    }

    /// The times (seconds after the load starts) this action runs at, before `duration_s`.
    pub fn times(&self, duration_s: f64) -> Vec<f64> {
        let mut v = vec![self.at];
        if let Some(e) = self.every.filter(|e| *e >= MIN_EVERY_S) {
            let mut k = 1.0;
            while self.at + k * e < duration_s && v.len() <= MAX_ACTIONS {
                v.push(self.at + k * e);
                k += 1.0;
            }
        }
        v
    }
}

/// Checks a case's actions; the message names the action (`during[2]`) and the field.
pub fn validate(
    actions: &[DuringAction],
    duration_s: f64,
    kind: GatewayKind,
) -> Result<(), String> {
    for (i, a) in actions.iter().enumerate() {
        a.validate(duration_s, kind)
            .map_err(|e| format!("during[{}].{e}", i + 1))?;
    }
    let n = schedule(actions, duration_s).len();
    if n > MAX_ACTIONS {
        return Err(format!(
            "during: {n} actions scheduled in one run, at most {MAX_ACTIONS}; raise `every`"
        ));
    }
    Ok(())
}

/// Every action occurrence of a run in time order: (seconds after the load starts, index of the
/// action in `actions`).
pub fn schedule(actions: &[DuringAction], duration_s: f64) -> Vec<(f64, usize)> {
    let mut v: Vec<(f64, usize)> = actions
        .iter()
        .enumerate()
        .flat_map(|(i, a)| a.times(duration_s).into_iter().map(move |t| (t, i)))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    v
}

/// Traffic in a stretch of the run, from the load's time series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Start, seconds after the load started.
    pub from_s: f64,
    /// End, seconds after the load started.
    pub to_s: f64,
    /// Seconds of the run counted (the buckets' total width).
    pub seconds: f64,
    /// Responses completed.
    pub responses: u64,
    /// Responses per second.
    pub rps: f64,
    /// Responses with HTTP status ≥ 400.
    pub errors: u64,
    /// `errors / responses`, in percent.
    pub error_pct: f64,
    /// Requests sent in the stretch that never got an answer: their connection broke (wrk
    /// counts those as socket errors) or the load ended first.
    pub lost: u64,
    /// Median latency, ms (`null` without timed responses).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// Highest latency, ms (the middle of its histogram bin).
    pub max_ms: Option<f64>,
}

/// What one action occurrence did (`during` in `result.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// `http`, `reload` or `scrape`.
    pub action: String,
    /// Method (`http`, `scrape`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path (`http`, `scrape`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Listener (`http`, `scrape`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// When it was planned, seconds after the load started.
    pub scheduled_s: f64,
    /// When it started, seconds after the load started (later than planned when the action
    /// before it was still running).
    pub started_s: f64,
    /// How long it took, seconds: the HTTP exchange as the sending host timed it, or the reload
    /// command as the controller timed it.
    pub duration_s: f64,
    /// HTTP status (`http`, `scrape`; absent when no answer came).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// True when it worked (a 2xx answer, or a reload command that succeeded).
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of an `http` action's answer (at most 1 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The file in the run's folder holding a scrape's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<String>,
    /// The traffic from [`WINDOW_S`] before its start to [`WINDOW_S`] after its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowStats>,
}

/// The traffic outside every action's window, and the runs' records with their windows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DuringSummary {
    /// The actions, in the order they ran.
    pub actions: Vec<ActionRecord>,
    /// The traffic away from every action (the first and last [`WINDOW_S`] of the load left
    /// out: ramp-up and the partial last bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside: Option<WindowStats>,
    /// The load per bucket, for the "config change under load" chart: `[start_s, responses,
    /// errors, lost, p99_ms]` (`lost`: requests sent in the bucket that got no answer; `p99_ms`
    /// null when the bucket has no timed response).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<(f64, u64, u64, u64, Option<f64>)>,
    /// Bucket width of `series`, seconds.
    #[serde(default)]
    pub bucket_s: f64,
}

/// Sums the buckets for which `keep(start_s)` holds.
fn stats(series: &Series, from_s: f64, to_s: f64, keep: impl Fn(f64) -> bool) -> WindowStats {
    let mut w = WindowStats {
        from_s,
        to_s,
        ..Default::default()
    };
    let mut bins: BTreeMap<u32, u64> = BTreeMap::new();
    for b in series.buckets.iter().filter(|b| keep(b.start_s)) {
        w.seconds += series.bucket_s;
        w.responses += b.responses;
        w.errors += b.errors;
        w.lost += b.sent.saturating_sub(b.answered);
        for (k, n) in &b.latency_bins {
            *bins.entry(*k).or_default() += n;
        }
    }
    if w.seconds > 0.0 {
        w.rps = w.responses as f64 / w.seconds;
    }
    if w.responses > 0 {
        w.error_pct = 100.0 * w.errors as f64 / w.responses as f64;
    }
    w.p50_ms = quantile_ms(&bins, 0.5);
    w.p99_ms = quantile_ms(&bins, 0.99);
    w.max_ms = quantile_ms(&bins, 1.0);
    w
}

/// Adds to each action the traffic in its window, and computes the traffic outside all windows.
/// A bucket belongs to a window when its middle lies in it. `duration_s` is the load's length.
pub fn analyse(mut actions: Vec<ActionRecord>, series: &Series, duration_s: f64) -> DuringSummary {
    let half = series.bucket_s / 2.0;
    let windows: Vec<(f64, f64)> = actions
        .iter()
        .map(|a| {
            (
                (a.started_s - WINDOW_S).max(0.0),
                a.started_s + a.duration_s + WINDOW_S,
            )
        })
        .collect();
    for (a, (from, to)) in actions.iter_mut().zip(&windows) {
        let (from, to) = (*from, *to);
        a.window = Some(stats(series, from, to, |s| {
            (from..to).contains(&(s + half))
        }));
    }
    let (from, to) = (WINDOW_S, duration_s - WINDOW_S);
    let outside = (to > from).then(|| {
        stats(series, from, to, |s| {
            let mid = s + half;
            (from..to).contains(&mid) && !windows.iter().any(|(f, t)| (*f..*t).contains(&mid))
        })
    });
    let series_rows = series
        .buckets
        .iter()
        .map(|b| {
            (
                b.start_s,
                b.responses,
                b.errors,
                b.sent.saturating_sub(b.answered),
                quantile_ms(&b.latency_bins, 0.99),
            )
        })
        .collect();
    DuringSummary {
        actions,
        outside,
        series: series_rows,
        bucket_s: series.bucket_s,
    }
}

/// A short label for an action (`reload`, `PATCH /upstreams/u1`, `scrape /metrics`).
pub fn label(a: &ActionRecord) -> String {
    match (a.action.as_str(), &a.method, &a.path) {
        ("http", Some(m), Some(p)) => format!("{m} {p}"),
        (kind, _, Some(p)) => format!("{kind} {p}"),
        (kind, _, _) => kind.to_string(),
    }
}

/// One line per action for the progress output: what it did and the traffic around it, then
/// the traffic away from all actions.
pub fn progress_lines(d: &DuringSummary) -> Vec<String> {
    let traffic = |w: &WindowStats| {
        format!(
            "{:.0} req/s, {} errors, {} lost, p99 {} ms",
            w.rps,
            w.errors,
            w.lost,
            ms(w.p99_ms)
        )
    };
    let mut v: Vec<String> = d
        .actions
        .iter()
        .map(|a| {
            let outcome = match (a.ok, a.status) {
                (true, Some(s)) => format!("HTTP {s}"),
                (true, None) => "ok".into(),
                (false, _) => format!("FAILED {}", a.error.as_deref().unwrap_or("")),
            };
            format!(
                "{} at {:.2} s: {outcome} in {:.1} ms; around it {}",
                label(a),
                a.started_s,
                a.duration_s * 1000.0,
                a.window.as_ref().map(traffic).unwrap_or_default()
            )
        })
        .collect();
    if let Some(o) = &d.outside {
        v.push(format!("away from actions: {}", traffic(o)));
    }
    v
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// The "Actions during load" section of summary.md: each action with the traffic around it,
/// and the traffic away from every action, per run (`runs`: each run's heading, such as
/// `case · version · repeat 1`, and its summary). Empty when no run had actions.
pub fn markdown<'a>(runs: impl IntoIterator<Item = (String, &'a DuringSummary)>) -> String {
    let mut m = String::new();
    for (heading, d) in runs {
        if m.is_empty() {
            m.push_str(&format!(
                "\n## Actions during load\n\nTraffic from {WINDOW_S} s before each action to {WINDOW_S} s after it, against the rest of the run (its first and last {WINDOW_S} s left out). Errors: HTTP status ≥ 400; lost: requests whose connection broke (wrk's socket errors) or still in flight at the end. Latency from 100 ms buckets, within 6%.\n"
            ));
        }
        m.push_str(&format!(
            "\n### {heading}\n\n| at s | action | status | took ms | req/s | errors | lost | p50 ms | p99 ms |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
        ));
        let row = |at: String, what: String, status: String, took: String, w: &WindowStats| {
            format!(
                "| {at} | {what} | {status} | {took} | {:.0} | {} | {} | {} | {} |\n",
                w.rps,
                w.errors,
                w.lost,
                ms(w.p50_ms),
                ms(w.p99_ms)
            )
        };
        for a in &d.actions {
            let status = match (a.ok, a.status) {
                (true, Some(s)) => s.to_string(),
                (true, None) => "ok".into(),
                (false, _) => format!("failed: {}", a.error.as_deref().unwrap_or("")),
            };
            let w = a.window.clone().unwrap_or_default();
            m.push_str(&row(
                format!("{:.2}", a.started_s),
                label(a),
                status,
                format!("{:.1}", a.duration_s * 1000.0),
                &w,
            ));
        }
        if let Some(o) = &d.outside {
            m.push_str(&row(
                "".into(),
                "*(away from actions)*".into(),
                "".into(),
                "".into(),
                o,
            ));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::load::series::Bucket;

    fn action(toml_text: &str) -> DuringAction {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn validates_with_messages_that_name_the_field() {
        let ok = action("at = 5\nevery = 3\naction = \"http\"\nmethod = \"PATCH\"\npath = \"/x\"");
        assert!(ok.validate(10.0, GatewayKind::Kong).is_ok());
        let cases = [
            (
                "at = -1\naction = \"reload\"",
                GatewayKind::Nginx,
                "at must be",
            ),
            (
                "at = 10\naction = \"reload\"",
                GatewayKind::Nginx,
                "before the end of the load",
            ),
            (
                "at = 1\nevery = 0\naction = \"reload\"",
                GatewayKind::Nginx,
                "every must be at least",
            ),
            (
                "at = 1\naction = \"http\"\npath = \"/x\"",
                GatewayKind::Nginx,
                "port: gateway nginx has no admin",
            ),
            (
                "at = 1\naction = \"http\"",
                GatewayKind::Kong,
                "path is needed",
            ),
            (
                "at = 1\naction = \"scrape\"\nmethod = \"POST\"\npath = \"/m\"",
                GatewayKind::Kong,
                "method is only for",
            ),
            (
                "at = 1\naction = \"reload\"",
                GatewayKind::Baseline,
                "baseline case has no gateway",
            ),
            (
                "at = 1\naction = \"http\"\nmethod = \"patch\"\npath = \"/x\"",
                GatewayKind::Kong,
                "upper-case",
            ),
        ];
        for (text, kind, want) in cases {
            let e = action(text).validate(10.0, kind).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = toml::from_str::<DuringAction>("at = 1\naction = \"restart\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http") && e.contains("reload") && e.contains("scrape"),
            "{e}"
        );
        let e = validate(
            &[ok.clone(), action("at = 1\naction = \"http\"")],
            10.0,
            GatewayKind::Kong,
        )
        .unwrap_err();
        assert!(e.starts_with("during[2].path"), "{e}");
    }

    #[test]
    fn schedules_repeats_until_the_load_ends() {
        let a = action("at = 5\nevery = 3\naction = \"reload\"");
        let b = action("at = 6\naction = \"reload\"");
        let s = schedule(&[a, b], 15.0);
        assert_eq!(s, vec![(5.0, 0), (6.0, 1), (8.0, 0), (11.0, 0), (14.0, 0)]);
    }

    #[test]
    fn windows_take_the_buckets_around_each_action() {
        // 10 s at 1000 responses per 100 ms, 1 ms each; around 5 s, 20 errors per bucket and
        // 100 ms latencies for half the responses.
        let buckets = (0..100)
            .map(|i| {
                let t = i as f64 / 10.0;
                let hot = (4.5..5.5).contains(&t);
                Bucket {
                    start_s: t,
                    responses: 1000,
                    errors: if hot { 20 } else { 0 },
                    sent: if hot { 1010 } else { 1000 },
                    answered: 1000,
                    latency_bins: if hot {
                        BTreeMap::from([(60, 500), (100, 500)])
                    } else {
                        BTreeMap::from([(60, 1000)])
                    },
                }
            })
            .collect();
        let series = Series {
            bucket_s: 0.1,
            buckets,
        };
        let rec = ActionRecord {
            action: "reload".into(),
            started_s: 5.0,
            duration_s: 0.0,
            ..Default::default()
        };
        let s = analyse(vec![rec], &series, 10.0);
        let w = s.actions[0].window.as_ref().unwrap();
        assert_eq!((w.from_s, w.to_s), (4.0, 6.0));
        assert_eq!(w.responses, 20_000);
        assert_eq!((w.errors, w.lost), (200, 100));
        assert!((w.rps - 10_000.0).abs() < 1e-6);
        assert!(w.p99_ms.unwrap() > 100.0);
        let o = s.outside.unwrap();
        assert_eq!((o.errors, o.lost), (0, 0));
        assert_eq!(o.responses, 60_000, "1–4 s and 6–9 s");
        assert!(o.p99_ms.unwrap() < 1.2);
        assert_eq!(s.series.len(), 100);
    }
}
