//! Facts about hosts the session asks for on every run (CPU count, boot id, PID namespace),
//! read once per host and cached, and the CPU plan that follows from them.

use std::path::Path;
use std::time::Duration;

use crate::host::Host;

use super::Session;

/// A host's CPU count and boot id (`None` when unreadable).
#[derive(Debug, Clone)]
pub(super) struct HostFacts {
    /// CPUs online.
    pub(super) cpus: usize,
    /// The kernel's boot id: equal on hosts that share a kernel (and so `/proc/stat`).
    pub(super) boot_id: Option<Vec<u8>>,
    /// The PID namespace (`/proc/self/ns/pid`): equal when the process tables are the same.
    pub(super) pid_ns: Option<String>,
}

/// How the lab pins roles to CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuPlan {
    /// CPUs of the server being measured (the gateway; the upstream in baseline cases).
    pub measured: Option<Vec<usize>>,
    /// CPUs of everything else (upstream, load generator).
    pub others: Option<Vec<usize>>,
}

impl CpuPlan {
    /// The measured server gets the last CPU, the rest share the others; no pinning below 2 CPUs.
    pub fn for_cpus(n: usize) -> CpuPlan {
        if n < 2 {
            return CpuPlan {
                measured: None,
                others: None,
            };
        }
        CpuPlan {
            measured: Some(vec![n - 1]),
            others: Some((0..n - 1).collect()),
        }
    }
}

impl Session {
    pub(super) fn facts(&self, host: &dyn Host) -> HostFacts {
        let key = format!("{}@{}", host.name(), host.address());
        if let Some(f) = self.host_facts.lock().expect("not poisoned").get(&key) {
            return f.clone();
        }
        let f = HostFacts {
            cpus: cpu_count(host),
            boot_id: host
                .read_file(Path::new("/proc/sys/kernel/random/boot_id"))
                .ok(),
            pid_ns: host
                .run(
                    &crate::host::Cmd::new("readlink").arg("/proc/self/ns/pid"),
                    Duration::from_secs(10),
                )
                .ok()
                .filter(|o| o.success())
                .map(|o| o.stdout_text().trim().to_string())
                .filter(|s| !s.is_empty()),
        };
        self.host_facts
            .lock()
            .expect("not poisoned")
            .insert(key, f.clone());
        f
    }

    /// [`cpu_count`], asked once per host.
    pub(super) fn cpus(&self, host: &dyn Host) -> usize {
        self.facts(host).cpus
    }

    /// True when two hosts share a kernel (same boot id): their `/proc/stat` is the same
    /// machine. Asked once per host.
    pub(super) fn same_machine(&self, a: &dyn Host, b: &dyn Host) -> bool {
        match (self.facts(a).boot_id, self.facts(b).boot_id) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    /// True when two hosts see the same process table: the same kernel and PID namespace (not
    /// so for two containers, or a container and the machine). A process group started on one
    /// is then visible, by the same pid, in the other's `/proc`. Asked once per host.
    pub(super) fn same_process_table(&self, a: &dyn Host, b: &dyn Host) -> bool {
        self.same_machine(a, b)
            && match (self.facts(a).pid_ns, self.facts(b).pid_ns) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
    }

    pub(super) fn cpu_plan(&self, host: &dyn Host) -> CpuPlan {
        if !self.pin_cpus {
            return CpuPlan {
                measured: None,
                others: None,
            };
        }
        CpuPlan::for_cpus(self.cpus(host))
    }
}

/// CPUs of a host (`getconf _NPROCESSORS_ONLN`).
pub fn cpu_count(host: &dyn Host) -> usize {
    if host.address() == "127.0.0.1"
        && let Ok(n) = std::thread::available_parallelism()
    {
        return n.get();
    }
    host.run(
        &crate::host::Cmd::new("getconf").arg("_NPROCESSORS_ONLN"),
        Duration::from_secs(10),
    )
    .ok()
    .and_then(|o| o.stdout_text().trim().parse().ok())
    .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_plan_pins_the_measured_server_alone() {
        assert_eq!(
            CpuPlan::for_cpus(1),
            CpuPlan {
                measured: None,
                others: None
            }
        );
        assert_eq!(
            CpuPlan::for_cpus(2),
            CpuPlan {
                measured: Some(vec![1]),
                others: Some(vec![0])
            }
        );
        assert_eq!(CpuPlan::for_cpus(4).others, Some(vec![0, 1, 2]));
    }
}
