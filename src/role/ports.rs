//! Free ports for the roles' listeners, picked on the host that will listen.
//!
//! Why here: the upstream, the gateways and PostgreSQL all need ports nobody else holds on
//! their host, and a host seen over loopback is checked differently from a namespace or a
//! remote machine. The session picks the ports for the roles it starts; Kong's adapter checks
//! its own listeners with the same reading of the socket tables.

use std::time::Duration;

use crate::host::{Cmd, Host};
use crate::{Error, Result};

/// Picks `n` consecutive free ports. On hosts reached over loopback the ports are checked by
/// binding them here. Elsewhere (network namespaces, remote machines) the host's own socket
/// tables (`/proc/net/tcp`, `/proc/net/tcp6`, which belong to its network namespace) are read
/// and a base below the usual ephemeral range is chosen that no socket there uses, so two labs
/// or a leftover of an interrupted run on the same machine do not collide; `default_base` is the
/// fallback when the tables cannot be read.
pub fn pick_ports(host: &dyn Host, n: u16, default_base: u16) -> Result<u16> {
    let seed = (std::process::id() as u64).wrapping_mul(2_654_435_761)
        ^ crate::util::time::now_unix().to_bits();
    if host.address() != "127.0.0.1" {
        let Ok(out) = host.run(
            &Cmd::new("cat").args(["/proc/net/tcp", "/proc/net/tcp6"]),
            Duration::from_secs(10),
        ) else {
            return Ok(default_base);
        };
        let used = used_ports(&out.stdout_text());
        if used.is_empty() && !out.success() {
            return Ok(default_base);
        }
        for attempt in 0..200u64 {
            let base = 20_000 + ((seed.wrapping_add(attempt.wrapping_mul(7919))) % 12_000) as u16;
            if (0..n).all(|i| !used.contains(&(base + i))) {
                return Ok(base);
            }
        }
        return Ok(default_base);
    }
    for attempt in 0..200u64 {
        let base = 20_000 + ((seed.wrapping_add(attempt.wrapping_mul(7919))) % 25_000) as u16;
        let free = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return Ok(base);
        }
    }
    Err(Error::Lab(format!(
        "no {n} consecutive free ports found on 127.0.0.1"
    )))
}

/// Local ports of every socket in `/proc/net/tcp`-format text (any state).
pub fn used_ports(text: &str) -> std::collections::BTreeSet<u16> {
    text.lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(1)?;
            let (_, port) = local.rsplit_once(':')?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_ports_are_read_from_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0201E70A:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0\n";
        let p = used_ports(text);
        assert!(p.contains(&20000) && p.contains(&8080), "{p:?}");
        assert_eq!(p.len(), 2);
    }
}
