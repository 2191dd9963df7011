//! The `haproxy` gateway adapter: HAProxy in HTTP mode with one ACL per route.

use std::time::Duration;

use super::nginx::HEALTH_PATH;
use super::{GatewayAdapter, GatewayContext, RunningGateway};
use crate::host::Cmd;
use crate::role::upstream::spawn_until_ready;
use crate::{Error, Result};

/// HAProxy as the gateway under test.
#[derive(Debug, Default)]
pub struct HaproxyAdapter;

/// Renders haproxy.cfg: a frontend with an ACL per route (evaluated in order, as HAProxy does),
/// `monitor-uri` for readiness, and a backend over the upstream URIs with keep-alive.
pub fn render_config(ctx: &GatewayContext, listen_addr: &str) -> String {
    let mut acls = String::new();
    for (i, path) in ctx.entities.route_paths().iter().enumerate() {
        acls.push_str(&format!(
            "    acl route{i} path_beg {path}\n    use_backend upstream if route{i}\n"
        ));
    }
    if ctx.entities.single_route() {
        acls.push_str("    default_backend upstream\n");
    }
    if let Some(extra) = ctx.settings.get("extra_config").and_then(|v| v.as_str()) {
        acls.push_str(
            &extra
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>(),
        );
    }
    let servers: String = ctx
        .upstream_uris
        .iter()
        .enumerate()
        .map(|(i, u)| format!("    server up{i} {}\n", u.trim_start_matches("http://")))
        .collect();
    format!(
        "# perflab haproxy gateway\nglobal\n    maxconn 8000\n    nbthread {threads}\n    log stderr format raw local0 warning\n\ndefaults\n    mode http\n    log global\n    option http-keep-alive\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n    timeout http-keep-alive 60s\n\nfrontend proxy\n    bind {listen_addr}:{port}\n    monitor-uri {HEALTH_PATH}\n{acls}\nbackend upstream\n    balance roundrobin\n    http-reuse always\n{servers}",
        threads = ctx.workers.max(1),
        port = ctx.proxy_port,
    )
}

impl GatewayAdapter for HaproxyAdapter {
    fn start(&self, ctx: &GatewayContext) -> Result<RunningGateway> {
        let host = ctx.host.clone();
        let haproxy = match ctx.settings.get("binary").and_then(|v| v.as_str()) {
            Some(b) => b.to_string(),
            None => host.which("haproxy").ok_or_else(|| Error::MissingTool {
                program: "haproxy".into(),
                where_: format!(" on host {}", host.name()),
                hint: "install it (Debian/Ubuntu: apt-get install haproxy)".into(),
            })?,
        };
        let detail = host
            .run(&Cmd::new(&haproxy).arg("-v"), Duration::from_secs(10))
            .map(|o| o.stdout_text().lines().next().unwrap_or("").to_string())
            .unwrap_or_default();
        let short = detail
            .split_whitespace()
            .nth(2)
            .map(|v| format!("haproxy/{v}"))
            .unwrap_or(detail.clone());
        super::check_release(ctx.version, &short, "haproxy")?;
        let text = render_config(ctx, &host.address());
        let conf = ctx.prefix.join("haproxy.cfg");
        host.write_file(&conf, text.as_bytes())?;
        // Not `-q`: it hides the ALERT lines that say what HAProxy refused.
        let check = host.run(
            &Cmd::new(&haproxy)
                .arg("-c")
                .arg("-f")
                .arg(conf.display().to_string()),
            Duration::from_secs(30),
        )?;
        if !check.success() {
            let text = check.combined_text();
            // The ALERT lines name the file, line and keyword; NOTICE and WARNING lines follow.
            let mut lines: Vec<&str> = text.lines().filter(|l| l.contains("ALERT")).collect();
            lines.extend(
                text.lines()
                    .filter(|l| !l.contains("ALERT") && !l.trim().is_empty()),
            );
            return Err(Error::ConfigRefused {
                program: "haproxy".into(),
                config: conf.display().to_string(),
                message: lines.join("\n"),
            });
        }
        let error_log = ctx.prefix.join("error.log");
        // Master-worker mode (`-W`), in the foreground (`-db`): a reload (SIGUSR2 to the master)
        // starts new workers inside the same process group, which the lab then still owns.
        let cmd = Cmd::new(&haproxy)
            .arg("-W")
            .arg("-db")
            .arg("-f")
            .arg(conf.display().to_string())
            .cpus(ctx.cpus.clone());
        let proxy_uri = format!("http://{}:{}", host.address(), ctx.proxy_port);
        let proc = spawn_until_ready(
            host.as_ref(),
            ctx.load_host.as_ref(),
            &cmd,
            &error_log,
            &[],
            &[format!("{proxy_uri}{HEALTH_PATH}")],
            "haproxy",
            Duration::from_secs(15),
        )?;
        let reload = Some(Cmd::new("kill").arg("-USR2").arg(proc.pid().to_string()));
        Ok(RunningGateway {
            kind: super::GatewayKind::Haproxy,
            instance: ctx.instance.to_string(),
            proc,
            server_pid_file: None,
            other_logs: Vec::new(),
            proxy_uri,
            admin_uri: None,
            status_uri: None,
            reload,
            error_log,
            config_files: vec![conf],
            version_detail: short,
            host,
            lua_profiler_dir: None,
        })
    }
}
