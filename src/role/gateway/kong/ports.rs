//! The ports of one Kong lab: one allocator for every listener, the check that no two share a
//! port, and the check that each is free on the host.

use std::time::Duration;

use super::plan::StartPlan;
use super::settings::{KongSettings, Mode};
use crate::host::{Cmd, Host};

/// The ports of one Kong lab, one per listener, handed out by one allocator: the lab's proxy
/// and admin ports, then — counting up from the port after the admin port, in this order —
/// the control plane's cluster and telemetry listeners (hybrid) and the proxy of each data
/// plane after the first. (PostgreSQL is the lab's one server, whose port the session picks.)
/// Before this allocator, data plane *i* listened on `proxy_port + i − 1`: the control plane's
/// admin port for *i* = 2 and its cluster port for *i* = 3, so a three-data-plane lab silently
/// ran with one. [`super::plan()`] then checks that no two listeners (with the case's own) share a port
/// and the start checks each is free on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortLayout {
    /// The traffic instance's proxy (`proxy_listen`; data plane 1 in hybrid mode).
    pub proxy: u16,
    /// The Admin API (the control plane's in hybrid mode).
    pub admin: u16,
    /// `cluster_listen` (hybrid).
    pub cluster: Option<u16>,
    /// `cluster_telemetry_listen` (hybrid).
    pub telemetry: Option<u16>,
    /// The proxies of data planes 2, 3, … (hybrid).
    pub data_plane_proxies: Vec<u16>,
    /// The last port the allocator handed out (the admin port when none).
    last: u16,
}

impl PortLayout {
    /// The layout for `settings` from the lab's `proxy` and `admin` ports.
    pub fn new(settings: &KongSettings, proxy: u16, admin: u16) -> Self {
        let mut next = admin;
        let mut take = || {
            next = next.saturating_add(1);
            next
        };
        let hybrid = settings.mode == Mode::Hybrid;
        let cluster = hybrid.then(&mut take);
        let telemetry = hybrid.then(&mut take);
        let extra_dps = if hybrid {
            settings.data_planes.saturating_sub(1)
        } else {
            0
        };
        let data_plane_proxies = (0..extra_dps).map(|_| take()).collect();
        PortLayout {
            proxy,
            admin,
            cluster,
            telemetry,
            data_plane_proxies,
            last: next,
        }
    }

    /// The proxy port of data plane `i` (1-based), or of the only instance for `i = 1`.
    pub fn data_plane_proxy(&self, i: u32) -> u16 {
        match i {
            0 | 1 => self.proxy,
            i => self.data_plane_proxies[i as usize - 2],
        }
    }

    /// How many consecutive ports from the proxy port the layout spans when the proxy port
    /// is followed by the admin port (as the session hands them out).
    pub fn span(&self) -> u16 {
        self.last.saturating_sub(self.proxy).saturating_add(1)
    }
}

/// The TCP ports of `listen` values (`addr:port`, `addr:port ssl`, lists with `,`); `off` has none.
pub(crate) fn listen_ports(listen: &str) -> Vec<u16> {
    listen
        .split(',')
        .filter_map(|l| {
            let addr = l.split_whitespace().next()?;
            addr.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// Every port the instances of `plan` listen on, with who listens there.
pub(crate) fn planned_ports(plan: &StartPlan) -> Vec<(u16, String)> {
    let mut ports = Vec::new();
    for inst in &plan.instances {
        for key in [
            "proxy_listen",
            "admin_listen",
            "cluster_listen",
            "cluster_telemetry_listen",
            "status_listen",
        ] {
            if let Some(v) = inst.conf.get(key) {
                for p in listen_ports(v) {
                    ports.push((p, format!("{} {key}", inst.name)));
                }
            }
        }
    }
    ports
}

/// Ports of `ports` that something on `host` already listens on (or holds): bound from here on
/// a loopback host, read from the host's `/proc/net/tcp*` elsewhere (as
/// [`crate::role::ports::pick_ports`] does). An unreadable table checks nothing.
pub(crate) fn ports_in_use(host: &dyn Host, ports: &[(u16, String)]) -> Vec<(u16, String)> {
    if host.address() == "127.0.0.1" {
        return ports
            .iter()
            .filter(|(p, _)| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err())
            .cloned()
            .collect();
    }
    let Ok(out) = host.run(
        &Cmd::new("cat").args(["/proc/net/tcp", "/proc/net/tcp6"]),
        Duration::from_secs(10),
    ) else {
        return Vec::new();
    };
    let used = crate::role::ports::used_ports(&out.stdout_text());
    ports
        .iter()
        .filter(|(p, _)| used.contains(p))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::role::gateway::kong::test_support::*;

    #[test]
    fn port_layout_gives_every_listener_its_own_port() {
        use crate::role::gateway::kong::PortLayout;
        let hybrid3 =
            KongSettings::from_table(&settings("mode = \"hybrid\"\ndata_planes = 3")).unwrap();
        let l = PortLayout::new(&hybrid3, 9000, 9001);
        let mut all = vec![l.proxy, l.admin, l.cluster.unwrap(), l.telemetry.unwrap()];
        assert_eq!(l.data_plane_proxy(1), l.proxy);
        all.extend((2..=3).map(|i| l.data_plane_proxy(i)));
        let distinct: std::collections::BTreeSet<u16> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "{l:?}");
        // What the old layout (proxy_port + i - 1) gave data planes 2 and 3: the admin and cluster ports.
        assert!(!all[4..].contains(&9001) && l.data_plane_proxy(3) != l.cluster.unwrap());
        assert_eq!(l.span(), 6);
        // PostgreSQL is the lab's one server (the session picks its port): a setting for its
        // port is refused.
        assert!(KongSettings::from_table(&settings("pg_port = 5432")).is_err());
    }
}
