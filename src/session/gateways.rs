//! The gateway verbs: start instances of a gateway version, check they are alive, stop them,
//! their admin URI and error logs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::driver::{GatewayImage, Role};
use crate::entities::Entities;
use crate::host::Host;
use crate::role::gateway;
use crate::role::gateway::{GatewayContext, RunningGateway};
use crate::role::ports::pick_ports;
use crate::{Error, Result};

use super::upstreams::check_port_base;
use super::{LogLevel, Session};

/// What [`Session::gateway_alive`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLiveness {
    /// The main process runs and every process of the group seen at start still exists.
    pub alive: bool,
    /// What died, in words (empty when alive).
    pub detail: String,
}

impl Session {
    /// Starts a gateway instance of `kind` at `version` in front of the upstream; returns its
    /// proxy URI. Call it again with another `instance` name to run several at once.
    pub fn start_gateway(
        &mut self,
        kind: gateway::GatewayKind,
        version: &str,
        entities: &Entities,
        settings: &toml::Table,
        instance: &str,
    ) -> Result<String> {
        self.start_gateway_in(kind, version, None, entities, settings, instance, 1)
    }

    /// [`Session::start_gateway`] with a version directory (a git worktree) and worker count.
    #[allow(clippy::too_many_arguments)]
    pub fn start_gateway_in(
        &mut self,
        kind: gateway::GatewayKind,
        version: &str,
        version_dir: Option<PathBuf>,
        entities: &Entities,
        settings: &toml::Table,
        instance: &str,
        workers: u32,
    ) -> Result<String> {
        if self.gateways.contains_key(instance) {
            return Err(Error::Usage(format!(
                "gateway instance \"{instance}\" is already running: stop it first or use another name"
            )));
        }
        let upstream_uris = self
            .upstream
            .as_ref()
            .map(|u| u.uris.clone())
            .ok_or_else(|| Error::Usage("start the upstream before the gateway".into()))?;
        let adapter = kind.require_adapter()?;
        let image = match version.strip_prefix("image:") {
            Some(reference) => Some(GatewayImage::new(reference)),
            None if self.driver()?.runs_images() => {
                adapter.container_image(version, version_dir.as_deref(), settings)?
            }
            None => None,
        };
        let host = match &image {
            Some(image) => self
                .driver()?
                .host_from_image(Role::Gateway, instance, image)?,
            None => self.host(Role::Gateway, instance)?,
        };
        let version_dir = match version_dir {
            Some(dir) if !host.shares_local_files() => Some(self.upload_version_tree(&host, &dir)?),
            other => other,
        };
        let load_host = self.host(Role::Worker, "default")?;
        let lab_database = adapter.needs_lab_database(settings);
        if lab_database {
            // As Kong's own database always had: a password, also on loopback.
            self.start_lab_postgres(true)?;
        }
        let install_packages = self.driver()?.installs_packages();
        let plan = self.cpu_plan(host.as_ref());
        let proxy_port = match self.port_base {
            Some(p) => check_port_base(p)? + 100,
            None => pick_ports(host.as_ref(), adapter.ports_needed(settings).max(2), 38000)?,
        };
        let prefix = host
            .lab_dir()
            .join(format!("{kind}-{instance}-{proxy_port}"));
        let ctx = GatewayContext {
            host: host.clone(),
            load_host,
            postgres: self.postgres.as_ref().filter(|_| lab_database),
            instance,
            prefix,
            upstream_uris: &upstream_uris,
            entities,
            version,
            version_dir,
            proxy_port,
            admin_port: proxy_port + 1,
            cpus: plan.measured,
            workers,
            settings,
            install_packages,
        };
        let mut gw = adapter.start(&ctx)?;
        if let Some(image) = &image {
            let id = self
                .driver()?
                .image_id(&image.reference)
                .map(|id| format!(" {id}"))
                .unwrap_or_default();
            gw.version_detail = format!("{} (image {}{id})", gw.version_detail, image.reference);
        }
        let uri = gw.proxy_uri.clone();
        self.log(
            LogLevel::Debug,
            &format!("{kind} {version} ({}) ready at {uri}", gw.version_detail),
        );
        let pids = group_pids(gw.host.as_ref(), gw.proc.pid()).unwrap_or_default();
        self.gateway_pids.insert(instance.to_string(), pids);
        self.gateways.insert(instance.to_string(), gw);
        Ok(uri)
    }

    /// Whether a gateway instance is still whole: its main process runs, and every process of
    /// its process group seen when it became ready (nginx's master and workers, HAProxy) still
    /// exists. A worker that nginx replaced counts as died: the run lost it. Cheap enough to
    /// call between load bursts (one process-table read on the gateway's host).
    pub fn gateway_alive(&mut self, instance: &str) -> Result<GatewayLiveness> {
        let gw = self.gateways.get_mut(instance).ok_or_else(|| {
            Error::Usage(format!("gateway instance \"{instance}\" is not running"))
        })?;
        let pgid = gw.proc.pid();
        let mut problems = Vec::new();
        if !gw.proc.is_running() {
            problems.push(match gw.proc.wait_timeout(Duration::ZERO).ok().flatten() {
                Some(c) if c < 0 => format!("its main process {pgid} was killed by signal {}", -c),
                Some(c) => format!("its main process {pgid} exited with status {c}"),
                None => format!("its main process {pgid} is gone"),
            });
        }
        let expected = self.gateway_pids.get(instance).cloned().unwrap_or_default();
        // An unreadable process table says nothing about the gateway: only the main process
        // is judged then.
        if !expected.is_empty()
            && let Some(now) = group_pids(gw.host.as_ref(), pgid)
        {
            let gone: Vec<String> = expected
                .difference(&now)
                .filter(|p| **p != pgid || problems.is_empty())
                .map(|p| p.to_string())
                .collect();
            if !gone.is_empty() {
                let new: Vec<String> = now.difference(&expected).map(|p| p.to_string()).collect();
                let mut d = format!(
                    "process{} {} of its group exited",
                    if gone.len() == 1 { "" } else { "es" },
                    gone.join(", ")
                );
                if !new.is_empty() {
                    d.push_str(&format!(" ({} started in their place)", new.join(", ")));
                }
                if now.is_empty() {
                    d.push_str(" (no process of the group is left)");
                }
                problems.push(d);
            }
        }
        Ok(GatewayLiveness {
            alive: problems.is_empty(),
            detail: problems.join("; "),
        })
    }

    /// Copies a `git:` version's local tree to a host that cannot see this machine's files, once
    /// per host, and returns where it is there (`<lab dir>/versions/<commit>`).
    pub(super) fn upload_version_tree(
        &mut self,
        host: &Arc<dyn Host>,
        dir: &Path,
    ) -> Result<PathBuf> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tree".into());
        let remote = host.lab_dir().join("versions").join(name);
        let key = format!("{}@{}:{}", host.name(), host.address(), remote.display());
        if self.uploaded_trees.insert(key) {
            self.log(
                LogLevel::Info,
                &format!(
                    "copying {} to {}:{}",
                    dir.display(),
                    host.name(),
                    remote.display()
                ),
            );
            host.upload_tree(dir, &remote)?;
        }
        Ok(remote)
    }

    /// A running gateway instance.
    pub fn gateway(&self, instance: &str) -> Option<&RunningGateway> {
        self.gateways.get(instance)
    }

    /// Stops every gateway instance.
    pub fn stop_gateway(&mut self) -> Result<()> {
        self.gateway_pids.clear();
        let mut first_err = None;
        for (_, mut gw) in std::mem::take(&mut self.gateways) {
            let adapter = gw.kind.require_adapter()?;
            if let Err(e) = adapter.stop(&mut gw) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The admin API URI of an instance (the first one with an admin API when `None`), as the
    /// worker sees it.
    pub fn get_admin_uri(&self, instance: Option<&str>) -> Result<String> {
        let found = match instance {
            Some(name) => self
                .gateways
                .get(name)
                .ok_or_else(|| Error::Usage(format!("gateway instance \"{name}\" is not running")))?
                .admin_uri
                .clone(),
            None => self.gateways.values().find_map(|g| g.admin_uri.clone()),
        };
        found.ok_or_else(|| Error::Usage("no running gateway has an admin API".into()))
    }

    /// Copies each gateway instance's error log to `path` (suffixed with the instance name when
    /// several run), and the error logs of its other processes (Kong's control plane in hybrid
    /// mode) beside it, suffixed with their names (`PATH-cp`).
    pub fn save_error_log(&self, path: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let many = self.gateways.len() > 1;
        for (name, gw) in &self.gateways {
            let data = gw.host.read_file(&gw.error_log).unwrap_or_default();
            let p = if many {
                PathBuf::from(format!("{}-{name}", path.display()))
            } else {
                path.to_path_buf()
            };
            crate::util::fs::atomic_write(&p, &data).map_err(|e| Error::io(&p, e))?;
            out.push(p.clone());
            for (other, log) in &gw.other_logs {
                let data = gw.host.read_file(log).unwrap_or_default();
                let q = PathBuf::from(format!("{}-{other}", p.display()));
                crate::util::fs::atomic_write(&q, &data).map_err(|e| Error::io(&q, e))?;
                out.push(q);
            }
        }
        Ok(out)
    }
}

/// The processes of a process group on a host (`None` when the process table cannot be read).
pub(super) fn group_pids(host: &dyn Host, pgid: u32) -> Option<std::collections::BTreeSet<u32>> {
    // A snapshot without a single process was not read (every host has at least one).
    let s = host.proc_snapshot().ok().filter(|s| !s.procs.is_empty())?;
    Some(
        s.procs
            .values()
            .filter(|p| p.pgrp == pgid)
            .map(|p| p.pid)
            .collect(),
    )
}
