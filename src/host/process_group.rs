//! Process groups of local children: stop politely, and never leave one behind.
//!
//! Every program the lab starts on this machine gets its own process group, so stopping a role
//! stops everything it forked (nginx workers, a shell's children). Stopping is TERM, a grace
//! period, then KILL. Live groups are kept in a registry so that a second Ctrl-C (or a panic) can
//! kill them all at once; [`GroupGuard`] kills its group on drop as the last resort.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Records a live process group.
pub fn register(pgid: i32) {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pgid);
}

/// Forgets a process group that has been stopped.
pub fn unregister(pgid: i32) {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pgid);
}

/// Kills every registered group at once (second Ctrl-C, fatal paths).
pub fn kill_all() {
    let groups: Vec<i32> = LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    for g in groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
}

/// True while any process of the group exists.
pub fn group_alive(pgid: i32) -> bool {
    // Signal 0 checks for existence without delivering anything.
    nix::sys::signal::killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Sends TERM to the group, waits up to `grace` for it to vanish, then sends KILL.
/// `reap` is called while waiting so that a direct child can be reaped (zombies keep the group
/// alive).
pub fn terminate(pgid: i32, grace: Duration, mut reap: impl FnMut()) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < grace {
        reap();
        if !group_alive(pgid) {
            unregister(pgid);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    for _ in 0..100 {
        reap();
        if !group_alive(pgid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    unregister(pgid);
}

/// Kills a process group with KILL when dropped, unless disarmed.
#[derive(Debug)]
pub struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    /// Guards `pgid` and registers it.
    pub fn new(pgid: i32) -> Self {
        register(pgid);
        GroupGuard { pgid: Some(pgid) }
    }
    /// The guarded group.
    pub fn pgid(&self) -> Option<i32> {
        self.pgid
    }
    /// Stops guarding (after an orderly stop).
    pub fn disarm(&mut self) {
        if let Some(g) = self.pgid.take() {
            unregister(g);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(g) = self.pgid.take() {
            let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
            unregister(g);
        }
    }
}
