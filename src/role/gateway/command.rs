//! The `command` gateway adapter: any gateway whose source repository describes itself in a
//! `perflab.toml` at its root. This is what makes `git:` comparisons work for any gateway.
//!
//! ```toml
//! [gateway]
//! name = "my-proxy"
//! build = "make"                      # optional; run once per commit in the checkout
//! start = ["nginx", "-p", "{prefix}", "-c", "{prefix}/nginx.conf"]
//! ready = "/health"                   # polled on the proxy port until it answers 2xx/3xx
//!
//! [gateway.files]                     # templates rendered into the prefix
//! "nginx.conf" = "conf/nginx.conf.in"
//! ```
//!
//! Placeholders in `start` and in templates: `{port}`, `{admin_port}`, `{upstream}` (first
//! upstream URI), `{upstream_addr}` (its `host:port`), `{upstreams}` (space-separated URIs),
//! `{upstream_addrs}` (space-separated `host:port`), `{prefix}`, `{worktree}`, `{workers}`,
//! `{listen_addr}`. `{{` and `}}` stand for literal braces. See docs/command-gateway.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{GatewayAdapter, GatewayContext, RunningGateway};
use crate::host::{Cmd, Host};
use crate::role::upstream::spawn_until_ready;
use crate::{Error, Result};

/// The file a gateway repository describes itself in.
pub const DESCRIPTOR: &str = "perflab.toml";

/// A program line: a string run by `sh -c`, or an argv array.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// Run with `sh -c`.
    Shell(String),
    /// Run directly.
    Argv(Vec<String>),
}

/// The `[gateway]` table of `perflab.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// The gateway's name (for results).
    pub name: String,
    /// Build step, run in the checkout once per commit.
    pub build: Option<CommandLine>,
    /// How to start the gateway in the foreground.
    pub start: CommandLine,
    /// Readiness path on the proxy port.
    #[serde(default = "default_ready")]
    pub ready: String,
    /// Templates: destination in the prefix → source in the checkout.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Seconds to wait for readiness.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: u64,
}

fn default_ready() -> String {
    "/".into()
}

fn default_ready_timeout() -> u64 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptorFile {
    gateway: Descriptor,
}

/// Reads and parses `perflab.toml` in a checkout on this machine.
pub fn read_descriptor(dir: &Path, version: &str) -> Result<Descriptor> {
    let text = std::fs::read_to_string(dir.join(DESCRIPTOR)).ok();
    parse_descriptor(text, version)
}

/// Reads and parses `perflab.toml` in a checkout on `host` (where the gateway runs: the tree is
/// copied there for container and remote hosts).
pub fn read_descriptor_on(host: &dyn Host, dir: &Path, version: &str) -> Result<Descriptor> {
    let text = host
        .read_file(&dir.join(DESCRIPTOR))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    parse_descriptor(text, version)
}

fn parse_descriptor(text: Option<String>, version: &str) -> Result<Descriptor> {
    let text = text.ok_or_else(|| {
        Error::Usage(format!(
            "version {version} has no {DESCRIPTOR} at the root of its tree; the command gateway needs one (see docs/command-gateway.md)"
        ))
    })?;
    let f: DescriptorFile = toml::from_str(&text).map_err(|e| Error::SuiteFile {
        path: PathBuf::from(format!("{version}:{DESCRIPTOR}")),
        line: e
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1)
            .unwrap_or(0),
        message: e.message().to_string(),
    })?;
    if !(1..=86_400).contains(&f.gateway.ready_timeout) {
        return Err(Error::SuiteFile {
            path: PathBuf::from(format!("{version}:{DESCRIPTOR}")),
            line: 0,
            message: format!(
                "ready_timeout must be a whole number of seconds from 1 to 86400 (got {})",
                f.gateway.ready_timeout
            ),
        });
    }
    Ok(f.gateway)
}

/// Fills placeholders. Unknown placeholders are an error naming them.
pub fn render(
    template: &str,
    vars: &BTreeMap<&str, String>,
) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        rest = &rest[i..];
        if rest.starts_with("{{") || rest.starts_with("}}") {
            out.push(c as char);
            rest = &rest[2..];
        } else if c == b'{' {
            let end = rest.find('}').ok_or_else(|| "unclosed {".to_string())?;
            let key = &rest[1..end];
            let v = vars.get(key).ok_or_else(|| {
                format!(
                    "unknown placeholder {{{key}}}; known: {}",
                    vars.keys()
                        .map(|k| format!("{{{k}}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })?;
            out.push_str(v);
            rest = &rest[end + 1..];
        } else {
            out.push('}');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn to_cmd(line: &CommandLine, vars: &BTreeMap<&str, String>) -> Result<Cmd> {
    let r = |s: &str| render(s, vars).map_err(|e| Error::Usage(format!("{DESCRIPTOR}: {e}")));
    Ok(match line {
        CommandLine::Shell(s) => Cmd::new("sh").arg("-c").arg(r(s)?),
        CommandLine::Argv(v) if !v.is_empty() => {
            Cmd::new(r(&v[0])?).args(v[1..].iter().map(|a| r(a)).collect::<Result<Vec<_>>>()?)
        }
        CommandLine::Argv(_) => {
            return Err(Error::Usage(format!("{DESCRIPTOR}: an empty command")));
        }
    })
}

/// The `command` adapter.
#[derive(Debug, Default)]
pub struct CommandAdapter;

impl GatewayAdapter for CommandAdapter {
    fn check_tree(&self, dir: &Path, label: &str) -> Result<()> {
        read_descriptor(dir, label).map(|_| ())
    }

    fn start(&self, ctx: &GatewayContext) -> Result<RunningGateway> {
        let host = ctx.host.clone();
        let worktree = match (
            &ctx.version_dir,
            ctx.settings.get("dir").and_then(|v| v.as_str()),
        ) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => PathBuf::from(d),
            (None, None) => {
                return Err(Error::Usage(format!(
                    "the command gateway needs a git: version (or gateway_settings.dir); got \"{}\"",
                    ctx.version
                )));
            }
        };
        let desc = read_descriptor_on(host.as_ref(), &worktree, ctx.version)?;
        let addrs: Vec<String> = ctx
            .upstream_uris
            .iter()
            .map(|u| u.trim_start_matches("http://").to_string())
            .collect();
        let vars: BTreeMap<&str, String> = BTreeMap::from([
            ("port", ctx.proxy_port.to_string()),
            ("admin_port", ctx.admin_port.to_string()),
            (
                "upstream",
                ctx.upstream_uris.first().cloned().unwrap_or_default(),
            ),
            ("upstream_addr", addrs.first().cloned().unwrap_or_default()),
            ("upstreams", ctx.upstream_uris.join(" ")),
            ("upstream_addrs", addrs.join(" ")),
            ("prefix", ctx.prefix.display().to_string()),
            ("worktree", worktree.display().to_string()),
            ("workers", ctx.workers.to_string()),
            ("listen_addr", host.address()),
        ]);
        if let Some(build) = &desc.build {
            let marker = worktree.join(".perflab-built");
            if host.read_file(&marker).is_err() {
                let out = host.run(
                    &to_cmd(build, &vars)?.cwd(&worktree),
                    Duration::from_secs(3600),
                )?;
                if !out.success() {
                    return Err(Error::Lab(format!(
                        "the build command of {} failed (exit {:?}):\n{}",
                        ctx.version,
                        out.code,
                        out.combined_text()
                    )));
                }
                host.write_file(&marker, b"")?;
            }
        }
        let mut config_files = Vec::new();
        for (dest, src) in &desc.files {
            let text = host
                .read_file(&worktree.join(src))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| {
                    Error::Usage(format!(
                        "{DESCRIPTOR} of {}: template {src}: {e}",
                        ctx.version
                    ))
                })?;
            let rendered = render(&text, &vars).map_err(|e| {
                Error::Usage(format!("{DESCRIPTOR} of {}: {src}: {e}", ctx.version))
            })?;
            let p = ctx.prefix.join(dest);
            host.write_file(&p, rendered.as_bytes())?;
            config_files.push(p);
        }
        let error_log = ctx.prefix.join("gateway.log");
        let cmd = to_cmd(&desc.start, &vars)?
            .cwd(&worktree)
            .cpus(ctx.cpus.clone());
        let proxy_uri = format!("http://{}:{}", host.address(), ctx.proxy_port);
        let ready = if desc.ready.starts_with('/') {
            desc.ready.clone()
        } else {
            format!("/{}", desc.ready)
        };
        let proc = spawn_until_ready(
            host.as_ref(),
            ctx.load_host.as_ref(),
            &cmd,
            &error_log,
            &[],
            &[format!("{proxy_uri}{ready}")],
            &desc.name,
            Duration::from_secs(desc.ready_timeout),
        )?;
        Ok(RunningGateway {
            kind: super::GatewayKind::Command,
            instance: ctx.instance.to_string(),
            proc,
            server_pid_file: None,
            other_logs: Vec::new(),
            proxy_uri,
            admin_uri: None,
            status_uri: None,
            reload: None,
            error_log,
            config_files,
            version_detail: desc.name.clone(),
            host,
            lua_profiler_dir: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_literal_braces() {
        let vars = BTreeMap::from([("port", "8000".to_string()), ("prefix", "/p".to_string())]);
        assert_eq!(
            render("listen {port}; root {prefix}; x {{ y }}", &vars).unwrap(),
            "listen 8000; root /p; x { y }"
        );
        assert!(
            render("{nope}", &vars)
                .unwrap_err()
                .contains("unknown placeholder {nope}")
        );
    }

    #[test]
    fn parses_a_descriptor() {
        let d: DescriptorFile = toml::from_str("[gateway]\nname = \"x\"\nbuild = \"make\"\nstart = [\"nginx\", \"-p\", \"{prefix}\"]\n[gateway.files]\n\"a.conf\" = \"a.in\"\n").unwrap();
        assert_eq!(
            d.gateway.start,
            CommandLine::Argv(vec!["nginx".into(), "-p".into(), "{prefix}".into()])
        );
        assert_eq!(d.gateway.ready, "/");
        assert_eq!(d.gateway.files["a.conf"], "a.in");
    }
}
