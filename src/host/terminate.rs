//! The one way the lab stops a process group, on every host: a signal (TERM unless the caller
//! says otherwise), up to a grace period for the group to go, then KILL to whatever is left.
//!
//! Why one routine: a stop that differs between hosts is a benchmark that differs between
//! drivers (a gateway that gets KILL on one driver and time to close its connections on
//! another), and a bug fixed in one copy stays in the others. nextest stops a test the same
//! way, with one TERM → grace → KILL routine for every platform path.
//!
//! Why a shell function ([`STOP_GROUPS`]): on an SSH or container host a stop must cost one
//! round trip, so the waiting has to happen where the processes are, in a script. The local
//! host runs the very same script with `sh` ([`locally`]) instead of a second copy written in
//! Rust; perflab only reaps its own children meanwhile (a group whose leader is perflab's
//! child stays alive as a zombie until perflab reaps it). The script is used by a program's
//! stop on every host, by a host's stop of everything it started, by `perflab teardown` (local
//! groups from a journal, remote ones from pid files), by the remote shell loop when its
//! connection drops, and, with KILL and no grace, when a handle is dropped without a stop (see
//! [`super::Proc`]).

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Shell functions that stop process groups where they run:
/// - `stop_groups SIGNAL GRACE_MS PGID…`: SIGNAL (a name: `TERM`, `INT`, `KILL`…) to each group,
///   up to GRACE_MS milliseconds for all of them to go (checked every 10 ms), then KILL to what
///   is left, and up to one more second for that to take effect; sets `stopped` to the number
///   of groups signalled;
/// - `recorded_groups PIDS_DIR`: the pids recorded by the spawn wrapper of
///   [`super::remote_process`] in a `.perflab-pids` dir whose program has not ended (no `.exit`
///   file next to it).
pub const STOP_GROUPS: &str = r#"stop_groups() {
  _sig=$1; _ms=$2; shift 2; stopped=0; _live=""
  for _p in "$@"; do
    if kill -"$_sig" "-$_p" 2>/dev/null; then stopped=$((stopped+1)); _live="$_live $_p"; fi
  done
  _gone() { _s=""; for _p in $_live; do kill -0 "-$_p" 2>/dev/null && _s="$_s $_p"; done; _live=$_s; }
  _w=0
  while [ -n "$_live" ] && [ "$_w" -lt "$_ms" ]; do
    _gone; [ -z "$_live" ] && break; sleep 0.01; _w=$((_w+10))
  done
  for _p in $_live; do kill -KILL "-$_p" 2>/dev/null; done
  _w=0
  while [ -n "$_live" ] && [ "$_w" -lt 1000 ]; do
    _gone; [ -z "$_live" ] && break; sleep 0.01; _w=$((_w+10))
  done
  return 0
}
recorded_groups() {
  for _f in "$1"/*.pid; do
    [ -e "$_f" ] || continue
    [ -e "${_f%.pid}.exit" ] && continue
    _p=$(cat "$_f"); case $_p in ''|*[!0-9]*) continue;; esac
    echo "$_p"
  done
}
"#;

/// A script that stops `groups` (pids, or a shell expression that expands to them, such as
/// `$(recorded_groups DIR)`) with `signal`, `grace` and KILL, then runs `then`.
pub fn script(signal: Signal, grace: Duration, groups: &str, then: &str) -> String {
    format!(
        "{STOP_GROUPS}stop_groups {} {} {groups}\n{then}",
        signal_name(signal),
        grace.as_millis()
    )
}

/// The name `kill -NAME` takes: `TERM` for SIGTERM.
pub fn signal_name(signal: Signal) -> &'static str {
    let s = signal.as_str();
    s.strip_prefix("SIG").unwrap_or(s)
}

/// Stops process group `pgid` on this machine with [`STOP_GROUPS`], calling `reap` while the
/// script waits so that a leader which is perflab's own child can be reaped. The script runs
/// in a process group of its own, so a Ctrl-C at the terminal does not cut a stop short. If
/// `sh` cannot be started, the group gets KILL at once.
pub fn locally(pgid: i32, signal: Signal, grace: Duration, mut reap: impl FnMut()) {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(script(signal, grace, &pgid.to_string(), ""))
        .stdin(std::process::Stdio::null())
        .process_group(0);
    match super::process_group::spawn_tied(c) {
        Ok(mut stopper) => loop {
            reap();
            if !matches!(stopper.try_wait(), Ok(None)) {
                break;
            }
            // Often: the script sees the group gone only once its leader is reaped.
            std::thread::sleep(Duration::from_millis(2));
        },
        Err(e) => {
            tracing::warn!(pgid, error = %e, "cannot start sh to stop a process group; killing it");
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
    reap();
    super::process_group::unregister(pgid);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::Instant;

    /// True while a process of group `pgid` lives. Zombies do not count: an orphan is reaped
    /// by PID 1, which in some sandboxes never does it.
    fn group_alive(pgid: i32) -> bool {
        !crate::host::process_group::members_since(pgid, 0).is_empty()
    }

    /// A group whose leader ignores `ignored` and writes `ready` once its trap is set.
    fn group_ignoring(ignored: &str, dir: &std::path::Path) -> std::process::Child {
        let ready = dir.join(format!("ready-{ignored}"));
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "trap '' {ignored}; : > \"$0\"; while :; do sleep 0.05; done"
            ))
            .arg(&ready)
            .process_group(0);
        let child = c.spawn().unwrap();
        let start = Instant::now();
        while !ready.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the group did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    #[test]
    fn a_group_that_ignores_the_signal_gets_kill_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = group_ignoring("TERM", dir.path());
        let pgid = child.id() as i32;
        let start = Instant::now();
        locally(pgid, Signal::SIGTERM, Duration::from_millis(300), || {
            let _ = child.try_wait();
        });
        assert!(!group_alive(pgid), "the group outlived the stop");
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "KILL came before the grace period ended"
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }

    #[test]
    fn the_given_signal_is_the_one_sent() {
        // The leader ignores TERM but not INT: INT must end it without KILL.
        let dir = tempfile::tempdir().unwrap();
        let mut child = group_ignoring("TERM", dir.path());
        let pgid = child.id() as i32;
        locally(pgid, Signal::SIGINT, Duration::from_secs(20), || {
            let _ = child.try_wait();
        });
        assert!(!group_alive(pgid));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(2));
    }

    #[test]
    fn signal_names_are_what_kill_takes() {
        assert_eq!(signal_name(Signal::SIGTERM), "TERM");
        assert_eq!(signal_name(Signal::SIGKILL), "KILL");
        assert_eq!(signal_name(Signal::SIGINT), "INT");
    }
}
