//! The upstream role: nginx serving a configuration blob on one or N consecutive ports.
//!
//! As in Kong's framework, the case gives a blob that goes inside a `server {}` block; perflab
//! adds the listen lines, a `/health` location, and its own prefix, pid and log paths, so two labs
//! on one machine never share a file. A case may also ask for a response body of a given size,
//! served from a file the role writes (nginx's `return` cannot make large bodies).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::host::{Cmd, Host, Proc};
use crate::{Error, Result};

/// How the upstream should be set up.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// The blob placed inside the `server {}` block (may be empty).
    pub config: String,
    /// Number of consecutive ports.
    pub ports: u16,
    /// First port.
    pub base_port: u16,
    /// nginx worker processes.
    pub workers: u32,
    /// When set, `location /` serves a body of this many bytes (unless the blob defines `/`).
    pub body_bytes: Option<usize>,
    /// CPUs to pin nginx to.
    pub cpus: Option<Vec<usize>>,
}

/// The default blob: every path answers 200 with a short body, like Kong's worker default.
pub const DEFAULT_CONFIG: &str = "location / {\n    return 200 \"perflab upstream\\n\";\n}\n";

/// A running upstream.
pub struct Upstream {
    /// The host it runs on.
    pub host: Arc<dyn Host>,
    /// nginx's process (group).
    pub proc: Box<dyn Proc>,
    /// URIs as the gateway sees them, one per port.
    pub uris: Vec<String>,
    /// Ports, in order.
    pub ports: Vec<u16>,
    /// Its private directory on the host.
    pub prefix: PathBuf,
    /// The rendered nginx.conf.
    pub config_text: String,
}

impl Upstream {
    /// The error log path on its host.
    pub fn error_log(&self) -> PathBuf {
        self.prefix.join("error.log")
    }
    /// Stops nginx (TERM, grace, KILL).
    pub fn stop(&mut self) -> Result<()> {
        self.proc.stop(Duration::from_secs(5))?;
        Ok(())
    }
}

/// The nginx `*_temp_path` lines that keep nginx out of system directories.
pub fn nginx_temp_paths(prefix: &std::path::Path) -> String {
    let p = prefix.display();
    format!(
        "    client_body_temp_path {p}/tmp/body;\n    proxy_temp_path {p}/tmp/proxy;\n    fastcgi_temp_path {p}/tmp/fastcgi;\n    uwsgi_temp_path {p}/tmp/uwsgi;\n    scgi_temp_path {p}/tmp/scgi;\n"
    )
}

/// Echoes a request's `X-Perflab-Sent` header in the response (nothing when the request has
/// none), so the load generator can time each request of a run with actions during load
/// (see [`crate::role::load::series`]). A location of the case's own config that sets its own
/// `add_header` does not inherit it; those runs' series then have no latency.
pub const ECHO_HEADER: &str = "add_header X-Perflab-Sent $http_x_perflab_sent always;";

/// Renders the upstream's nginx.conf.
pub fn render_config(
    opts: &UpstreamOptions,
    listen_addr: &str,
    prefix: &std::path::Path,
) -> String {
    let p = prefix.display();
    let mut listens = String::new();
    for i in 0..opts.ports {
        listens.push_str(&format!(
            "        listen {listen_addr}:{} reuseport backlog=4096;\n",
            opts.base_port + i
        ));
    }
    let blob = if opts.config.trim().is_empty() && opts.body_bytes.is_none() {
        DEFAULT_CONFIG.to_string()
    } else {
        opts.config.clone()
    };
    let body_location = match opts.body_bytes {
        Some(_) if !blob.contains("location /") => format!(
            "        location / {{\n            root {p}/html;\n            default_type application/octet-stream;\n            try_files /body =404;\n        }}\n"
        ),
        _ => String::new(),
    };
    let blob_indented: String = blob.lines().map(|l| format!("        {l}\n")).collect();
    format!(
        "# perflab upstream\nworker_processes {workers};\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nevents {{\n    worker_connections 16384;\n}}\nhttp {{\n    access_log off;\n    server_tokens off;\n    keepalive_requests 100000;\n    tcp_nodelay on;\n{temps}    server {{\n{listens}        {ECHO_HEADER}\n        location = /health {{\n            return 200 \"ok\\n\";\n        }}\n{body_location}{blob_indented}    }}\n}}\n",
        workers = opts.workers.max(1),
        temps = nginx_temp_paths(prefix),
    )
}

/// Checks an nginx config with `nginx -t` and maps a refusal to [`Error::ConfigRefused`] or
/// [`Error::PortInUse`].
pub fn nginx_check(
    host: &dyn Host,
    nginx: &str,
    prefix: &std::path::Path,
    conf: &std::path::Path,
) -> Result<()> {
    let out = host.run(
        &Cmd::new(nginx)
            .arg("-t")
            .arg("-q")
            .arg("-p")
            .arg(prefix.display().to_string())
            .arg("-c")
            .arg(conf.display().to_string()),
        Duration::from_secs(30),
    )?;
    if out.success() {
        return Ok(());
    }
    Err(Error::ConfigRefused {
        program: "nginx".into(),
        config: conf.display().to_string(),
        message: out.combined_text(),
    })
}

/// Maps a startup failure message to a port-in-use error when that is what it says.
pub fn port_error(text: &str, host: &str) -> Option<Error> {
    if !text.contains("Address already in use") && !text.contains("cannot bind socket") {
        return None;
    }
    let port = text
        .split(|c: char| !c.is_ascii_digit() && c != ':' && c != '.')
        .filter_map(|w| w.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
        .next()
        .unwrap_or(0);
    Some(Error::PortInUse {
        port,
        host: host.to_string(),
        detail: text.lines().last().unwrap_or("").trim().to_string(),
    })
}

/// Waits until the process answers `url` with `expect`, or fails with its log.
pub fn wait_ready(
    probe: &dyn Host,
    proc: &mut dyn Proc,
    url: &str,
    log: &dyn Fn() -> String,
    program: &str,
    timeout: Duration,
) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        if !proc.is_running() {
            let text = log();
            if let Some(e) = port_error(&text, probe.name()) {
                return Err(e);
            }
            // Exit status 0 before answering: the program put itself in the background.
            let hint = match proc.wait_timeout(Duration::ZERO) {
                Ok(Some(0)) => format!(
                    " (status 0: {program} went to the background; perflab needs it to stay in \
                     the foreground, e.g. nginx `daemon off;`, haproxy -db, or a start command \
                     that does not fork)"
                ),
                Ok(Some(c)) => format!(" (status {c})"),
                _ => String::new(),
            };
            return Err(Error::Lab(format!(
                "{program} exited during startup{hint}:\n{}",
                text.trim()
            )));
        }
        if let Ok(code) = probe.http_status(url, Duration::from_secs(2))
            && (200..400).contains(&code)
        {
            return Ok(());
        }
        crate::signals::check()?;
        if start.elapsed() > timeout {
            return Err(Error::Lab(format!(
                "{program} did not answer {url} within {timeout:?}; its log:\n{}",
                log().trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `cmd` on `host` with its output in `log`, then waits until every URL in `urls`
/// answers when asked from `probe`. On failure the process is stopped and the error carries the
/// text of `log` and of `other_logs` (the program's own explanation).
#[allow(clippy::too_many_arguments)]
pub fn spawn_until_ready(
    host: &dyn Host,
    probe: &dyn Host,
    cmd: &Cmd,
    log: &std::path::Path,
    other_logs: &[PathBuf],
    urls: &[String],
    program: &str,
    timeout: Duration,
) -> Result<Box<dyn Proc>> {
    let mut proc = host.spawn(cmd, log)?;
    let read_log = || {
        std::iter::once(log)
            .chain(other_logs.iter().map(|p| p.as_path()))
            .map(|p| String::from_utf8_lossy(&host.read_file(p).unwrap_or_default()).into_owned())
            .collect::<String>()
    };
    for url in urls {
        if let Err(e) = wait_ready(probe, proc.as_mut(), url, &read_log, program, timeout) {
            let _ = proc.stop(Duration::from_secs(2));
            // The port is busy where the program runs, not where readiness is probed from.
            return Err(match e {
                Error::PortInUse { port, detail, .. } => Error::PortInUse {
                    port,
                    host: host.name().to_string(),
                    detail,
                },
                e => e,
            });
        }
    }
    Ok(proc)
}

/// Starts nginx as the upstream on `host` in `prefix` and waits until every port answers.
pub fn start_upstream(
    host: Arc<dyn Host>,
    prefix: PathBuf,
    opts: &UpstreamOptions,
) -> Result<Upstream> {
    let nginx = host.which("nginx").ok_or_else(|| Error::MissingTool {
        program: "nginx".into(),
        where_: format!(" on host {}", host.name()),
        hint: "install it (Debian/Ubuntu: apt-get install nginx-light)".into(),
    })?;
    for d in [
        "tmp/body",
        "tmp/proxy",
        "tmp/fastcgi",
        "tmp/uwsgi",
        "tmp/scgi",
        "html",
    ] {
        host.write_file(&prefix.join(d).join(".keep"), b"")?;
    }
    if let Some(n) = opts.body_bytes {
        let body: Vec<u8> = (0..n)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36])
            .collect();
        host.write_file(&prefix.join("html/body"), &body)?;
    }
    let addr = host.address();
    let text = render_config(opts, &addr, &prefix);
    let conf = prefix.join("nginx.conf");
    host.write_file(&conf, text.as_bytes())?;
    nginx_check(host.as_ref(), &nginx, &prefix, &conf)?;
    let log_path = prefix.join("stderr.log");
    let cmd = Cmd::new(&nginx)
        .arg("-p")
        .arg(prefix.display().to_string())
        .arg("-c")
        .arg(conf.display().to_string())
        .cpus(opts.cpus.clone());
    let ports: Vec<u16> = (0..opts.ports).map(|i| opts.base_port + i).collect();
    let uris: Vec<String> = ports
        .iter()
        .map(|p| format!("http://{}:{p}", host.address()))
        .collect();
    let health: Vec<String> = uris.iter().map(|u| format!("{u}/health")).collect();
    let proc = spawn_until_ready(
        host.as_ref(),
        host.as_ref(),
        &cmd,
        &log_path,
        &[prefix.join("error.log")],
        &health,
        "upstream nginx",
        Duration::from_secs(15),
    )?;
    Ok(Upstream {
        host,
        proc,
        uris,
        ports,
        prefix,
        config_text: text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_listens_health_and_blob() {
        let o = UpstreamOptions {
            config: "location = /x { return 204; }".into(),
            ports: 3,
            base_port: 18088,
            workers: 2,
            body_bytes: None,
            cpus: None,
        };
        let t = render_config(&o, "127.0.0.1", std::path::Path::new("/p"));
        assert!(t.contains("listen 127.0.0.1:18088 reuseport"));
        assert!(t.contains("listen 127.0.0.1:18090 reuseport"));
        assert!(!t.contains("18091"));
        assert!(t.contains("location = /health"));
        assert!(t.contains("location = /x { return 204; }"));
        assert!(t.contains("pid /p/nginx.pid;"));
        assert!(t.contains("worker_processes 2;"));
    }

    #[test]
    fn recognises_nginx_port_errors() {
        let e = port_error(
            "nginx: [emerg] bind() to 127.0.0.1:18088 failed (98: Address already in use)",
            "local",
        )
        .unwrap();
        assert!(matches!(e, Error::PortInUse { port: 18088, .. }), "{e}");
    }
}
