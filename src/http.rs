//! A minimal HTTP/1.1 client for readiness checks and admin APIs on plain HTTP.
//!
//! Gateways' health and admin endpoints are plain HTTP on addresses the lab controls, so a small
//! blocking client over `TcpStream` is enough and keeps the dependency tree small.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A parsed `http://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address.
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path with query, starting with `/`.
    pub path: String,
}

/// Parses a plain-HTTP URL.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let bad_port = |p: &str| format!("bad port \"{p}\" in {url}");
    // `[v6]:port`, `[v6]`, `host:port` or `host`.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {url}"))?;
        let port = match after {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad_port(p))?,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad_port(p))?),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok(Url {
        host,
        port,
        path: path.to_string(),
    })
}

impl Url {
    /// `host:port`, with an IPv6 address in brackets (`[::1]:8001`), as a `Host` header wants.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Connects to the first address of the host that accepts, in resolver order (a name such as
/// `localhost` may resolve to `::1` first while the server listens on `127.0.0.1` only). The
/// error names every address tried.
fn connect(u: &Url, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<std::net::SocketAddr> = (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    connect_any(&addrs, timeout)
}

/// Connects to the first of `addrs` that accepts.
fn connect_any(addrs: &[std::net::SocketAddr], timeout: Duration) -> Result<TcpStream, String> {
    let mut errors = Vec::new();
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    Err(if errors.is_empty() {
        "no address".into()
    } else {
        errors.join("; ")
    })
}

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body bytes (chunked bodies are decoded).
    pub body: Vec<u8>,
}

/// Sends one request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<Response, String> {
    let u = parse_url(url)?;
    let mut s = connect(&u, timeout).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: perflab\r\n",
        u.path,
        u.authority()
    );
    if let Some((ctype, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some((_, b)) = body {
        bytes.extend_from_slice(b);
    }
    s.write_all(&bytes).map_err(|e| format!("{url}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("{url}: {e}"))?;
    parse_response(&raw).ok_or_else(|| format!("{url}: malformed HTTP response"))
}

/// GET and return the status code.
pub fn get_status(url: &str, timeout: Duration) -> Result<u16, String> {
    request("GET", url, None, timeout).map(|r| r.status)
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status: u16 = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[end + 4..].to_vec();
    if chunked {
        body = decode_chunked(&body)?;
    }
    Some(Response { status, body })
}

fn decode_chunked(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8001/status").unwrap(),
            Url {
                host: "127.0.0.1".into(),
                port: 8001,
                path: "/status".into()
            }
        );
        assert_eq!(parse_url("http://example").unwrap().port, 80);
        assert!(parse_url("https://x").is_err());
        let v6 = parse_url("http://[::1]:8001/s").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8001));
        assert_eq!(v6.authority(), "[::1]:8001");
        assert_eq!(parse_url("http://[fe80::1]/").unwrap().port, 80);
        assert!(parse_url("http://[::1/").is_err());
        assert!(parse_url("http://[::1]x/").is_err());
        assert_eq!(parse_url("http://h:81").unwrap().authority(), "h:81");
    }

    /// Answers one request on `listener` with 204 and returns the request's head.
    fn answer_once(listener: std::net::TcpListener) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap();
            c.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
    }

    #[test]
    fn reaches_ipv6_loopback_and_brackets_the_host_header() {
        let Ok(l) = std::net::TcpListener::bind("[::1]:0") else {
            eprintln!("SKIPPED: no IPv6 loopback on this machine");
            return;
        };
        let port = l.local_addr().unwrap().port();
        let server = answer_once(l);
        let status = get_status(&format!("http://[::1]:{port}/x"), Duration::from_secs(5));
        assert_eq!(status, Ok(204));
        let head = server.join().unwrap();
        assert!(head.contains(&format!("Host: [::1]:{port}\r\n")), "{head}");
    }

    #[test]
    fn every_resolved_address_is_tried() {
        // The first address refuses (nothing listens there any more), the second answers.
        let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = refused.local_addr().unwrap();
        drop(refused);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live = l.local_addr().unwrap();
        let server = answer_once(l);
        let mut s = connect_any(&[dead, live], Duration::from_secs(5)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert!(server.join().unwrap().starts_with("GET /"));
        let e = connect_any(&[dead], Duration::from_secs(5)).unwrap_err();
        assert!(e.contains(&dead.to_string()), "{e}");
    }

    #[test]
    fn decodes_chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
    }
}
