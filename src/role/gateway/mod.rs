//! Gateway adapters: how to configure, start, check and stop one kind of gateway.
//!
//! An adapter renders its configuration from the case's [`Entities`] into a private prefix on
//! its host, checks it with the gateway's own checker (reporting the gateway's message when it
//! refuses), starts it in its own process group and waits until it answers.

pub mod command;
pub mod haproxy;
pub mod kong;
pub mod nginx;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Result;
use crate::entities::Entities;
use crate::host::{Cmd, Host, Proc};
use crate::version::Version;

/// Everything an adapter needs to start one gateway instance.
pub struct GatewayContext<'a> {
    /// The host the gateway runs on.
    pub host: Arc<dyn Host>,
    /// The host the load generator runs on (readiness is checked from there).
    pub load_host: Arc<dyn Host>,
    /// The lab's PostgreSQL server, for adapters that asked for it
    /// ([`GatewayAdapter::needs_lab_database`]): one per lab, started by the session on the
    /// lab's database host the first time a gateway needs it and shared by every later start.
    pub postgres: Option<&'a crate::role::postgres::Postgres>,
    /// Instance name ("default" unless several run at once).
    pub instance: &'a str,
    /// A private directory on the gateway host for config, pid and logs.
    pub prefix: PathBuf,
    /// Upstream URIs as the gateway host sees them.
    pub upstream_uris: &'a [String],
    /// Services, routes, plugins, consumers.
    pub entities: &'a Entities,
    /// The version label (`current`, `git:<ref>`, `3.9.1`, `image:…`).
    pub version: &'a str,
    /// Source or install directory of the version, when it is not `current` (a git worktree).
    pub version_dir: Option<PathBuf>,
    /// Port for proxied traffic.
    pub proxy_port: u16,
    /// Port for an admin API, where the gateway has one.
    pub admin_port: u16,
    /// CPUs to pin the gateway to.
    pub cpus: Option<Vec<usize>>,
    /// Worker processes/threads.
    pub workers: u32,
    /// Gateway-specific settings from the case (e.g. `kong_configs`).
    pub settings: &'a toml::Table,
    /// The host is a machine the driver provisioned for the lab, where a missing release may be
    /// installed from its distribution package (terraform cloud and bring-your-own hosts).
    pub install_packages: bool,
}

/// A started gateway instance.
pub struct RunningGateway {
    /// Adapter kind.
    pub kind: GatewayKind,
    /// Instance name.
    pub instance: String,
    /// The gateway's main process (its process group holds all its processes).
    pub proc: Box<dyn Proc>,
    /// The pid file of the server's master when [`RunningGateway::proc`] only launched it
    /// (Kong's `kong start` runs nginx as a child): profilers attach to that master and its
    /// workers. `None`: `proc`'s process group is the server.
    pub server_pid_file: Option<PathBuf>,
    /// The URI the load generator sends traffic to.
    pub proxy_uri: String,
    /// The admin API URI as the worker sees it, where there is one.
    pub admin_uri: Option<String>,
    /// A status listener's URI as the worker sees it (Kong's `status_listen`), where there is one.
    pub status_uri: Option<String>,
    /// The command, run on the gateway's host, that makes the running gateway reread its
    /// configuration (`None`: the gateway cannot reload in place).
    pub reload: Option<Cmd>,
    /// The error log on the gateway host.
    pub error_log: PathBuf,
    /// Error logs of the instance's other processes, by name (Kong's control plane and other
    /// data planes in hybrid mode), saved beside [`RunningGateway::error_log`].
    pub other_logs: Vec<(String, PathBuf)>,
    /// Configuration files written on the gateway host (kept with each run).
    pub config_files: Vec<PathBuf>,
    /// What the version resolved to (e.g. `nginx/1.22.1`).
    pub version_detail: String,
    /// The host it runs on.
    pub host: Arc<dyn Host>,
    /// The control directory of perflab's Lua sampler on the host, where the gateway runs it
    /// (Kong; [`crate::role::lua_profiler`]).
    pub lua_profiler_dir: Option<PathBuf>,
}

/// One kind of gateway.
pub trait GatewayAdapter: Send + Sync {
    /// Checks a `git:` version's checked-out tree (`label` names the version in messages)
    /// before any run starts. Most kinds need nothing of it.
    fn check_tree(&self, _dir: &Path, _label: &str) -> Result<()> {
        Ok(())
    }
    /// Renders the config, checks it, starts the gateway and waits until it is ready.
    fn start(&self, ctx: &GatewayContext) -> Result<RunningGateway>;
    /// The container image this version runs from on drivers whose hosts are containers
    /// (`None`: the lab's image, with the gateway program in it). Kong picks `kong:<release>`;
    /// `version_dir` is a `git:` version's local tree, `settings` the case's gateway settings.
    /// `image:<ref>` versions never get here: the session runs them from that image.
    fn container_image(
        &self,
        _version: &str,
        _version_dir: Option<&std::path::Path>,
        _settings: &toml::Table,
    ) -> Result<Option<crate::driver::GatewayImage>> {
        Ok(None)
    }
    /// Whether a start with these case settings needs the lab's PostgreSQL (the session then
    /// starts it, once per lab, and puts it in [`GatewayContext::postgres`]).
    fn needs_lab_database(&self, _settings: &toml::Table) -> bool {
        false
    }
    /// How many consecutive ports, from [`GatewayContext::proxy_port`] on, a start with these
    /// case settings listens on (default 2: the proxy and admin ports). The session picks that
    /// many free ones, so listeners an adapter puts after the admin port are checked too.
    fn ports_needed(&self, _settings: &toml::Table) -> u16 {
        2
    }
    /// Whether a suite starts this gateway once per case and runs the case's repeats against
    /// it (default: no, a fresh instance per run, so repeats are independent). Kong's framework
    /// started Kong once per test and ran its three loads against it.
    fn keeps_for_repeats(&self, _settings: &toml::Table) -> bool {
        false
    }
    /// Makes the running instance reread its configuration while it serves traffic (an action
    /// during load). Default: runs [`RunningGateway::reload`] on its host and fails when the
    /// command does, with its output.
    fn reload(&self, gw: &RunningGateway) -> Result<()> {
        let cmd = gw.reload.as_ref().ok_or_else(|| {
            crate::Error::Usage(format!("gateway {} cannot reload in place", gw.kind))
        })?;
        let out = gw.host.run(cmd, std::time::Duration::from_secs(120))?;
        if !out.success() {
            return Err(crate::Error::Lab(format!(
                "{} reload (`{}`) failed: {}",
                gw.kind,
                cmd.display(),
                out.combined_text()
            )));
        }
        Ok(())
    }
    /// Stops the instance (default: TERM, grace, KILL to its process group).
    fn stop(&self, gw: &mut RunningGateway) -> Result<()> {
        gw.proc.stop(std::time::Duration::from_secs(5))?;
        Ok(())
    }
}

/// The gateway kinds perflab knows, as case files, `--gateway` and results name them. The
/// `match` in [`GatewayKind::adapter`] is the registry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// No gateway: load goes straight to the upstream (the reference point).
    Baseline,
    /// nginx as a reverse proxy.
    Nginx,
    /// HAProxy.
    Haproxy,
    /// Kong (traditional with PostgreSQL, DB-less or hybrid).
    Kong,
    /// Any gateway, from a `perflab.toml` in its repository (docs/command-gateway.md).
    Command,
}

crate::names::impl_names!(GatewayKind => "gateway");

impl GatewayKind {
    /// The adapter that starts this kind; `None` for [`GatewayKind::Baseline`], which has no
    /// gateway (the session sends load to the upstream).
    pub fn adapter(self) -> Option<Box<dyn GatewayAdapter>> {
        Some(match self {
            GatewayKind::Baseline => return None,
            GatewayKind::Nginx => Box::new(nginx::NginxAdapter),
            GatewayKind::Haproxy => Box::new(haproxy::HaproxyAdapter),
            GatewayKind::Kong => Box::new(kong::KongAdapter::new()),
            GatewayKind::Command => Box::new(command::CommandAdapter),
        })
    }

    /// [`GatewayKind::adapter`], or a usage error for `baseline` (which starts no gateway).
    pub fn require_adapter(self) -> Result<Box<dyn GatewayAdapter>> {
        self.adapter().ok_or_else(|| {
            crate::Error::Usage(
                "gateway kind baseline starts no gateway: load goes to the upstream".into(),
            )
        })
    }
}

/// Makes `version` usable for gateway `kind`: checks out a `git:` version's tree (see
/// [`Version::prepare`]) and lets the kind's adapter check it (the command gateway reads its
/// `perflab.toml`), so a bad commit is refused before any run starts.
pub fn prepare_version(version: &Version, kind: GatewayKind) -> Result<Option<PathBuf>> {
    let dir = version.prepare()?;
    if let (Some(d), Some(adapter)) = (&dir, kind.adapter()) {
        adapter.check_tree(d, &version.label)?;
    }
    Ok(dir)
}

/// Checks that a release version label matches what the installed program reports.
/// `current` and `git:`/`image:` labels are not checked here.
pub fn check_release(version: &str, detail: &str, program: &str) -> Result<()> {
    if version == "current" || version.contains(':') {
        return Ok(());
    }
    let found = detail.rsplit('/').next().unwrap_or(detail);
    if found == version || found.starts_with(&format!("{version}-")) {
        return Ok(());
    }
    Err(crate::Error::Usage(format!(
        "version {version} of {program} was asked for, but the installed {program} is {detail}; use `current` or install {version}"
    )))
}
