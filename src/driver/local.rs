//! The local driver: every role on this machine, as child processes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Driver, DriverOptions, Role};
use crate::Result;
use crate::host::{Host, LocalHost};
use crate::journal::Journal;

/// Hosts on this machine. All roles share one [`LocalHost`] per role whose private directory
/// lives under the lab's run directory (default `$TMPDIR/perflab-<lab id>`).
pub struct LocalDriver {
    root: PathBuf,
    hosts: HashMap<(Role, String), Arc<dyn Host>>,
    load_hosts: u32,
    journal: Arc<Journal>,
}

impl LocalDriver {
    /// A local driver; option `dir` overrides where the lab's private files go, `load_hosts`
    /// runs that many open-loop generators side by side on this machine. Its
    /// [journal](crate::journal) is written at once, naming that directory.
    pub fn new(options: &DriverOptions, lab_id: &str) -> Result<Self> {
        let load_hosts = super::load_hosts_option(options)?;
        let root = match options.get("dir") {
            Some(d) => PathBuf::from(d),
            None => std::env::temp_dir().join(format!("perflab-{lab_id}")),
        };
        let journal = Journal::create(lab_id, "local")?;
        journal.update(|r| r.local_dirs.push(root.clone()))?;
        Ok(LocalDriver {
            root,
            hosts: HashMap::new(),
            load_hosts,
            journal,
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
        let host: Arc<dyn Host> =
            Arc::new(LocalHost::new(role.as_str(), &dir)?.with_journal(self.journal.clone()));
        self.hosts.insert(key, host.clone());
        Ok(host)
    }

    fn load_hosts(&self) -> u32 {
        self.load_hosts
    }

    fn teardown(&mut self, _full: bool) -> Result<()> {
        self.hosts.clear();
        // Whatever the roles did not stop (they normally stop everything) goes now, from the
        // journal; then the folder, then the journal itself.
        stop_local_groups(&self.journal.snapshot().local_groups);
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(crate::Error::io(&self.root, e))
            }
            _ => {
                self.journal.remove();
                Ok(())
            }
        }
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "driver": "local", "network": "loopback" })
    }
}

/// Stops the journal's local process groups that still run and are still the lab's (members
/// no older than the recorded leader); returns how many were stopped.
pub fn stop_local_groups(groups: &[crate::journal::LocalGroup]) -> usize {
    let mut n = 0;
    for g in groups {
        if !crate::host::process_group::members_since(g.pgid, g.start_ticks).is_empty() {
            crate::host::terminate::locally(
                g.pgid,
                nix::sys::signal::Signal::SIGTERM,
                std::time::Duration::from_secs(3),
                || {},
            );
            n += 1;
        }
    }
    n
}
