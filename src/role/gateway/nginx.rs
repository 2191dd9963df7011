//! The `nginx` gateway adapter: nginx as a reverse proxy with one location per route.

use std::time::Duration;

use super::{GatewayAdapter, GatewayContext, RunningGateway};
use crate::host::Cmd;
use crate::role::upstream::{nginx_check, nginx_temp_paths, spawn_until_ready};
use crate::{Error, Result};

/// The readiness path every perflab-rendered gateway config answers.
pub const HEALTH_PATH: &str = "/perflab-health";

/// nginx as the gateway under test.
#[derive(Debug, Default)]
pub struct NginxAdapter;

/// Renders the gateway's nginx.conf: an upstream block over the upstream URIs, one prefix
/// location per route (routes are matched, not stripped), and `/` for single-route cases.
pub fn render_config(ctx: &GatewayContext, listen_addr: &str) -> String {
    let p = ctx.prefix.display();
    let servers: String = ctx
        .upstream_uris
        .iter()
        .map(|u| format!("        server {};\n", u.trim_start_matches("http://")))
        .collect();
    let proxy = "proxy_pass http://perflab_upstream; proxy_http_version 1.1; proxy_set_header Connection \"\";";
    let mut locations = String::new();
    for path in ctx.entities.route_paths() {
        locations.push_str(&format!("        location {path} {{ {proxy} }}\n"));
    }
    if ctx.entities.single_route() {
        locations.push_str(&format!("        location / {{ {proxy} }}\n"));
    }
    if let Some(extra) = ctx.settings.get("extra_config").and_then(|v| v.as_str()) {
        locations.push_str(
            &extra
                .lines()
                .map(|l| format!("        {l}\n"))
                .collect::<String>(),
        );
    }
    format!(
        "# perflab nginx gateway\nworker_processes {workers};\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nevents {{\n    worker_connections 16384;\n}}\nhttp {{\n    access_log off;\n    server_tokens off;\n    keepalive_requests 100000;\n    tcp_nodelay on;\n{temps}    upstream perflab_upstream {{\n{servers}        keepalive 256;\n    }}\n    server {{\n        listen {listen_addr}:{port} reuseport backlog=4096;\n        location = {HEALTH_PATH} {{ return 200 \"ok\\n\"; }}\n{locations}    }}\n}}\n",
        workers = ctx.workers.max(1),
        temps = nginx_temp_paths(&ctx.prefix),
        port = ctx.proxy_port,
    )
}

/// `nginx -v` → `nginx/1.22.1`.
pub fn nginx_version(host: &dyn crate::host::Host, nginx: &str) -> String {
    host.run(&Cmd::new(nginx).arg("-v"), Duration::from_secs(10))
        .map(|o| {
            o.combined_text()
                .trim()
                .trim_start_matches("nginx version: ")
                .to_string()
        })
        .unwrap_or_else(|_| "unknown".into())
}

impl GatewayAdapter for NginxAdapter {
    fn start(&self, ctx: &GatewayContext) -> Result<RunningGateway> {
        let host = ctx.host.clone();
        let nginx = match ctx.settings.get("binary").and_then(|v| v.as_str()) {
            Some(b) => b.to_string(),
            None => host.which("nginx").ok_or_else(|| Error::MissingTool {
                program: "nginx".into(),
                where_: format!(" on host {}", host.name()),
                hint: "install it (Debian/Ubuntu: apt-get install nginx-light)".into(),
            })?,
        };
        let detail = nginx_version(host.as_ref(), &nginx);
        super::check_release(ctx.version, &detail, "nginx")?;
        for d in [
            "tmp/body",
            "tmp/proxy",
            "tmp/fastcgi",
            "tmp/uwsgi",
            "tmp/scgi",
        ] {
            host.write_file(&ctx.prefix.join(d).join(".keep"), b"")?;
        }
        let text = render_config(ctx, &host.address());
        let conf = ctx.prefix.join("nginx.conf");
        host.write_file(&conf, text.as_bytes())?;
        nginx_check(host.as_ref(), &nginx, &ctx.prefix, &conf)?;
        let log = ctx.prefix.join("stderr.log");
        let cmd = Cmd::new(&nginx)
            .arg("-p")
            .arg(ctx.prefix.display().to_string())
            .arg("-c")
            .arg(conf.display().to_string())
            .cpus(ctx.cpus.clone());
        let proxy_uri = format!("http://{}:{}", host.address(), ctx.proxy_port);
        let error_log = ctx.prefix.join("error.log");
        let proc = spawn_until_ready(
            host.as_ref(),
            ctx.load_host.as_ref(),
            &cmd,
            &log,
            std::slice::from_ref(&error_log),
            &[format!("{proxy_uri}{HEALTH_PATH}")],
            "nginx gateway",
            Duration::from_secs(15),
        )?;
        Ok(RunningGateway {
            kind: super::GatewayKind::Nginx,
            instance: ctx.instance.to_string(),
            proc,
            server_pid_file: None,
            other_logs: Vec::new(),
            proxy_uri,
            admin_uri: None,
            status_uri: None,
            reload: Some(
                Cmd::new(&nginx)
                    .arg("-p")
                    .arg(ctx.prefix.display().to_string())
                    .arg("-c")
                    .arg(conf.display().to_string())
                    .arg("-s")
                    .arg("reload"),
            ),
            error_log,
            config_files: vec![conf],
            version_detail: detail,
            host,
            lua_profiler_dir: None,
        })
    }
}
