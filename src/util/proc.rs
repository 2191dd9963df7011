//! Reading `/proc/PID/stat`: which process a pid names now, and its group.

/// The start time of process `pid` in clock ticks since boot (`/proc/PID/stat` field 22), or
/// `None` when it does not exist. With the pid it names a process uniquely.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 19)
}

/// Field `i` after the command name of a `/proc/PID/stat` line (0: state, 2: pgrp, 19: start).
pub fn stat_field(line: &str, i: usize) -> Option<u64> {
    let (_, rest) = line.rsplit_once(')')?;
    rest.split_whitespace().nth(i)?.parse().ok()
}
