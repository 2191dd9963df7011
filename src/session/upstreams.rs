//! The upstream verbs: start the upstream nginx (one or several), and the fixed port base.

use crate::driver::Role;
use crate::role::ports::pick_ports;
use crate::role::upstream;
use crate::role::upstream::{Upstream, UpstreamOptions};
use crate::{Error, Result};

use super::{LogLevel, Session};

impl Session {
    /// Starts the upstream with `conf` inside its `server {}` block on one port; returns its URI
    /// as the gateway sees it.
    pub fn start_upstream(&mut self, conf: &str) -> Result<String> {
        Ok(self.start_upstreams(conf, 1)?.remove(0))
    }

    /// Starts the upstream on `n` consecutive ports; returns their URIs.
    pub fn start_upstreams(&mut self, conf: &str, n: u16) -> Result<Vec<String>> {
        self.start_upstream_with(&crate::suite::UpstreamTable {
            config: conf.into(),
            ports: Some(n),
            ..Default::default()
        })
    }

    /// Starts the upstream from a case's upstream settings. In baseline mode the upstream is the
    /// measured server and gets the measured CPUs.
    pub fn start_upstream_with(
        &mut self,
        spec: &crate::suite::UpstreamTable,
    ) -> Result<Vec<String>> {
        if let Some(mut u) = self.upstream.take() {
            u.stop()?;
        }
        let host = self.host(Role::Worker, "default")?;
        let plan = self.cpu_plan(host.as_ref());
        let n = spec.ports.unwrap_or(1).max(1);
        if n > crate::suite::MAX_UPSTREAM_PORTS {
            return Err(Error::Usage(format!(
                "upstream.ports must be from 1 to {} (got {n})",
                crate::suite::MAX_UPSTREAM_PORTS
            )));
        }
        let base_port = match self.port_base {
            Some(p) => check_port_base(p)?,
            None => pick_ports(host.as_ref(), n, 18088)?,
        };
        let opts = UpstreamOptions {
            config: spec.config.clone(),
            ports: n,
            base_port,
            workers: spec.workers.unwrap_or(1),
            body_bytes: spec.body_bytes,
            cpus: if self.baseline_mode {
                plan.measured
            } else {
                plan.others
            },
        };
        let prefix = host.lab_dir().join(format!("upstream-{base_port}"));
        let up = upstream::start_upstream(host, prefix, &opts)?;
        let uris = up.uris.clone();
        self.log(
            LogLevel::Debug,
            &format!("upstream ready at {}", uris.join(", ")),
        );
        self.upstream = Some(up);
        Ok(uris)
    }

    /// The running upstream, if any.
    pub fn upstream(&self) -> Option<&Upstream> {
        self.upstream.as_ref()
    }

    /// Marks the next upstream as the measured server (baseline cases: no gateway).
    pub fn set_baseline_mode(&mut self, on: bool) {
        self.baseline_mode = on;
    }
}

/// Highest `port_base`: the gateway listens on `port_base + 100` and its admin API on
/// `port_base + 101`, which must stay a valid port (65535).
pub const MAX_PORT_BASE: u16 = u16::MAX - 101;

/// Refuses a fixed port base that leaves no room for the gateway's ports (never clamps: a
/// clamped port would collide with the upstream's or another program's).
pub(super) fn check_port_base(p: u16) -> Result<u16> {
    if p == 0 || p > MAX_PORT_BASE {
        return Err(Error::Usage(format!(
            "--port-base {p} leaves no room for the gateway (PORT+100) and its admin API \
             (PORT+101): use a port from 1 to {MAX_PORT_BASE}"
        )));
    }
    Ok(p)
}
