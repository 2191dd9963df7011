//! The cool-down gate: before a measured load, wait (bounded) until the measured machine is
//! quiet.

use super::*;

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

impl Session {
    /// The cool-down gate: waits (bounded) until the machine is quiet. Returns seconds waited.
    pub(super) fn cool_down(&self, host: &dyn Host) -> Result<f64> {
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
            if pct <= self.cooldown.max_busy_pct || start.elapsed() >= self.cooldown.max_wait {
                if pct > self.cooldown.max_busy_pct {
                    self.log(LogLevel::Warn, &format!("machine still {pct:.0}% busy after {:?} of cool-down; measuring anyway", self.cooldown.max_wait));
                }
                return Ok(start.elapsed().as_secs_f64());
            }
            crate::signals::check()?;
        }
    }
}
