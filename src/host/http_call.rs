//! One HTTP request sent from a host of the lab: the request, the reply, and the `curl` recipe
//! hosts use by default.
//!
//! Why from a host: the addresses a lab's services listen on (a terraform lab's internal plane,
//! a container network) are often reachable only from inside the lab, so the controller must not
//! send admin API calls or actions during load itself (see [`super::Host::http_request`]).

use std::time::Duration;

use super::{Cmd, Host, HostError};

/// Bodies kept by default: enough for any admin API answer or metrics page the lab reads.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// One HTTP request to send from a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Method (`GET`, `POST`, `PATCH`, …).
    pub method: String,
    /// Full plain-HTTP URL (`http://10.0.0.1:8001/services`).
    pub url: String,
    /// Request body and its content type, if any.
    pub body: Option<(String, Vec<u8>)>,
    /// Bytes of the response body to keep; the rest is dropped (the reply says so).
    pub max_body: usize,
}

impl HttpCall {
    /// A GET without a body.
    pub fn get(url: impl Into<String>) -> Self {
        HttpCall {
            method: "GET".into(),
            url: url.into(),
            body: None,
            max_body: DEFAULT_MAX_BODY,
        }
    }
    /// A request with a method and, optionally, a JSON body.
    pub fn json(method: &str, url: impl Into<String>, body: Option<Vec<u8>>) -> Self {
        HttpCall {
            method: method.to_string(),
            body: body.map(|b| ("application/json".to_string(), b)),
            ..HttpCall::get(url)
        }
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// The body, at most [`HttpCall::max_body`] bytes.
    pub body: Vec<u8>,
    /// True when the body was longer than that and was cut.
    pub truncated: bool,
    /// Seconds from sending the request to the end of the answer, measured on the host that sent
    /// it.
    pub duration_s: f64,
}

impl HttpReply {
    /// A reply from a full body, cut to `max_body`.
    pub fn new(status: u16, mut body: Vec<u8>, max_body: usize, duration_s: f64) -> Self {
        let truncated = body.len() > max_body;
        body.truncate(max_body);
        HttpReply {
            status,
            body,
            truncated,
            duration_s,
        }
    }
}

/// What curl appends after the body: a newline, the status code and the total time.
const WRITE_OUT: &str = "\n%{http_code} %{time_total}";

/// curl's argv for a call. `--noproxy '*'`: lab traffic never goes through a proxy from the
/// environment; `-g`: brackets in paths are not globs; `--data-raw`: a body starting with `@` is
/// sent as is, not read from a file.
pub fn curl_command(call: &HttpCall, timeout: Duration) -> Cmd {
    let mut cmd =
        Cmd::new("curl").args(["-sS", "-g", "--noproxy", "*", "-o", "-", "-w", WRITE_OUT]);
    cmd = cmd
        .arg("--max-time")
        .arg(format!("{:.3}", timeout.as_secs_f64().max(0.001)));
    cmd = if call.method.eq_ignore_ascii_case("HEAD") {
        cmd.arg("--head")
    } else {
        cmd.arg("-X").arg(&call.method)
    };
    if let Some((ctype, body)) = &call.body {
        cmd = cmd
            .arg("-H")
            .arg(format!("Content-Type: {ctype}"))
            .arg("--data-raw")
            .arg(String::from_utf8_lossy(body).into_owned());
    }
    cmd.arg(&call.url)
}

/// Reads curl's standard output (body, then [`WRITE_OUT`]) into a reply; `None` when the last
/// line is not `CODE SECONDS` or the code is 000 (no HTTP answer).
pub fn parse_curl_output(stdout: &[u8], max_body: usize) -> Option<HttpReply> {
    let nl = stdout.iter().rposition(|b| *b == b'\n')?;
    let tail = std::str::from_utf8(&stdout[nl + 1..]).ok()?;
    let (code, secs) = tail.trim().split_once(' ')?;
    let status: u16 = code.parse().ok().filter(|c| *c >= 100)?;
    let duration_s: f64 = secs.parse().ok()?;
    Some(HttpReply::new(
        status,
        stdout[..nl].to_vec(),
        max_body,
        duration_s,
    ))
}

/// [`super::Host::http_request`] by default: runs curl on the host.
pub fn http_via_curl<H: Host + ?Sized>(
    host: &H,
    call: &HttpCall,
    timeout: Duration,
) -> Result<HttpReply, HostError> {
    let out = host.run(
        &curl_command(call, timeout),
        timeout + Duration::from_secs(10),
    )?;
    match parse_curl_output(&out.stdout, call.max_body) {
        Some(reply) if out.success() => Ok(reply),
        _ => Err(HostError::Other {
            host: host.name().to_string(),
            reason: format!(
                "no HTTP answer to {} {}: {}",
                call.method,
                call.url,
                out.stderr_text().trim()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_body_status_and_time_from_curl_output() {
        let r = parse_curl_output(b"{\"a\":1}\nline2\n201 0.004512", 100).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"{\"a\":1}\nline2");
        assert!((r.duration_s - 0.004512).abs() < 1e-9);
        assert!(!r.truncated);
        let cut = parse_curl_output(b"abcdef\n200 0.1", 3).unwrap();
        assert_eq!((cut.body.as_slice(), cut.truncated), (&b"abc"[..], true));
        assert!(parse_curl_output(b"\n000 0.000", 10).is_none());
        assert!(parse_curl_output(b"garbage", 10).is_none());
    }

    #[test]
    fn curl_argv_keeps_the_body_verbatim() {
        let c = curl_command(
            &HttpCall::json("PATCH", "http://h:1/x", Some(b"@{\"w\": 5}".to_vec())),
            Duration::from_secs(2),
        );
        let argv = c.argv();
        let i = argv.iter().position(|a| a == "--data-raw").unwrap();
        assert_eq!(argv[i + 1], "@{\"w\": 5}");
        assert!(argv.windows(2).any(|w| w == ["-X", "PATCH"]));
        assert_eq!(argv.last().unwrap(), "http://h:1/x");
    }
}
