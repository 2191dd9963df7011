//! Machine preparation before a measured load, on every driver: the cool-down gate and the CPU
//! frequency governor, and the record of both kept with the run (`machine-prep.json`).
//!
//! Why in the session: both are written against a [`Host`], so they belong to no driver. Kong's
//! framework prepared only its terraform kong machine; perflab once did the same inside the
//! terraform driver, so terraform runs passed two gates and only they recorded the governor.
//! Now every measured load passes one bounded gate on the measured machine (the gateway's host,
//! or the worker's in baseline runs) and records what the governor was. Where a setting cannot
//! be changed (not root, a container's read-only `/sys`, no cpufreq in a VM) the record says so
//! and the run goes on.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Result;
use crate::host::Host;

use super::{LogLevel, Session};

/// Bounds of the cool-down gate run before each measured load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CooldownOptions {
    /// Wait until the machine's busy share (outside the lab) is below this percentage.
    pub max_busy_pct: f64,
    /// Give up waiting after this long (the run is then likely flagged noisy).
    pub max_wait: Duration,
    /// A run whose background CPU exceeds this share of the machine is flagged noisy.
    pub noisy_background_pct: f64,
}

impl Default for CooldownOptions {
    fn default() -> Self {
        CooldownOptions {
            max_busy_pct: 15.0,
            max_wait: Duration::from_secs(10),
            noisy_background_pct: 10.0,
        }
    }
}

/// What the cool-down gate did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CoolDown {
    /// The measured host's name.
    pub host: String,
    /// Its CPUs.
    pub cores: usize,
    /// The busy share asked for, percent.
    pub max_busy_pct: f64,
    /// The busy share measured last (over 200 ms), percent.
    pub busy_pct: f64,
    /// Seconds waited.
    pub waited_s: f64,
    /// True when the machine was quiet enough within `max_wait`.
    pub reached: bool,
}

/// What [`set_governor_performance`] did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GovernorRecord {
    /// The host's name.
    pub host: String,
    /// `set`, `already`, `unavailable` (no cpufreq, e.g. most VMs), `not-permitted` (not root,
    /// a container's read-only `/sys`) or `unknown: <why>` (the host could not be asked).
    pub status: String,
    /// Distinct governors before.
    pub before: Vec<String>,
    /// Distinct governors after.
    pub after: Vec<String>,
}

/// The preparation of the measured machine before one load, kept with the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MachinePrep {
    /// The measured machine's role (`gateway`, or `worker` in baseline runs).
    pub machine: String,
    /// The cool-down gate.
    pub cool_down: CoolDown,
    /// The CPU frequency governor.
    pub governor: GovernorRecord,
}

/// Sets every CPU's cpufreq governor to `performance` where the host allows it (as Kong's
/// framework did on its kong machine), directly or through `sudo -n`. Never fails: what could
/// not be done is the record's status. Uses only `sh` and `cat` (lab images have no more).
pub fn set_governor_performance(host: &dyn Host) -> GovernorRecord {
    const SCRIPT: &str = r#"set -- /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor
[ -e "$1" ] || { echo unavailable; exit 0; }
for f in "$@"; do echo "before $(cat "$f")"; done
ok=1
for f in "$@"; do
  [ "$(cat "$f")" = performance ] && continue
  { echo performance > "$f"; } 2>/dev/null \
    || { command -v sudo >/dev/null 2>&1 && echo performance | sudo -n tee "$f" >/dev/null 2>&1; } \
    || ok=0
done
for f in "$@"; do echo "after $(cat "$f")"; done
[ $ok = 1 ] || echo not-permitted"#;
    let record = |status: String, text: &str| {
        let field = |p: &str| -> Vec<String> {
            let set: std::collections::BTreeSet<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix(p))
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect();
            set.into_iter().collect()
        };
        GovernorRecord {
            host: host.name().to_string(),
            status,
            before: field("before "),
            after: field("after "),
        }
    };
    let out = match host.run(
        &crate::host::Cmd::new("sh").arg("-c").arg(SCRIPT),
        Duration::from_secs(30),
    ) {
        Ok(o) => o,
        Err(e) => return record(format!("unknown: {e}"), ""),
    };
    let text = out.stdout_text();
    let r = record(String::new(), &text);
    let status = if text.lines().any(|l| l.trim() == "unavailable") {
        "unavailable"
    } else if text.lines().any(|l| l.trim() == "not-permitted") {
        "not-permitted"
    } else if r.before == ["performance"] {
        "already"
    } else {
        "set"
    };
    GovernorRecord {
        status: status.to_string(),
        ..r
    }
}

impl Session {
    /// Prepares the measured machine `host` for a load: the governor, then the cool-down gate.
    /// `machine` names its role in the record.
    pub(super) fn prepare_machine(&self, host: &dyn Host, machine: &str) -> Result<MachinePrep> {
        let governor = set_governor_performance(host);
        let cool_down = self.cool_down(host)?;
        Ok(MachinePrep {
            machine: machine.to_string(),
            cool_down,
            governor,
        })
    }

    /// The cool-down gate: waits (bounded by the session's [`CooldownOptions`]) until the
    /// machine's busy share over 200 ms is at most `max_busy_pct`.
    fn cool_down(&self, host: &dyn Host) -> Result<CoolDown> {
        let start = Instant::now();
        loop {
            let a = host.proc_snapshot()?;
            std::thread::sleep(Duration::from_millis(200));
            let b = host.proc_snapshot()?;
            let total = b.machine.total_s - a.machine.total_s;
            let busy = b.machine.busy_s - a.machine.busy_s;
            let pct = if total > 0.0 {
                100.0 * busy / total
            } else {
                0.0
            };
            let reached = pct <= self.cooldown.max_busy_pct;
            if reached || start.elapsed() >= self.cooldown.max_wait {
                if !reached {
                    self.log(LogLevel::Warn, &format!("machine still {pct:.0}% busy after {:?} of cool-down; measuring anyway", self.cooldown.max_wait));
                }
                return Ok(CoolDown {
                    host: host.name().to_string(),
                    cores: self.cpus(host),
                    max_busy_pct: self.cooldown.max_busy_pct,
                    busy_pct: pct,
                    waited_s: start.elapsed().as_secs_f64(),
                    reached,
                });
            }
            crate::signals::check()?;
        }
    }
}
