//! The local driver: every role on this machine, as child processes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Driver, DriverOptions, Role};
use crate::Result;
use crate::host::{Host, LocalHost};

/// Hosts on this machine. All roles share one [`LocalHost`] per role whose private directory
/// lives under the lab's run directory (default `$TMPDIR/perflab-<lab id>`).
pub struct LocalDriver {
    root: PathBuf,
    hosts: HashMap<(Role, String), Arc<dyn Host>>,
    load_hosts: u32,
}

impl LocalDriver {
    /// A local driver; option `dir` overrides where the lab's private files go, `load_hosts`
    /// runs that many open-loop generators side by side on this machine.
    pub fn new(options: &DriverOptions, lab_id: &str) -> Result<Self> {
        let load_hosts = super::load_hosts_option(options)?;
        let root = match options.get("dir") {
            Some(d) => PathBuf::from(d),
            None => std::env::temp_dir().join(format!("perflab-{lab_id}")),
        };
        Ok(LocalDriver {
            root,
            hosts: HashMap::new(),
            load_hosts,
        })
    }
}

impl Driver for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
    }

    fn host(&mut self, role: Role, instance: &str) -> Result<Arc<dyn Host>> {
        let key = (role, instance.to_string());
        if let Some(h) = self.hosts.get(&key) {
            return Ok(h.clone());
        }
        let dir = self.root.join(format!("{}-{instance}", role.as_str()));
        let host: Arc<dyn Host> = Arc::new(LocalHost::new(role.as_str(), &dir)?);
        self.hosts.insert(key, host.clone());
        Ok(host)
    }

    fn load_hosts(&self) -> u32 {
        self.load_hosts
    }

    fn teardown(&mut self, _full: bool) -> Result<()> {
        self.hosts.clear();
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(crate::Error::io(&self.root, e))
            }
            _ => Ok(()),
        }
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "driver": "local", "network": "loopback" })
    }
}

/// A local lab whose perflab process is gone but whose directory (and maybe processes) remain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLeftover {
    /// The lab directory.
    pub dir: PathBuf,
    /// Process groups still running with the lab directory on their command line.
    pub groups: Vec<i32>,
}

/// Finds labs under `tmp` (`perflab-<time>-<pid>`) whose perflab process no longer runs.
pub fn find_leftovers(tmp: &std::path::Path) -> Vec<LocalLeftover> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("perflab-") else {
            continue;
        };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        let needle = format!("{}/", dir.display());
        let mut groups = Vec::new();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
                    continue;
                };
                let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if line.contains(&needle)
                    && let Ok(stat) = std::fs::read_to_string(p.path().join("stat"))
                    && let Some(t) = crate::host::proc_stat::parse_process_line(&stat)
                    && !groups.contains(&(t.pgrp as i32))
                {
                    groups.push(t.pgrp as i32);
                }
            }
        }
        out.push(LocalLeftover { dir, groups });
    }
    out
}

/// Stops the leftover labs' process groups and removes their directories.
pub fn remove_leftovers(found: &[LocalLeftover]) -> Result<()> {
    for l in found {
        for g in &l.groups {
            crate::host::process_group::terminate(*g, std::time::Duration::from_secs(3), || {});
        }
        match std::fs::remove_dir_all(&l.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(crate::Error::io(&l.dir, e));
            }
            _ => {}
        }
    }
    Ok(())
}
