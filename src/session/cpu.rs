//! CPU accounting of a load window: from `/proc` snapshots taken before and after the load to
//! CPU seconds per role, the machine's background share, and the trust flags that follow.
//!
//! Why a pure function: the accounting decides which runs are flagged noisy or load-saturated
//! and whether a gateway CPU figure is trusted at all, so it must be checkable without a lab.
//! The session takes the snapshots and asks the hosts; [`account`] only does arithmetic on what
//! they returned, and the tests below feed it simulated snapshots with known answers.

use crate::host::proc_stat::Snapshot;
use crate::result::CpuUsage;

/// The gateway's process group in a load window.
#[derive(Debug, Clone, Copy)]
pub struct GatewayGroup<'a> {
    /// Its process group id.
    pub pgid: u32,
    /// Snapshots (before, after) of the gateway's own host, when the worker cannot see its
    /// processes (another machine, or a container with its own PID namespace); `None`: the
    /// worker's snapshots hold it.
    pub own_host: Option<(&'a Snapshot, &'a Snapshot)>,
    /// With `own_host`: whether that host shares the worker's kernel (and `/proc/stat`). On
    /// another kernel the machine-wide background is judged on the gateway's machine.
    pub same_machine: bool,
}

/// Everything [`account`] needs about one load window.
#[derive(Debug, Clone)]
pub struct CpuWindow<'a> {
    /// Length of the window, seconds.
    pub window_s: f64,
    /// CPUs of the measured machine.
    pub cores: usize,
    /// The worker's snapshots (before, after): upstream, load generator and, usually, gateway.
    pub worker: (&'a Snapshot, &'a Snapshot),
    /// The measured gateway (`None` in baseline runs).
    pub gateway: Option<GatewayGroup<'a>>,
    /// The upstream's process group (`None` when none runs).
    pub upstream_pgid: Option<u32>,
    /// CPU seconds the load generator reported for itself.
    pub load_s: f64,
    /// CPUs the (first) load generator had.
    pub load_cpus: usize,
    /// Open-loop load: whether any load host was saturated (`None` for wrk, judged here from
    /// `load_s`).
    pub open_loop_saturated: Option<bool>,
    /// Requests completed in the window.
    pub requests: u64,
    /// Gateway instances that died during the window, one note each.
    pub deaths: Vec<String>,
    /// A reload replaced gateway processes during the window.
    pub reloaded: bool,
    /// Background share of the machine above which the run is noisy, percent.
    pub noisy_background_pct: f64,
}

/// What [`account`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuAccount {
    /// CPU seconds per role and background.
    pub cpu: CpuUsage,
    /// Requests per gateway CPU-second (`None` without a trusted gateway figure).
    pub rps_per_gateway_cpu_s: Option<f64>,
    /// Resident memory of the gateway's group at the end, bytes.
    pub gateway_rss_bytes: Option<u64>,
    /// Background CPU above the noisy threshold.
    pub noisy: bool,
    /// The load generator used (nearly) all of its CPUs, so it may have limited the rate.
    pub load_saturated: bool,
    /// What was left out and why, in words.
    pub notes: Vec<String>,
}

/// The CPU accounting of one load window (see the module docs).
pub fn account(w: &CpuWindow) -> CpuAccount {
    let (before_worker, after_worker) = w.worker;
    let mut notes = Vec::new();
    let mut gateway_rss_bytes = None;
    let mut gw_machine = None;
    let mut gateway_s = match &w.gateway {
        Some(g) => {
            let (before, after) = g.own_host.unwrap_or(w.worker);
            gateway_rss_bytes = after.group_rss_bytes(g.pgid);
            if g.own_host.is_some() && !g.same_machine {
                gw_machine = Some((before.machine, after.machine));
            }
            non_negative(
                after.group_seconds(g.pgid) - before.group_seconds(g.pgid),
                "gateway",
                &mut notes,
            )
        }
        None => None,
    };
    let upstream_s = w
        .upstream_pgid
        .map(|p| after_worker.group_seconds(p) - before_worker.group_seconds(p))
        .and_then(|s| non_negative(s, "upstream", &mut notes))
        .unwrap_or(0.0);
    // A gateway that died during the window is a finding: its processes' CPU seconds went with
    // them, so its CPU figure is unknown rather than small.
    for death in &w.deaths {
        notes.push(death.clone());
        if gateway_s.take().is_some() {
            notes.push(
                "cpu.gateway_s left out: the CPU seconds of processes that died are not known"
                    .into(),
            );
        }
    }
    if w.reloaded && gateway_s.take().is_some() {
        notes.push(
            "cpu.gateway_s left out: a reload replaced gateway processes during the load, and \
             the CPU seconds of the ones that exited are not known"
                .into(),
        );
    }
    // Background CPU on the measured machine: what was busy besides the lab's roles.
    let (busy, total, lab) = match gw_machine {
        Some((b, a)) => (
            a.busy_s - b.busy_s,
            a.total_s - b.total_s,
            gateway_s.unwrap_or(0.0),
        ),
        None => (
            after_worker.machine.busy_s - before_worker.machine.busy_s,
            after_worker.machine.total_s - before_worker.machine.total_s,
            gateway_s.unwrap_or(0.0) + upstream_s + w.load_s,
        ),
    };
    let background_s = (busy - lab).max(0.0);
    let background_pct = if total > 0.0 {
        100.0 * background_s / total
    } else {
        0.0
    };
    let load_saturated = w
        .open_loop_saturated
        .unwrap_or_else(|| w.load_s / w.window_s.max(1e-9) >= 0.95 * w.load_cpus as f64);
    CpuAccount {
        cpu: CpuUsage {
            window_s: w.window_s,
            cores: w.cores,
            gateway_s,
            upstream_s,
            load_s: w.load_s,
            background_s,
            background_pct,
        },
        rps_per_gateway_cpu_s: gateway_s
            .filter(|s| *s > 0.0)
            .map(|s| w.requests as f64 / s),
        gateway_rss_bytes,
        noisy: background_pct > w.noisy_background_pct,
        load_saturated,
        notes,
    }
}

/// A CPU-seconds difference, or `None` with a note when it is negative (a process of the group
/// was gone at the end of the window, taking its counted seconds with it). Negative CPU seconds
/// are never stored.
fn non_negative(s: f64, role: &str, notes: &mut Vec<String>) -> Option<f64> {
    if s >= 0.0 && s.is_finite() {
        Some(s)
    } else {
        notes.push(format!(
            "cpu.{role}_s left out: its process group lost CPU seconds during the run ({s:.2} s), \
             so a process of it exited"
        ));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::MachineCpu;
    use crate::host::proc_stat::ProcTimes;

    const GATEWAY: u32 = 100;
    const UPSTREAM: u32 = 200;

    /// A snapshot of a machine that spent `busy_s` of `total_s` CPU seconds, with process
    /// groups given as (pgid, CPU seconds): one process per group, rss 10 pages.
    fn snapshot(busy_s: f64, total_s: f64, groups: &[(u32, f64)]) -> Snapshot {
        Snapshot {
            machine: MachineCpu { busy_s, total_s },
            procs: groups
                .iter()
                .map(|&(pgid, s)| {
                    let p = ProcTimes {
                        pid: pgid,
                        pgrp: pgid,
                        ticks: (s * 100.0).round() as u64,
                        rss_pages: 10,
                    };
                    (pgid, p)
                })
                .collect(),
        }
    }

    fn window<'a>(before: &'a Snapshot, after: &'a Snapshot) -> CpuWindow<'a> {
        CpuWindow {
            window_s: 10.0,
            cores: 4,
            worker: (before, after),
            gateway: Some(GatewayGroup {
                pgid: GATEWAY,
                own_host: None,
                same_machine: true,
            }),
            upstream_pgid: Some(UPSTREAM),
            load_s: 5.0,
            load_cpus: 2,
            open_loop_saturated: None,
            requests: 100_000,
            deaths: Vec::new(),
            reloaded: false,
            noisy_background_pct: 10.0,
        }
    }

    #[test]
    fn roles_and_background_on_one_machine() {
        // 40 CPU-seconds in the window (4 cores × 10 s), 22 busy: gateway 10, upstream 3,
        // load 5, so 4 s of background = 10% of the machine, not above the 10% threshold.
        let before = snapshot(100.0, 1000.0, &[(GATEWAY, 50.0), (UPSTREAM, 7.0)]);
        let after = snapshot(122.0, 1040.0, &[(GATEWAY, 60.0), (UPSTREAM, 10.0)]);
        let a = account(&window(&before, &after));
        assert_eq!(a.cpu.gateway_s, Some(10.0));
        assert_eq!(a.cpu.upstream_s, 3.0);
        assert!((a.cpu.background_s - 4.0).abs() < 1e-9, "{a:?}");
        assert!((a.cpu.background_pct - 10.0).abs() < 1e-9, "{a:?}");
        assert!(!a.noisy);
        assert_eq!(a.rps_per_gateway_cpu_s, Some(10_000.0));
        assert_eq!(a.gateway_rss_bytes, Some(10 * 4096));
        // 5 CPU-seconds over 10 s on 2 CPUs is 25% of the generator's CPUs.
        assert!(!a.load_saturated);
        assert!(a.notes.is_empty());
        // One more busy second makes it noisy.
        let busier = snapshot(123.0, 1040.0, &[(GATEWAY, 60.0), (UPSTREAM, 10.0)]);
        assert!(account(&window(&before, &busier)).noisy);
    }

    #[test]
    fn a_gateway_on_another_kernel_is_judged_on_its_own_machine() {
        let wb = snapshot(0.0, 0.0, &[(UPSTREAM, 0.0)]);
        let wa = snapshot(30.0, 40.0, &[(UPSTREAM, 2.0)]);
        let gb = snapshot(10.0, 100.0, &[(GATEWAY, 1.0)]);
        let ga = snapshot(20.0, 120.0, &[(GATEWAY, 9.0)]);
        let mut w = window(&wb, &wa);
        w.gateway = Some(GatewayGroup {
            pgid: GATEWAY,
            own_host: Some((&gb, &ga)),
            same_machine: false,
        });
        let a = account(&w);
        assert_eq!(a.cpu.gateway_s, Some(8.0));
        // Gateway machine: 10 busy of 20, 8 of them the gateway's: 2 s = 10%.
        assert!((a.cpu.background_s - 2.0).abs() < 1e-9, "{a:?}");
        assert!((a.cpu.background_pct - 10.0).abs() < 1e-9, "{a:?}");
        // In another PID namespace of the same kernel, background is the worker's machine:
        // 30 busy - (8 + 2 + 5) = 15 of 40.
        w.gateway = Some(GatewayGroup {
            pgid: GATEWAY,
            own_host: Some((&gb, &ga)),
            same_machine: true,
        });
        let a = account(&w);
        assert!((a.cpu.background_s - 15.0).abs() < 1e-9, "{a:?}");
        assert!(a.noisy);
    }

    #[test]
    fn lost_seconds_deaths_and_reloads_leave_the_gateway_figure_out() {
        // A worker process exited: the group's seconds went down.
        let before = snapshot(0.0, 40.0, &[(GATEWAY, 50.0), (UPSTREAM, 7.0)]);
        let after = snapshot(20.0, 80.0, &[(GATEWAY, 45.0), (UPSTREAM, 10.0)]);
        let a = account(&window(&before, &after));
        assert_eq!(a.cpu.gateway_s, None);
        assert_eq!(a.rps_per_gateway_cpu_s, None);
        assert!(a.notes[0].starts_with("cpu.gateway_s left out: its process group lost"));

        let after = snapshot(20.0, 80.0, &[(GATEWAY, 60.0), (UPSTREAM, 10.0)]);
        let mut w = window(&before, &after);
        w.deaths = vec!["a died".into(), "b died".into()];
        let a = account(&w);
        assert_eq!(a.cpu.gateway_s, None);
        assert_eq!(
            a.notes,
            [
                "a died",
                "cpu.gateway_s left out: the CPU seconds of processes that died are not known",
                "b died"
            ]
        );

        let mut w = window(&before, &after);
        w.reloaded = true;
        let a = account(&w);
        assert_eq!(a.cpu.gateway_s, None);
        assert!(a.notes[0].contains("a reload replaced gateway processes"));
    }

    #[test]
    fn a_generator_near_its_cpus_is_saturated_unless_open_loop_says_otherwise() {
        let before = snapshot(0.0, 40.0, &[(GATEWAY, 0.0)]);
        let after = snapshot(39.0, 80.0, &[(GATEWAY, 10.0)]);
        let mut w = window(&before, &after);
        w.upstream_pgid = None;
        w.load_s = 19.0; // 1.9 of 2 CPUs over 10 s: 95%
        assert!(account(&w).load_saturated);
        w.open_loop_saturated = Some(false);
        assert!(!account(&w).load_saturated);
        w.gateway = None;
        let a = account(&w);
        assert_eq!(a.cpu.gateway_s, None);
        assert_eq!(a.gateway_rss_bytes, None);
        assert!(a.notes.is_empty(), "a baseline run leaves nothing out");
    }
}
