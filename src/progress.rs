//! Progress for long runs: a bar with case, version, repeat and time left on a terminal, plain
//! log lines otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::time::Instant;

use crate::result::RunRecord;
use crate::suite::{Case, PlannedRun};
use crate::version::Version;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bar when stderr is a terminal, else lines.
    Auto,
    /// Always lines.
    Lines,
    /// Nothing.
    Quiet,
}

/// Progress of one execution.
pub struct Progress {
    mode: Mode,
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    started: Instant,
    expected_s: f64,
    done: std::cell::Cell<usize>,
}

impl Progress {
    /// Progress over a plan.
    pub fn new(mode: Mode, plan: &[PlannedRun], cases: &[Case], _versions: &[Version]) -> Progress {
        let expected_s: f64 = plan
            .iter()
            .map(|p| cases[p.case].load.duration + cases[p.case].load.warmup + 0.5)
            .sum();
        let bar = (mode == Mode::Auto && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(plan.len() as u64);
            // The time left is the plan's expected load time minus the time spent, so it counts
            // down during a run too (indicatif's own ETA only moves when a run finishes).
            let left = move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(
                    w,
                    "{}",
                    time_left(expected_s, state.elapsed().as_secs_f64())
                );
            };
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bar:30} {pos}/{len} runs  {msg}  {elapsed} elapsed, {left}",
                )
                .map(|s| s.with_key("left", left))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            // Redraw while a run is under way: the spinner, elapsed and time left move.
            b.enable_steady_tick(std::time::Duration::from_millis(250));
            b
        });
        let p = Progress {
            mode,
            bar,
            total: plan.len(),
            started: Instant::now(),
            expected_s,
            done: std::cell::Cell::new(0),
        };
        if p.mode != Mode::Quiet && p.bar.is_none() {
            eprintln!(
                "perflab: {} runs planned, about {:.0} s of load",
                p.total, p.expected_s
            );
        }
        p
    }

    /// A run is starting.
    pub fn starting(&self, run: &PlannedRun, case: &Case, version: &Version) {
        let msg = format!(
            "{} · {} · repeat {}/{}",
            case.id, version.label, run.repeat, case.repeats
        );
        match (&self.bar, self.mode) {
            (Some(b), _) => b.set_message(msg),
            (None, Mode::Quiet) => {}
            (None, _) => eprintln!("perflab: [{}/{}] {msg}", self.done.get() + 1, self.total),
        }
    }

    /// A run finished.
    pub fn finished(&self, rec: &RunRecord) {
        self.done.set(self.done.get() + 1);
        match (&self.bar, self.mode) {
            (Some(b), _) => b.inc(1),
            (None, Mode::Quiet) => {}
            (None, _) => {
                let flags = rec.flags.words();
                eprintln!(
                    "perflab:   {:.0} req/s, p99 {} ms, {} req per gateway CPU-s{}",
                    rec.load.rps,
                    rec.load
                        .latency_ms
                        .p99
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_else(|| "-".into()),
                    rec.rps_per_gateway_cpu_s
                        .map(|v| format!("{v:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    if flags.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", flags.join(", "))
                    }
                );
                for line in rec.during.iter().flat_map(crate::during::progress_lines) {
                    eprintln!("perflab:     {line}");
                }
            }
        }
    }

    /// All runs finished.
    pub fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        } else if self.mode != Mode::Quiet {
            eprintln!(
                "perflab: {} runs in {:.1} s",
                self.done.get(),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// "about N s left" from the plan's expected seconds and the seconds spent; "finishing" once the
/// estimate has run out (starts and cool-downs are not in it).
fn time_left(expected_s: f64, elapsed_s: f64) -> String {
    let left = expected_s - elapsed_s;
    if left < 1.0 {
        "finishing".into()
    } else if left < 120.0 {
        format!("about {left:.0} s left")
    } else {
        format!("about {:.0} min left", left / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_counts_down_and_never_goes_negative() {
        assert_eq!(time_left(100.0, 10.0), "about 90 s left");
        assert_eq!(time_left(100.0, 10.5), "about 90 s left");
        assert_eq!(time_left(100.0, 60.0), "about 40 s left");
        assert_eq!(time_left(600.0, 0.0), "about 10 min left");
        assert_eq!(time_left(100.0, 150.0), "finishing");
    }
}
