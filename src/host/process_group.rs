//! Process groups of local children: stop politely, and never leave one behind.
//!
//! Every program the lab starts on this machine gets its own process group, so stopping a role
//! stops everything it forked (nginx workers, a shell's children). Stopping is the lab's one
//! routine, [`super::terminate`] (TERM, a grace period, then KILL), the same on every host.
//! Live groups are kept in a registry so that a
//! second Ctrl-C (or a panic) can kill them all at once; [`GroupGuard`] kills its group on drop
//! as the last resort, and removes it from the lab's [journal](crate::journal).
//!
//! If perflab itself is killed (`kill -9`), no code of it runs: every child is therefore spawned
//! with a parent-death signal ([`spawn_tied`]), so the kernel sends its group leader SIGTERM
//! when perflab dies (nginx's and HAProxy's masters then stop their workers). The kernel sends
//! it when the *thread* that spawned the child ends, not the process, so every child is spawned
//! by one long-lived thread. What a leader's death does not stop (a worker whose master was
//! killed with KILL) is stopped by `perflab teardown` from the journal.

use std::collections::BTreeSet;
use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::journal::Journal;

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

/// Kills a process group with KILL when dropped, unless disarmed.
#[derive(Debug)]
pub struct GroupGuard {
    pgid: Option<i32>,
    journal: Option<Arc<Journal>>,
}

impl GroupGuard {
    /// Guards `pgid` and registers it.
    pub fn new(pgid: i32) -> Self {
        register(pgid);
        GroupGuard {
            pgid: Some(pgid),
            journal: None,
        }
    }
    /// Guards `pgid`, registers it and records it in the lab's journal (removed again when the
    /// group is stopped).
    pub fn journaled(pgid: i32, program: &str, journal: Arc<Journal>) -> Self {
        if let Err(e) = journal.add_local_group(pgid, program) {
            tracing::warn!("{e:#}");
        }
        let mut g = Self::new(pgid);
        g.journal = Some(journal);
        g
    }
    /// The guarded group.
    pub fn pgid(&self) -> Option<i32> {
        self.pgid
    }
    /// Stops guarding (after an orderly stop).
    pub fn disarm(&mut self) {
        if let Some(g) = self.pgid.take() {
            unregister(g);
            if let Some(j) = &self.journal {
                j.remove_local_group(g);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(g) = self.pgid {
            let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
            self.disarm();
        }
    }
}

pub use crate::util::proc::start_ticks;
use crate::util::proc::stat_field;

/// The live members of process group `pgid` started at or after `since` (ticks since boot): a
/// group recorded in a journal is still the lab's only if its members are at least as young as
/// its leader was (a group id is not reused while any member lives).
pub fn members_since(pgid: i32, since: u64) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if !zombie
            && stat_field(&stat, 2) == Some(pgid as u64)
            && stat_field(&stat, 19).is_some_and(|t| t >= since)
        {
            out.push(pid);
        }
    }
    out
}

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that its process gets SIGTERM when perflab dies (`PR_SET_PDEATHSIG`),
/// from the one long-lived spawning thread (the signal follows the spawning thread's end).
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure only makes two system calls (prctl, getppid), both async-signal-safe,
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)?;
            // perflab died between fork and prctl: do not start an orphan.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::other("perflab ended while starting the program"));
            }
            Ok(())
        });
    }
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("perflab-spawner".into())
            .spawn(move || {
                for (mut c, reply) in rx {
                    let _ = reply.send(c.spawn());
                }
            })
            .expect("a thread can be started");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .map_err(|_| io::Error::other("the spawning thread ended"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawning thread ended"))?
}

/// Runs `cmd` to its end, tied to perflab like [`spawn_tied`], and collects its output (as
/// [`Command::output`]: stdin null, stdout and stderr captured).
pub fn output_tied(mut cmd: Command) -> io::Result<std::process::Output> {
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn_tied(cmd)?.wait_with_output()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::Duration;

    #[test]
    fn a_child_of_a_finished_thread_keeps_running() {
        // The parent-death signal follows the spawning thread: a child spawned from a thread
        // that has ended must still run.
        let child = std::thread::spawn(|| {
            let mut c = Command::new("sleep");
            c.arg("30").process_group(0);
            spawn_tied(c).unwrap()
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut child = child;
        assert!(child.try_wait().unwrap().is_none(), "the child was killed");
        let pid = child.id() as i32;
        assert!(start_ticks(pid).is_some());
        assert_eq!(members_since(pid, start_ticks(pid).unwrap()), vec![pid]);
        assert!(members_since(pid, start_ticks(pid).unwrap() + 1).is_empty());
        super::super::terminate::locally(pid, Signal::SIGTERM, Duration::from_secs(2), || {
            let _ = child.try_wait();
        });
        assert!(!group_alive(pid));
    }
}
