//! Parser for the text wrk 4.x prints, into a [`LoadResult`].
//!
//! wrk has no machine-readable output: its summary is formatted for people, with unit suffixes
//! chosen per value (`635.91us`, `1.84ms`, `2.01s`; `221.20KB`, `1.09GB`; `12.34k` requests per
//! second). Comparing runs needs plain numbers, so this module turns the summary into
//! milliseconds, bytes and counts. Kong's framework handed the raw string around and scraped it
//! with patterns; perflab parses it once, right after the run, and keeps the raw text beside the
//! result so a parser fix can re-read old runs.
//!
//! Three things make the text tricky and are handled on purpose:
//! - A Lua script's `done()` hook prints *after* wrk's summary, and may print lines that look
//!   exactly like wrk's (`Requests/sec: …`). wrk's own summary always ends with the
//!   `Transfer/sec:` line, so everything after that line is the script's output and is never
//!   read as wrk lines.
//! - Runs in which no request finished in time print `-nan%` for the share within one standard
//!   deviation; that becomes `None`, not a failure.
//! - wrk2 and other forks print other percentile labels (`99.990%`); only wrk's exact labels
//!   `50%`, `75%`, `90%` and `99%` fill the percentiles.
//!
//! When wrk cannot reach its target it prints `unable to connect to HOST:PORT REASON` and stops;
//! that becomes [`WrkParseError::ConnectFailed`], naming the address.
//!
//! Units, as wrk 4.x formats them: times `us`, `ms`, `s`, `m`, `h`; bytes `B`, `KB`, `MB`, `GB`,
//! `TB`, `PB` in powers of 1024; counts with `k`, `M`, `G`, `T`, `P` in powers of 1000.

use super::result::{ErrorCounts, LoadResult, ThreadStats};

/// Why wrk's output could not be turned into a [`LoadResult`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WrkParseError {
    /// wrk could not connect to its target and did not run.
    #[error("wrk could not connect to {address}: {reason}")]
    ConnectFailed {
        /// `HOST:PORT` as wrk printed it.
        address: String,
        /// The system's reason (`Connection refused`).
        reason: String,
    },
    /// The output is empty (wrk printed nothing).
    #[error("wrk printed nothing")]
    Empty,
    /// A line wrk always prints in its summary is absent.
    #[error("wrk output has no {what} line; it begins: {excerpt:?}")]
    Missing {
        /// Which line is missing.
        what: &'static str,
        /// The first characters of the output, to show what came instead.
        excerpt: String,
    },
    /// A line looks like one of wrk's summary lines but its values cannot be read.
    #[error("cannot read wrk's {what} line: {line:?}")]
    Malformed {
        /// Which kind of line it is.
        what: &'static str,
        /// The line as printed.
        line: String,
    },
}

impl From<WrkParseError> for crate::Error {
    fn from(e: WrkParseError) -> Self {
        crate::Error::Load(e.to_string())
    }
}

/// Splits `s` into its numeric part and the given suffix, trying `units` in order (longest
/// suffixes must come first); returns the finite, non-negative number times the unit's factor.
fn scaled(s: &str, units: &[(&str, f64)]) -> Option<f64> {
    let s = s.trim();
    units.iter().find_map(|(suffix, factor)| {
        let number = s.strip_suffix(suffix)?;
        let value: f64 = number.parse().ok()?;
        (value.is_finite() && value >= 0.0).then_some(value * factor)
    })
}

/// Reads a wrk time value (`635.91us`, `1.84ms`, `2.01s`, `1.50m`, `2.00h`) as milliseconds.
///
/// Returns `None` for anything else: a missing unit, a `nan`, a negative or infinite number.
pub fn parse_duration_ms(s: &str) -> Option<f64> {
    scaled(
        s,
        &[
            ("us", 0.001),
            ("ms", 1.0),
            ("s", 1_000.0),
            ("m", 60_000.0),
            ("h", 3_600_000.0),
        ],
    )
}

/// Reads a wrk byte amount (`0.00B`, `221.20KB`, `8.18MB`, `1.09GB`, `1.00TB`, `1.00PB`) as bytes.
///
/// wrk's multiples are powers of 1024. Returns `None` without the `B`, or for a `nan`, negative
/// or infinite number.
pub fn parse_bytes(s: &str) -> Option<f64> {
    const K: f64 = 1024.0;
    scaled(
        s,
        &[
            ("KB", K),
            ("MB", K * K),
            ("GB", K * K * K),
            ("TB", K * K * K * K),
            ("PB", K * K * K * K * K),
            ("B", 1.0),
        ],
    )
}

/// Reads a wrk count (`712.43`, `12.34k`, `1.20M`, `3.00G`) as a plain number.
///
/// wrk's count suffixes `k`, `M`, `G`, `T`, `P` are powers of 1000. Returns `None` for a `nan`,
/// negative or infinite number, or an unknown suffix.
pub fn parse_count(s: &str) -> Option<f64> {
    scaled(
        s,
        &[
            ("k", 1e3),
            ("M", 1e6),
            ("G", 1e9),
            ("T", 1e12),
            ("P", 1e15),
            ("", 1.0),
        ],
    )
}

/// Reads the `+/- Stdev` column (`93.22%`): `Ok(None)` for wrk's `-nan%`/`nan%`, `Err(())` for
/// anything that is not a percentage.
fn parse_pct(s: &str) -> Result<Option<f64>, ()> {
    let number = s.trim().strip_suffix('%').ok_or(())?;
    if number
        .trim_start_matches(['-', '+'])
        .eq_ignore_ascii_case("nan")
    {
        return Ok(None);
    }
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(()),
    }
}

/// The first characters of the output, for error messages.
fn excerpt(text: &str) -> String {
    const MAX: usize = 160;
    let t = text.trim();
    match t.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// A `Latency`/`Req/Sec` row: label then avg, stdev, max (read by `value`) and `+/- Stdev`.
fn stats_row(
    line: &str,
    what: &'static str,
    value: fn(&str) -> Option<f64>,
) -> Result<(f64, f64, f64, Option<f64>), WrkParseError> {
    let bad = || WrkParseError::Malformed {
        what,
        line: line.to_string(),
    };
    let fields: Vec<&str> = line.split_whitespace().skip(1).collect();
    let [mean, stdev, max, pct] = fields[..] else {
        return Err(bad());
    };
    Ok((
        value(mean).ok_or_else(bad)?,
        value(stdev).ok_or_else(bad)?,
        value(max).ok_or_else(bad)?,
        parse_pct(pct).map_err(|()| bad())?,
    ))
}

/// The URL of a `Running 2s test @ URL` header line.
fn header_url(line: &str) -> Option<&str> {
    let (_, url) = line.strip_prefix("Running ")?.split_once(" test @ ")?;
    Some(url.trim())
}

/// `N requests in 2.00s, 12.34MB read` → (requests, seconds, bytes).
fn requests_line(line: &str) -> Option<Result<(u64, f64, f64), WrkParseError>> {
    let (count, rest) = line.split_once(" requests in ")?;
    let count = count.trim();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let read = || -> Option<(u64, f64, f64)> {
        let (time, bytes) = rest.trim().strip_suffix(" read")?.split_once(", ")?;
        Some((
            count.parse().ok()?,
            parse_duration_ms(time)? / 1000.0,
            parse_bytes(bytes)?,
        ))
    };
    Some(read().ok_or_else(|| WrkParseError::Malformed {
        what: "request count",
        line: line.to_string(),
    }))
}

/// `Socket errors: connect A, read B, write C, timeout D` (after the prefix) into `errors`.
fn socket_errors(rest: &str, line: &str, errors: &mut ErrorCounts) -> Result<(), WrkParseError> {
    let bad = || WrkParseError::Malformed {
        what: "Socket errors",
        line: line.to_string(),
    };
    for part in rest.split(',') {
        let (name, n) = part.trim().split_once(' ').ok_or_else(bad)?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        match name {
            "connect" => errors.connect = n,
            "read" => errors.read = n,
            "write" => errors.write = n,
            "timeout" => errors.timeout = n,
            _ => return Err(bad()),
        }
    }
    Ok(())
}

/// Parses everything wrk 4.x prints for one run (stdout, optionally with stderr appended).
///
/// Required: the request count line, the `Latency` row, `Requests/sec:` and `Transfer/sec:`
/// (wrk prints all four in every completed run). Optional: the `Running … test @ URL` header, the
/// threads/connections line, the `Req/Sec` row, the `Latency Distribution` block (`--latency`),
/// `Socket errors:` and `Non-2xx or 3xx responses:`. Lines before the header (a Lua `setup()`
/// may print there) and unknown lines inside the summary are ignored; if a line appears twice in
/// the summary, the later one wins (wrk prints its own at the end). Everything after the
/// `Transfer/sec:` line goes, trimmed, into [`LoadResult::script_output`].
pub fn parse(text: &str) -> Result<LoadResult, WrkParseError> {
    if text.trim().is_empty() {
        return Err(WrkParseError::Empty);
    }
    let mut out = LoadResult::default();
    let mut requests: Option<(u64, f64, f64)> = None;
    let mut latency: Option<(f64, f64, f64, Option<f64>)> = None;
    let mut rps: Option<f64> = None;
    let mut transfer: Option<f64> = None;
    let mut in_distribution = false;

    // The summary starts at the last `Running … test @` header before wrk's final line; without
    // a header, wrk did not run: look for its reason, else read whatever is there.
    let mut start = None;
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim();
        if header_url(line).is_some() {
            start = Some(offset);
        } else if line.starts_with("Transfer/sec:") {
            break;
        }
        offset += raw.len();
    }
    if start.is_none()
        && let Some(rest) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("unable to connect to "))
    {
        let (address, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        return Err(WrkParseError::ConnectFailed {
            address: address.to_string(),
            reason: reason.trim().to_string(),
        });
    }
    let mut offset = start.unwrap_or(0);

    for raw in text[offset..].split_inclusive('\n') {
        offset += raw.len();
        let line = raw.trim();

        if in_distribution {
            if let Some((label, value)) = line.split_once(char::is_whitespace)
                && let Some(num) = label.strip_suffix('%')
                && !num.is_empty()
                && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            {
                let slot = match label {
                    "50%" => Some(&mut out.latency_ms.p50),
                    "75%" => Some(&mut out.latency_ms.p75),
                    "90%" => Some(&mut out.latency_ms.p90),
                    "99%" => Some(&mut out.latency_ms.p99),
                    _ => None, // another tool's label, e.g. wrk2's `99.990%`
                };
                if let Some(slot) = slot {
                    *slot =
                        Some(
                            parse_duration_ms(value).ok_or_else(|| WrkParseError::Malformed {
                                what: "Latency Distribution",
                                line: line.to_string(),
                            })?,
                        );
                }
                continue;
            }
            in_distribution = false;
        }

        if let Some(url) = header_url(line) {
            out.url = Some(url.to_string());
        } else if let [t, "threads", "and", c, "connections"] =
            line.split_whitespace().collect::<Vec<_>>()[..]
            && let (Ok(t), Ok(c)) = (t.parse(), c.parse())
        {
            out.threads = Some(t);
            out.connections = Some(c);
        } else if line.starts_with("Latency Distribution") {
            in_distribution = true;
        } else if line.split_whitespace().next() == Some("Latency") {
            latency = Some(stats_row(line, "Latency", parse_duration_ms)?);
        } else if line.split_whitespace().next() == Some("Req/Sec") {
            let (mean, stdev, max, within_stdev_pct) = stats_row(line, "Req/Sec", parse_count)?;
            out.thread_rps = Some(ThreadStats {
                mean,
                stdev,
                max,
                within_stdev_pct,
            });
        } else if let Some(parsed) = requests_line(line) {
            requests = Some(parsed?);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            socket_errors(rest, line, &mut out.errors)?;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            out.errors.non_2xx_3xx = rest.trim().parse().map_err(|_| WrkParseError::Malformed {
                what: "Non-2xx or 3xx responses",
                line: line.to_string(),
            })?;
        } else if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = Some(parse_count(rest).ok_or_else(|| WrkParseError::Malformed {
                what: "Requests/sec",
                line: line.to_string(),
            })?);
        } else if let Some(rest) = line.strip_prefix("Transfer/sec:") {
            transfer = Some(parse_bytes(rest).ok_or_else(|| WrkParseError::Malformed {
                what: "Transfer/sec",
                line: line.to_string(),
            })?);
            let after = text[offset..].trim();
            out.script_output = (!after.is_empty()).then(|| after.to_string());
            break;
        }
    }

    let missing = |what| WrkParseError::Missing {
        what,
        excerpt: excerpt(text),
    };
    let (count, duration_s, bytes) =
        requests.ok_or_else(|| missing("`N requests in T, B read`"))?;
    let (mean, stdev, max, within_stdev_pct) = latency.ok_or_else(|| missing("`Latency`"))?;
    out.rps = rps.ok_or_else(|| missing("`Requests/sec:`"))?;
    out.transfer_bytes_per_s = transfer.ok_or_else(|| missing("`Transfer/sec:`"))?;
    out.requests = count;
    out.duration_s = duration_s;
    out.transfer_bytes = Some(bytes);
    out.latency_ms.mean = mean;
    out.latency_ms.stdev = stdev;
    out.latency_ms.max = max;
    out.latency_ms.within_stdev_pct = within_stdev_pct;
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Fixture tests read real wrk 4.1.0 outputs recorded by `scripts/record-wrk-fixtures.sh`;
    //! every expected number below is copied from the fixture file named in the test.

    use super::*;

    const KB: f64 = 1024.0;
    const MB: f64 = 1024.0 * 1024.0;

    const PLAIN: &str = include_str!("../../../tests/fixtures/wrk/plain.txt");
    const LATENCY: &str = include_str!("../../../tests/fixtures/wrk/latency.txt");
    const LARGE_BODY: &str = include_str!("../../../tests/fixtures/wrk/large-body.txt");
    const NON_2XX: &str = include_str!("../../../tests/fixtures/wrk/non-2xx.txt");
    const TIMEOUTS_SOME: &str = include_str!("../../../tests/fixtures/wrk/timeouts-some.txt");
    const TIMEOUTS_ALL: &str = include_str!("../../../tests/fixtures/wrk/timeouts-all.txt");
    const SOCKET_CLOSED: &str =
        include_str!("../../../tests/fixtures/wrk/socket-errors-closed.txt");
    const SOCKET_KILLED: &str =
        include_str!("../../../tests/fixtures/wrk/socket-errors-server-killed.txt");
    const DONE_HOOK: &str = include_str!("../../../tests/fixtures/wrk/done-hook.txt");
    const CONNECT_REFUSED: &str = include_str!("../../../tests/fixtures/wrk/connect-refused.txt");

    /// Asserts two floats agree to within rounding of the unit conversions.
    #[track_caller]
    fn close(actual: f64, expected: f64) {
        let tol = 1e-9 * expected.abs().max(1.0);
        assert!(
            (actual - expected).abs() <= tol,
            "expected {expected}, got {actual}"
        );
    }

    #[track_caller]
    fn close_opt(actual: Option<f64>, expected: f64) {
        close(
            actual.unwrap_or_else(|| panic!("expected {expected}, got None")),
            expected,
        );
    }

    fn parsed(text: &str) -> LoadResult {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn plain_fixture() {
        let r = parsed(PLAIN);
        let header_url = PLAIN
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("Running 2s test @ "));
        assert_eq!(r.url.as_deref(), header_url);
        assert!(r.url.as_deref().unwrap().starts_with("http://127.0.0.1:"));
        assert_eq!((r.threads, r.connections), (Some(2), Some(10)));
        close(r.latency_ms.mean, 1.05);
        close(r.latency_ms.stdev, 2.14);
        close(r.latency_ms.max, 24.17);
        close_opt(r.latency_ms.within_stdev_pct, 90.46);
        let t = r.thread_rps.expect("Req/Sec row");
        close(t.mean, 13_960.0);
        close(t.stdev, 6_670.0);
        close(t.max, 30_240.0);
        close_opt(t.within_stdev_pct, 63.41);
        assert_eq!(r.requests, 57_206);
        close(r.duration_s, 2.10);
        close_opt(r.transfer_bytes, 8.18 * MB);
        close(r.rps, 27_240.46);
        close(r.transfer_bytes_per_s, 3.90 * MB);
        assert_eq!(r.errors, ErrorCounts::default());
        // No --latency: no percentiles.
        assert_eq!(
            (
                r.latency_ms.p50,
                r.latency_ms.p75,
                r.latency_ms.p90,
                r.latency_ms.p99
            ),
            (None, None, None, None)
        );
        assert_eq!(r.script_output, None);
    }

    #[test]
    fn latency_fixture() {
        let r = parsed(LATENCY);
        close(r.latency_ms.mean, 1.13);
        close(r.latency_ms.stdev, 1.99);
        close(r.latency_ms.max, 14.29);
        close_opt(r.latency_ms.within_stdev_pct, 86.93);
        let t = r.thread_rps.expect("Req/Sec row");
        close(t.mean, 15_190.0);
        close(t.stdev, 8_530.0);
        close(t.max, 28_830.0);
        close_opt(t.within_stdev_pct, 70.73);
        close_opt(r.latency_ms.p50, 0.194);
        close_opt(r.latency_ms.p75, 1.05);
        close_opt(r.latency_ms.p90, 3.92);
        close_opt(r.latency_ms.p99, 8.74);
        assert_eq!(r.requests, 62_110);
        close(r.duration_s, 2.10);
        close_opt(r.transfer_bytes, 8.88 * MB);
        close(r.rps, 29_578.26);
        close(r.transfer_bytes_per_s, 4.23 * MB);
        assert_eq!(r.errors.total(), 0);
        assert_eq!(r.script_output, None);
    }

    #[test]
    fn large_body_fixture() {
        let r = parsed(LARGE_BODY);
        assert!(r.url.as_deref().unwrap().ends_with("/big"));
        close(r.latency_ms.mean, 1.84);
        close(r.latency_ms.stdev, 1.62);
        close(r.latency_ms.max, 11.56);
        close_opt(r.latency_ms.within_stdev_pct, 83.16);
        let t = r.thread_rps.expect("Req/Sec row");
        close(t.mean, 3_160.0);
        close(t.stdev, 1_150.0);
        close(t.max, 7_200.0);
        close_opt(t.within_stdev_pct, 82.50);
        close_opt(r.latency_ms.p50, 1.19);
        close_opt(r.latency_ms.p75, 2.34);
        close_opt(r.latency_ms.p90, 4.26);
        close_opt(r.latency_ms.p99, 7.32);
        assert_eq!(r.requests, 12_603);
        close(r.duration_s, 2.01);
        close_opt(r.transfer_bytes, 790.61 * MB);
        close(r.rps, 6_262.20);
        close(r.transfer_bytes_per_s, 392.84 * MB);
        // 64 KiB bodies: bytes per request is a little above 64 KiB (headers).
        let per_request = r.transfer_bytes.unwrap() / r.requests as f64;
        assert!(
            (64.0 * KB..66.0 * KB).contains(&per_request),
            "{per_request}"
        );
    }

    #[test]
    fn non_2xx_fixture() {
        let r = parsed(NON_2XX);
        assert_eq!((r.threads, r.connections), (Some(1), Some(4)));
        close(r.latency_ms.mean, 0.73456);
        close(r.latency_ms.stdev, 1.33);
        close(r.latency_ms.max, 11.94);
        close_opt(r.latency_ms.within_stdev_pct, 86.52);
        let t = r.thread_rps.expect("Req/Sec row");
        close(t.mean, 16_270.0);
        close(t.stdev, 2_030.0);
        close(t.max, 18_930.0);
        close_opt(t.within_stdev_pct, 70.00);
        assert_eq!(r.requests, 16_242);
        close(r.duration_s, 1.01);
        close_opt(r.transfer_bytes, 4.77 * MB);
        assert_eq!(r.errors.non_2xx_3xx, 16_242);
        assert_eq!(
            (
                r.errors.connect,
                r.errors.read,
                r.errors.write,
                r.errors.timeout
            ),
            (0, 0, 0, 0)
        );
        close(r.rps, 16_119.70);
        close(r.transfer_bytes_per_s, 4.73 * MB);
    }

    #[test]
    fn timeouts_some_fixture() {
        let r = parsed(TIMEOUTS_SOME);
        assert_eq!((r.threads, r.connections), (Some(1), Some(8)));
        close(r.latency_ms.mean, 0.47451);
        close(r.latency_ms.stdev, 1.18);
        close(r.latency_ms.max, 20.40);
        close_opt(r.latency_ms.within_stdev_pct, 94.10);
        let t = r.thread_rps.expect("Req/Sec row");
        close(t.mean, 4_400.0);
        close(t.stdev, 2_480.0);
        close(t.max, 6_170.0);
        close_opt(t.within_stdev_pct, 77.78);
        close_opt(r.latency_ms.p50, 0.269);
        close_opt(r.latency_ms.p75, 0.316);
        close_opt(r.latency_ms.p90, 0.426);
        close_opt(r.latency_ms.p99, 5.53);
        assert_eq!(r.requests, 4_005);
        close(r.duration_s, 2.06);
        close_opt(r.transfer_bytes, 153.87 * MB);
        assert_eq!(
            r.errors,
            ErrorCounts {
                timeout: 5,
                ..ErrorCounts::default()
            }
        );
        close(r.rps, 1_943.87);
        close(r.transfer_bytes_per_s, 74.68 * MB);
    }

    #[test]
    fn timeouts_all_fixture_has_nan_within_stdev() {
        let r = parsed(TIMEOUTS_ALL);
        assert!(TIMEOUTS_ALL.contains("-nan%"));
        assert_eq!(r.latency_ms.within_stdev_pct, None);
        close(r.latency_ms.mean, 0.0);
        close(r.latency_ms.stdev, 0.0);
        close(r.latency_ms.max, 0.0);
        let t = r.thread_rps.expect("Req/Sec row");
        close(t.mean, 1.0);
        close(t.stdev, 0.0);
        close(t.max, 1.0);
        close_opt(t.within_stdev_pct, 100.0);
        assert_eq!(r.requests, 4);
        close(r.duration_s, 2.01);
        close_opt(r.transfer_bytes, 221.20 * KB);
        assert_eq!(
            r.errors,
            ErrorCounts {
                timeout: 4,
                ..ErrorCounts::default()
            }
        );
        close(r.rps, 1.99);
        close(r.transfer_bytes_per_s, 109.82 * KB);
    }

    #[test]
    fn socket_errors_closed_fixture() {
        let r = parsed(SOCKET_CLOSED);
        assert_eq!((r.threads, r.connections), (Some(1), Some(40)));
        assert_eq!(r.latency_ms.within_stdev_pct, None);
        let t = r.thread_rps.expect("Req/Sec row");
        assert_eq!(t.within_stdev_pct, None);
        close(t.mean, 0.0);
        assert_eq!(r.requests, 0);
        close(r.duration_s, 1.02);
        close_opt(r.transfer_bytes, 0.0);
        assert_eq!(
            r.errors,
            ErrorCounts {
                connect: 21,
                read: 3_746,
                write: 0,
                timeout: 0,
                non_2xx_3xx: 0
            }
        );
        close(r.rps, 0.0);
        close(r.transfer_bytes_per_s, 0.0);
    }

    #[test]
    fn socket_errors_server_killed_fixture() {
        let r = parsed(SOCKET_KILLED);
        assert_eq!((r.threads, r.connections), (Some(2), Some(8)));
        close(r.latency_ms.mean, 0.4014);
        close(r.latency_ms.stdev, 0.75219);
        close(r.latency_ms.max, 6.39);
        close_opt(r.latency_ms.within_stdev_pct, 92.94);
        let t = r.thread_rps.expect("Req/Sec row");
        close(t.mean, 13_780.0);
        close(t.stdev, 3_830.0);
        close(t.max, 19_950.0);
        close_opt(t.within_stdev_pct, 50.00);
        assert_eq!(r.requests, 21_907);
        close(r.duration_s, 2.05);
        close_opt(r.transfer_bytes, 3.13 * MB);
        assert_eq!(
            r.errors,
            ErrorCounts {
                connect: 0,
                read: 16,
                write: 21_564,
                timeout: 0,
                non_2xx_3xx: 0
            }
        );
        close(r.rps, 10_697.97);
        close(r.transfer_bytes_per_s, 1.53 * MB);
    }

    #[test]
    fn done_hook_fixture_keeps_script_lines_apart() {
        let r = parsed(DONE_HOOK);
        // wrk's own summary, not the look-alike lines the hook printed after it.
        close(r.rps, 15_747.27);
        assert_eq!(r.requests, 15_795);
        close(r.duration_s, 1.00);
        close_opt(r.transfer_bytes, 2.26 * MB);
        close(r.transfer_bytes_per_s, 2.25 * MB);
        assert_eq!(r.errors.non_2xx_3xx, 0);
        close(r.latency_ms.mean, 0.98);
        close(r.latency_ms.stdev, 1.15);
        close(r.latency_ms.max, 6.20);
        close_opt(r.latency_ms.within_stdev_pct, 84.11);
        close_opt(r.latency_ms.p50, 0.376);
        close_opt(r.latency_ms.p75, 1.37);
        close_opt(r.latency_ms.p90, 2.75);
        close_opt(r.latency_ms.p99, 4.88);
        let t = r.thread_rps.expect("Req/Sec row");
        close(t.mean, 7_930.0);
        close(t.max, 9_630.0);

        let script = r.script_output.expect("done() output");
        let after = DONE_HOOK
            .split_once("Transfer/sec:      2.25MB\n")
            .expect("fixture's summary end")
            .1;
        assert_eq!(script, after.trim());
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.first(), Some(&"------------------------------"));
        assert_eq!(lines[1], "Requests: 15795");
        assert_eq!(lines[2], "Requests/sec: 15795");
        assert!(script.contains("Non-2xx or 3xx responses: 15795"));
        assert_eq!(
            lines.last(),
            Some(&r#"{"requests":15795,"duration_s":1.003,"bytes":2369200,"p50_us":376}"#)
        );
    }

    #[test]
    fn connect_refused_fixture() {
        let err = parse(CONNECT_REFUSED).unwrap_err();
        let WrkParseError::ConnectFailed { address, reason } = &err else {
            panic!("expected ConnectFailed, got {err:?}");
        };
        let port = CONNECT_REFUSED
            .trim()
            .strip_prefix("unable to connect to 127.0.0.1:")
            .and_then(|rest| rest.split_whitespace().next())
            .expect("fixture's port");
        assert_eq!(address, &format!("127.0.0.1:{port}"));
        assert_eq!(reason, "Connection refused");
        assert!(err.to_string().contains(address.as_str()), "{err}");

        let lab: crate::Error = err.clone().into();
        assert!(matches!(lab, crate::Error::Load(ref m) if m.contains(address.as_str())));
        assert_eq!(lab.exit_code(), crate::error::EXIT_LAB);
    }

    #[test]
    fn empty_and_garbage_are_errors() {
        assert_eq!(parse(""), Err(WrkParseError::Empty));
        assert_eq!(parse(" \n\t\n"), Err(WrkParseError::Empty));
        let garbage = "Segmentation fault (core dumped)\nsome other text\n";
        match parse(garbage).unwrap_err() {
            WrkParseError::Missing { what, excerpt } => {
                assert!(what.contains("requests in"), "{what}");
                assert!(excerpt.starts_with("Segmentation fault"), "{excerpt}");
            }
            e => panic!("expected Missing, got {e:?}"),
        }
        let long = "x".repeat(1000);
        let WrkParseError::Missing { excerpt, .. } = parse(&long).unwrap_err() else {
            panic!("expected Missing");
        };
        assert!(excerpt.chars().count() < 200, "{excerpt}");
    }

    /// The fixture with one line removed.
    fn without_line(text: &str, prefix: &str) -> String {
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with(prefix))
            .collect();
        assert!(kept.len() < text.lines().count(), "no {prefix:?} line");
        kept.join("\n")
    }

    #[test]
    fn required_lines_missing() {
        for (prefix, expected) in [
            ("Requests/sec:", "`Requests/sec:`"),
            ("Transfer/sec:", "`Transfer/sec:`"),
            ("57206 requests in", "`N requests in T, B read`"),
            ("Latency  ", "`Latency`"),
        ] {
            let text = without_line(PLAIN, prefix);
            match parse(&text) {
                Err(WrkParseError::Missing { what, excerpt }) => {
                    assert_eq!(what, expected);
                    assert!(excerpt.starts_with("Running 2s test @"), "{excerpt}");
                }
                other => panic!("without {prefix:?}: expected Missing, got {other:?}"),
            }
        }
        let message = parse(&without_line(PLAIN, "Requests/sec:"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("Requests/sec") && message.contains("Running"));
    }

    #[test]
    fn malformed_known_lines_are_errors() {
        let broken = PLAIN.replace("Requests/sec:  27240.46", "Requests/sec:  lots");
        assert!(matches!(
            parse(&broken),
            Err(WrkParseError::Malformed { what: "Requests/sec", ref line }) if line.contains("lots")
        ));
        let broken = PLAIN.replace("90.46%", "ninety%");
        assert!(matches!(
            parse(&broken),
            Err(WrkParseError::Malformed {
                what: "Latency",
                ..
            })
        ));
        let broken = SOCKET_KILLED.replace("write 21564", "write many");
        assert!(matches!(
            parse(&broken),
            Err(WrkParseError::Malformed {
                what: "Socket errors",
                ..
            })
        ));
    }

    #[test]
    fn only_exact_percentile_labels_count() {
        // wrk2-style labels inserted into a real distribution block must not replace wrk's.
        let text = LATENCY.replace(
            "     99%    8.74ms\n",
            "     99%    8.74ms\n 99.000%   11.11ms\n 99.900%   22.22ms\n 99.990%   33.33ms\n",
        );
        let r = parsed(&text);
        close_opt(r.latency_ms.p99, 8.74);
        close_opt(r.latency_ms.p50, 0.194);

        // A block with only wrk2's labels fills no percentile.
        let text = LATENCY
            .replace("     50%  194.00us", " 50.000%  194.00us")
            .replace("     75%    1.05ms", " 75.000%    1.05ms")
            .replace("     90%    3.92ms", " 90.000%    3.92ms")
            .replace("     99%    8.74ms", " 99.000%    8.74ms");
        let r = parsed(&text);
        assert_eq!(
            (
                r.latency_ms.p50,
                r.latency_ms.p75,
                r.latency_ms.p90,
                r.latency_ms.p99
            ),
            (None, None, None, None)
        );
        close(r.rps, 29_578.26);
    }

    #[test]
    fn crlf_line_endings_parse_the_same() {
        let crlf = LATENCY.replace('\n', "\r\n");
        assert_eq!(parsed(&crlf), parsed(LATENCY));
    }

    #[test]
    fn lines_before_the_header_are_ignored() {
        // A Lua setup() prints before "Running"; even look-alikes there must not count.
        let text = format!("Requests/sec: soon\n  1 requests in 9.00s, 1.00B read\n{PLAIN}");
        assert_eq!(parsed(&text), parsed(PLAIN));
        let text = format!("unable to connect to 127.0.0.1:1 (a setup() message)\n{PLAIN}");
        assert_eq!(parsed(&text), parsed(PLAIN));
    }

    #[test]
    fn percent_column() {
        assert_eq!(parse_pct("93.22%"), Ok(Some(93.22)));
        assert_eq!(parse_pct("100.00%"), Ok(Some(100.0)));
        assert_eq!(parse_pct("-nan%"), Ok(None));
        assert_eq!(parse_pct("nan%"), Ok(None));
        assert_eq!(parse_pct("NaN%"), Ok(None));
        assert_eq!(parse_pct("93.22"), Err(()));
        assert_eq!(parse_pct("abc%"), Err(()));
        assert_eq!(parse_pct("inf%"), Err(()));
    }

    #[test]
    fn duration_units() {
        close_opt(parse_duration_ms("635.91us"), 0.63591);
        close_opt(parse_duration_ms("0.00us"), 0.0);
        close_opt(parse_duration_ms("1.84ms"), 1.84);
        close_opt(parse_duration_ms("2.01s"), 2_010.0);
        close_opt(parse_duration_ms("2s"), 2_000.0);
        close_opt(parse_duration_ms("1.50m"), 90_000.0);
        close_opt(parse_duration_ms("2.00h"), 7_200_000.0);
        close_opt(parse_duration_ms(" 3.00ms "), 3.0);
        for bad in [
            "", "12", "ms", "1.0mms", "nanms", "-1.00ms", "infs", "1.0 ms", "3d",
        ] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn byte_units() {
        close_opt(parse_bytes("0.00B"), 0.0);
        close_opt(parse_bytes("512.00B"), 512.0);
        close_opt(parse_bytes("221.20KB"), 221.20 * 1024.0);
        close_opt(parse_bytes("8.18MB"), 8.18 * 1024.0 * 1024.0);
        close_opt(parse_bytes("1.09GB"), 1.09 * 1024.0 * 1024.0 * 1024.0);
        close_opt(parse_bytes("2.00TB"), 2.0 * 1024f64.powi(4));
        close_opt(parse_bytes("1.00PB"), 1024f64.powi(5));
        for bad in ["", "12", "1.0kB", "1.0 MB", "nanB", "-1B", "MB"] {
            assert_eq!(parse_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn count_units() {
        close_opt(parse_count("712.43"), 712.43);
        close_opt(parse_count("0.00"), 0.0);
        close_opt(parse_count("12.34k"), 12_340.0);
        close_opt(parse_count("1.20M"), 1_200_000.0);
        close_opt(parse_count("3.00G"), 3e9);
        close_opt(parse_count("1.50T"), 1.5e12);
        close_opt(parse_count("  27240.46"), 27_240.46);
        for bad in ["", "k", "12.3K", "1.0x", "nan", "-nan", "-3", "inf"] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
    }
}
