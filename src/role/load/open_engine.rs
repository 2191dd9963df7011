//! perflab's open-loop HTTP load generator: the engine behind `perflab open-load` (a hidden
//! subcommand that the load role runs on the load host).
//!
//! Why our own: a closed-loop generator (wrk) sends a connection's next request only when the
//! previous answer came back, so when the gateway stalls it stops sending and the stall hides
//! from its percentiles (coordinated omission, Gil Tene, "How NOT to measure latency", 2015).
//! Here every request has an *intended* send time on a fixed schedule (request `i` at
//! `start + i / rate`), and its latency is measured from that intended time, not from when it
//! was actually sent — the correction wrk2 made. A request that waits for a free connection
//! behind a stalled one is charged the whole wait.
//!
//! `connections` HTTP/1.1 keep-alive connections, each a tokio task, share one schedule: a free
//! connection takes the next request number and sends it when it is due, so a slow answer on
//! one connection does not hold back the others (a request waits only when every connection is
//! busy). `threads` worker threads run the tasks.
//! Latencies go into per-connection HDR histograms that are merged at the end, with a
//! per-second series (requests, errors, worst latency). The result is one JSON document on
//! stdout ([`OpenLoadReport`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::histogram::{self, LatencyHistogram};
use super::result::ErrorCounts;

/// The generator's name and version in results.
pub const GENERATOR: &str = "perflab-open/1";

/// How late after the window a request of the window may still be sent (timer wake-ups are
/// not exact): later ones count as not sent.
const SEND_GRACE_S: f64 = 0.1;

/// What to run.
#[derive(Debug, Clone)]
pub struct OpenLoadPlan {
    /// Target URL (`http://host:port/path`).
    pub url: String,
    /// Requests per second asked for.
    pub rate: f64,
    /// Connections to spread the schedule over.
    pub connections: u32,
    /// Worker threads.
    pub threads: u32,
    /// Seconds of scheduled sending.
    pub duration_s: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Extra headers, `Name: value`.
    pub headers: Vec<String>,
}

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Responses whose intended send time fell in this second.
    pub requests: u64,
    /// Failed requests (socket errors, timeouts, non-2xx/3xx) intended in this second.
    pub errors: u64,
    /// Worst latency of the second, in milliseconds.
    pub max_ms: f64,
}

/// What `perflab open-load` prints: the whole measurement of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenLoadReport {
    /// [`GENERATOR`].
    pub generator: String,
    /// Target URL.
    pub url: String,
    /// Requests per second asked for.
    pub rate_asked: f64,
    /// Connections.
    pub connections: u32,
    /// Worker threads.
    pub threads: u32,
    /// Seconds of scheduled sending.
    pub duration_s: f64,
    /// Requests sent during the scheduled window.
    pub sent: u64,
    /// Requests answered with 2xx/3xx (their latencies are in the histogram).
    pub completed: u64,
    /// Failed requests by kind.
    pub errors: ErrorCounts,
    /// Bytes of response bodies read.
    pub body_bytes: u64,
    /// Worst lateness of an actual send behind its intended time, milliseconds: how far the
    /// generator (or its connections) fell behind the schedule.
    pub max_send_lag_ms: f64,
    /// Per-second series, from the start of the schedule.
    pub series: Vec<SecondStats>,
    /// The latency histogram (µs) in the `hdrhistogram` V2 serialised form, base64.
    pub histogram: String,
}

impl OpenLoadReport {
    /// Requests per second actually sent.
    pub fn rate_achieved(&self) -> f64 {
        self.sent as f64 / self.duration_s.max(1e-9)
    }
}

/// What one connection task measured.
struct ConnStats {
    hist: LatencyHistogram,
    sent: u64,
    completed: u64,
    errors: ErrorCounts,
    body_bytes: u64,
    max_lag: Duration,
    series: Vec<SecondStats>,
}

impl ConnStats {
    fn new(seconds: usize) -> Self {
        ConnStats {
            hist: histogram::new_histogram(),
            sent: 0,
            completed: 0,
            errors: ErrorCounts::default(),
            body_bytes: 0,
            max_lag: Duration::ZERO,
            series: vec![SecondStats::default(); seconds],
        }
    }
}

/// The parts of a URL the engine needs.
#[derive(Debug)]
struct Target {
    authority: String,
    path_and_query: String,
}

fn parse_target(url: &str) -> Result<Target, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "only http:// URLs are supported by the open-loop generator (got {url})"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("URL {url} has no host"))?;
    let authority = if authority.port().is_some() {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        authority,
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into()),
    })
}

/// Runs the plan and returns its report. Blocks the calling thread.
pub fn run(plan: &OpenLoadPlan) -> Result<OpenLoadReport, String> {
    let target = parse_target(&plan.url)?;
    let mut headers = Vec::new();
    for h in &plan.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("header \"{h}\" must look like \"Name: value\""))?;
        headers.push((
            hyper::header::HeaderName::from_bytes(k.trim().as_bytes())
                .map_err(|e| format!("bad header name in \"{h}\": {e}"))?,
            hyper::header::HeaderValue::from_str(v.trim())
                .map_err(|e| format!("bad header value in \"{h}\": {e}"))?,
        ));
    }
    if !(plan.rate > 0.0 && plan.rate.is_finite()) {
        return Err(format!("rate must be above 0 (got {})", plan.rate));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads.max(1) as usize)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let stats = rt.block_on(async {
        let start = Instant::now() + Duration::from_millis(20);
        let shared = std::sync::Arc::new((target, headers, AtomicU64::new(0)));
        let mut tasks = Vec::new();
        for _ in 0..plan.connections.max(1) {
            let shared = shared.clone();
            let plan = plan.clone();
            tasks.push(tokio::spawn(async move {
                connection(&plan, &shared.0, &shared.1, &shared.2, start).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(
                t.await
                    .map_err(|e| format!("a connection task failed: {e}"))?,
            );
        }
        Ok::<_, String>(out)
    })?;
    let mut report = OpenLoadReport {
        generator: GENERATOR.into(),
        url: plan.url.clone(),
        rate_asked: plan.rate,
        connections: plan.connections,
        threads: plan.threads,
        duration_s: plan.duration_s,
        sent: 0,
        completed: 0,
        errors: ErrorCounts::default(),
        body_bytes: 0,
        max_send_lag_ms: 0.0,
        series: vec![SecondStats::default(); seconds(plan)],
        histogram: String::new(),
    };
    let merged = histogram::merge(stats.iter().map(|s| &s.hist));
    for s in &stats {
        report.sent += s.sent;
        report.completed += s.completed;
        report.body_bytes += s.body_bytes;
        report.errors.connect += s.errors.connect;
        report.errors.read += s.errors.read;
        report.errors.write += s.errors.write;
        report.errors.timeout += s.errors.timeout;
        report.errors.non_2xx_3xx += s.errors.non_2xx_3xx;
        report.max_send_lag_ms = report.max_send_lag_ms.max(s.max_lag.as_secs_f64() * 1000.0);
        for (total, one) in report.series.iter_mut().zip(&s.series) {
            total.requests += one.requests;
            total.errors += one.errors;
            total.max_ms = total.max_ms.max(one.max_ms);
        }
    }
    report.histogram = histogram::encode_base64(&merged);
    Ok(report)
}

fn seconds(plan: &OpenLoadPlan) -> usize {
    plan.duration_s.ceil().max(1.0) as usize
}

/// Why one request failed.
enum Failure {
    Connect,
    Write,
    Read,
    Timeout,
}

/// One connection: takes the next request of the shared schedule (`next`) whenever it is free,
/// reconnecting after a failure.
async fn connection(
    plan: &OpenLoadPlan,
    target: &Target,
    headers: &[(hyper::header::HeaderName, hyper::header::HeaderValue)],
    next: &AtomicU64,
    start: Instant,
) -> ConnStats {
    let mut st = ConnStats::new(seconds(plan));
    let period = 1.0 / plan.rate;
    let mut sender: Option<http1::SendRequest<Empty<Bytes>>> = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let offset = i as f64 * period;
        if offset >= plan.duration_s {
            break;
        }
        let intended = start + Duration::from_secs_f64(offset);
        tokio::time::sleep_until(intended).await;
        let now = Instant::now();
        st.max_lag = st.max_lag.max(now.saturating_duration_since(intended));
        // Requests whose turn came after the window closed (the connection fell behind) are
        // not sent: the shortfall shows as an achieved rate below the asked one.
        if now.duration_since(start).as_secs_f64() >= plan.duration_s + SEND_GRACE_S {
            break;
        }
        st.sent += 1;
        let outcome =
            tokio::time::timeout(plan.timeout, request(&mut sender, target, headers)).await;
        let latency = Instant::now().saturating_duration_since(intended);
        let second = &mut st.series[(offset as usize).min(seconds(plan) - 1)];
        second.max_ms = second.max_ms.max(latency.as_secs_f64() * 1000.0);
        match outcome {
            Ok(Ok((status, bytes))) => {
                st.body_bytes += bytes;
                if (200..400).contains(&status) {
                    st.completed += 1;
                    second.requests += 1;
                    st.hist.saturating_record(latency.as_micros() as u64);
                } else {
                    st.errors.non_2xx_3xx += 1;
                    second.errors += 1;
                }
            }
            Ok(Err(f)) => {
                sender = None;
                second.errors += 1;
                match f {
                    Failure::Connect => st.errors.connect += 1,
                    Failure::Write => st.errors.write += 1,
                    Failure::Read => st.errors.read += 1,
                    Failure::Timeout => st.errors.timeout += 1,
                }
                if matches!(f, Failure::Connect) {
                    // Do not spin on a refused port: wait for the next turn.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Err(_) => {
                sender = None;
                second.errors += 1;
                st.errors.timeout += 1;
            }
        }
    }
    st
}

/// Sends one GET on the connection (opening it first if needed); returns the status and the
/// body's length.
async fn request(
    sender: &mut Option<http1::SendRequest<Empty<Bytes>>>,
    target: &Target,
    headers: &[(hyper::header::HeaderName, hyper::header::HeaderValue)],
) -> Result<(u16, u64), Failure> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        let tcp = tokio::net::TcpStream::connect(&target.authority)
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (s, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|_| Failure::Connect)?;
        tokio::spawn(conn);
        *sender = Some(s);
    }
    let s = sender.as_mut().expect("set above");
    s.ready().await.map_err(|_| Failure::Write)?;
    let mut req = hyper::Request::get(target.path_and_query.as_str())
        .header(hyper::header::HOST, target.authority.as_str());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let req = req.body(Empty::new()).map_err(|_| Failure::Write)?;
    let resp = s.send_request(req).await.map_err(|e| {
        if e.is_timeout() {
            Failure::Timeout
        } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
            Failure::Read
        } else {
            Failure::Write
        }
    })?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Failure::Read)?;
        if let Some(d) = frame.data_ref() {
            bytes += d.len() as u64;
        }
    }
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_need_http_and_get_a_port() {
        let t = parse_target("http://127.0.0.1/x?y=1").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path_and_query.as_str()),
            ("127.0.0.1:80", "/x?y=1")
        );
        assert!(
            parse_target("https://h/")
                .unwrap_err()
                .contains("only http://")
        );
    }
}
