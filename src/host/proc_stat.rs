//! CPU accounting from `/proc`: per process group and machine-wide.
//!
//! Raw requests/second swings 20%+ on shared machines while requests per gateway CPU-second is
//! far steadier, so every run records how many CPU seconds each role used during the load
//! window. Each role runs in its own process group, so a role's CPU is the sum over the
//! processes of its group (nginx master and workers together). The same parsing serves every
//! host: local hosts read `/proc` directly, remote ones send the text of [`SNAPSHOT_SCRIPT`].

use std::collections::HashMap;

/// Linux reports process times in USER_HZ ticks, 100 per second on every mainstream platform.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// A shell script that prints `/proc/stat`, a separator, and every process's stat line.
pub const SNAPSHOT_SCRIPT: &str =
    "cat /proc/stat; echo '--- perflab procs ---'; cat /proc/[0-9]*/stat 2>/dev/null; true";

const SEPARATOR: &str = "--- perflab procs ---";

/// CPU times of one process, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcTimes {
    /// Process id.
    pub pid: u32,
    /// Process group id.
    pub pgrp: u32,
    /// utime + stime + cutime + cstime (own time plus reaped children's).
    pub ticks: u64,
    /// Resident set size, in pages (`/proc/PID/stat` field 24).
    pub rss_pages: u64,
}

/// A point-in-time view of a host's CPU counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Machine-wide busy and total CPU seconds.
    pub machine: super::MachineCpu,
    /// Per-process times, keyed by pid.
    pub procs: HashMap<u32, ProcTimes>,
}

impl Snapshot {
    /// Parses the output of [`SNAPSHOT_SCRIPT`].
    pub fn from_script_output(text: &str) -> Snapshot {
        let (stat, procs) = text.split_once(SEPARATOR).unwrap_or((text, ""));
        Snapshot::from_parts(stat, procs.lines())
    }

    /// Builds a snapshot from `/proc/stat` text and individual `/proc/PID/stat` lines.
    pub fn from_parts<'a>(proc_stat: &str, proc_lines: impl Iterator<Item = &'a str>) -> Snapshot {
        let machine = parse_machine(proc_stat).unwrap_or_default();
        let procs = proc_lines
            .filter_map(parse_process_line)
            .map(|p| (p.pid, p))
            .collect();
        Snapshot { machine, procs }
    }

    /// Resident memory of a process group, bytes (pages of 4 KiB, the page size of x86-64 and
    /// of the usual arm64 kernels); `None` when no process of the group is alive.
    pub fn group_rss_bytes(&self, pgrp: u32) -> Option<u64> {
        let mut found = false;
        let pages: u64 = self
            .procs
            .values()
            .filter(|p| p.pgrp == pgrp)
            .inspect(|_| found = true)
            .map(|p| p.rss_pages)
            .sum();
        found.then_some(pages * 4096)
    }

    /// CPU seconds used so far by every process of a process group.
    pub fn group_seconds(&self, pgrp: u32) -> f64 {
        let ticks: u64 = self
            .procs
            .values()
            .filter(|p| p.pgrp == pgrp)
            .map(|p| p.ticks)
            .sum();
        ticks as f64 / TICKS_PER_SECOND
    }
}

/// Parses the aggregate `cpu` line of `/proc/stat`.
pub fn parse_machine(proc_stat: &str) -> Option<super::MachineCpu> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let idle = get(3) + get(4);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Some(super::MachineCpu {
        busy_s: busy as f64 / TICKS_PER_SECOND,
        total_s: (busy + idle) as f64 / TICKS_PER_SECOND,
    })
}

/// Parses one `/proc/PID/stat` line. The command name may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
pub fn parse_process_line(line: &str) -> Option<ProcTimes> {
    let pid: u32 = line.split_whitespace().next()?.parse().ok()?;
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(0) ppid(1) pgrp(2) session(3) tty(4) tpgid(5) flags(6) minflt(7)
    // cminflt(8) majflt(9) cmajflt(10) utime(11) stime(12) cutime(13) cstime(14).
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<i64>().ok());
    let pgrp = num(2)? as u32;
    let ticks = [11, 12, 13, 14]
        .iter()
        .map(|&i| num(i).unwrap_or(0).max(0) as u64)
        .sum();
    // ... priority(15) nice(16) num_threads(17) itrealvalue(18) starttime(19) vsize(20) rss(21).
    let rss_pages = num(21).unwrap_or(0).max(0) as u64;
    Some(ProcTimes {
        pid,
        pgrp,
        ticks,
        rss_pages,
    })
}

/// Parses the output of the POSIX `times` builtin (two lines: the shell's, then its children's
/// user and system time, like `0m1.250000s 0m0.030000s` or `0m1.25s 0m0.03s`) and returns the
/// children's total seconds.
pub fn parse_times_children(text: &str) -> Option<f64> {
    let line = text.lines().filter(|l| !l.trim().is_empty()).nth(1)?;
    let mut total = 0.0;
    let mut n = 0;
    for word in line.split_whitespace() {
        let w = word.trim_end_matches('s');
        let (m, s) = w.split_once('m')?;
        total += m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?;
        n += 1;
    }
    (n == 2).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_process_line_with_spaces_in_its_name() {
        let line = "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 90 0 0 0 150 50 7 3 20 0 1 0 100 0 0";
        let p = parse_process_line(line).unwrap();
        assert_eq!((p.pid, p.pgrp, p.ticks), (4242, 4241, 210));
    }

    #[test]
    fn machine_busy_excludes_idle_and_iowait() {
        let m = parse_machine("cpu  100 10 50 1000 40 5 5 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert!((m.busy_s - 1.70).abs() < 1e-9);
        assert!((m.total_s - 12.10).abs() < 1e-9);
    }

    #[test]
    fn parses_times_from_dash_and_busybox() {
        let dash = "0m0.010000s 0m0.020000s\n0m1.500000s 0m0.250000s\n";
        assert!((parse_times_children(dash).unwrap() - 1.75).abs() < 1e-9);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done & wait; times")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(parse_times_children(&text).is_some(), "{text}");
    }

    #[test]
    fn a_live_snapshot_sees_this_process_group() {
        let text = std::process::Command::new("sh")
            .arg("-c")
            .arg(SNAPSHOT_SCRIPT)
            .output()
            .unwrap();
        let snap = Snapshot::from_script_output(&String::from_utf8_lossy(&text.stdout));
        assert!(snap.machine.total_s > 0.0);
        let me = std::process::id();
        assert!(snap.procs.contains_key(&me));
    }
}
