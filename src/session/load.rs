//! The load verbs: warm-up, start the load on the load hosts (after the cool-down gate), and
//! wait for its result with the CPU accounting of its window ([`super::cpu`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::{self, Role};
use crate::host::Host;
use crate::host::proc_stat::Snapshot;
use crate::result::{CpuUsage, RunFlags};
use crate::role::gateway::RunningGateway;
use crate::role::load::wrk;
use crate::role::load::wrk::{LoadOptions, LoadOutcome, RunningLoad};
use crate::{Error, Result};

use super::machine::MachinePrep;
use super::{Session, cpu};

/// Where the load goes: the worker host, the target URI, the load generator's CPUs.
pub(super) type LoadTarget = (Arc<dyn Host>, String, Option<Vec<usize>>);

/// What `wait_result` gives back: the load's outcome and the CPU accounting of its window.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// wrk's output and parsed result.
    pub outcome: LoadOutcome,
    /// CPU seconds per role during the window.
    pub cpu: CpuUsage,
    /// Requests per gateway CPU-second.
    pub rps_per_gateway_cpu_s: Option<f64>,
    /// Trust flags.
    pub flags: RunFlags,
    /// Seconds the cool-down gate waited before the load.
    pub cooldown_waited_s: f64,
    /// How the measured machine was prepared (cool-down gate, CPU governor); `None` for loads
    /// that skip the gate (warm-ups, multiplexed bursts).
    pub machine_prep: Option<MachinePrep>,
    /// The profile, when a profiler was attached for this load.
    pub profile: Option<crate::role::profiler::Profile>,
    /// Resident memory of the loaded gateway's process group at the end of the load, bytes.
    pub gateway_rss_bytes: Option<u64>,
    /// What went wrong (a gateway that died, CPU figures left out), in words.
    pub notes: Vec<String>,
}

pub(super) struct LoadInProgress {
    /// The load on each load host (one unless the driver hands out several).
    pub(super) loads: Vec<RunningLoad>,
    /// The CPUs each load had.
    pub(super) loads_cpus: Vec<usize>,
    /// The gateway instance the load was sent to (`None`: the first one, or the upstream).
    pub(super) target: Option<String>,
    pub(super) before_gateway: Option<Snapshot>,
    /// The gateway shares the worker's kernel (and `/proc/stat`), if not its process table.
    pub(super) gateway_same_machine: bool,
    pub(super) before_worker: Snapshot,
    pub(super) started: Instant,
    pub(super) machine_prep: Option<MachinePrep>,
    pub(super) notes: Vec<String>,
    /// A reload replaced gateway processes during the load ([`Session::run_during`]).
    pub(super) reloaded: bool,
}

impl Session {
    /// Runs unmeasured load for `seconds` against the gateway (or upstream), returning wrk's raw
    /// output. Used after each gateway start.
    pub fn warm_up(&mut self, opts: &LoadOptions, seconds: f64) -> Result<String> {
        self.warm_up_instance(None, opts, seconds)
    }

    /// [`Session::warm_up`] against one gateway instance (`None`: the first).
    pub fn warm_up_instance(
        &mut self,
        instance: Option<&str>,
        opts: &LoadOptions,
        seconds: f64,
    ) -> Result<String> {
        let (host, url, cpus) = self.load_target(opts, instance)?;
        self.warmups += 1;
        let dir = host.lab_dir().join("load");
        let load = wrk::start_load(
            host,
            &dir,
            &format!("warmup-{}", self.warmups),
            opts,
            &url,
            seconds.max(1.0),
            cpus,
        )?;
        Ok(load.wait(Duration::from_secs(30))?.raw)
    }

    /// The gateway instance a load goes to: the named one, else the first running one.
    pub(super) fn target_gateway(&self, instance: Option<&str>) -> Option<&RunningGateway> {
        match instance {
            Some(name) => self.gateways.get(name),
            None => self.gateways.values().next(),
        }
    }

    pub(super) fn load_target(
        &mut self,
        opts: &LoadOptions,
        instance: Option<&str>,
    ) -> Result<LoadTarget> {
        if let Some(name) = instance
            && !self.gateways.contains_key(name)
        {
            return Err(Error::Usage(format!(
                "gateway instance \"{name}\" is not running"
            )));
        }
        let host = self.host(Role::Worker, "default")?;
        let default_uri = match self.target_gateway(instance) {
            Some(gw) if opts.port == crate::role::load::wrk::LoadPort::Admin => {
                gw.admin_uri.clone().ok_or_else(|| {
                    Error::Usage(format!(
                        "load.port = \"admin\": the {} gateway has no Admin API",
                        gw.kind
                    ))
                })?
            }
            Some(gw) => gw.proxy_uri.clone(),
            None => self
                .upstream
                .as_ref()
                .and_then(|u| u.uris.first().cloned())
                .ok_or_else(|| {
                    Error::Usage("nothing to load: start an upstream (and a gateway) first".into())
                })?,
        };
        let plan = self.cpu_plan(host.as_ref());
        Ok((host, opts.url(&default_uri), plan.others))
    }

    /// Starts measured load; only one load runs at a time. Waits first (bounded) for a quiet
    /// machine, and records CPU counters at the start of the window.
    pub fn start_load(&mut self, opts: &LoadOptions) -> Result<()> {
        self.start_load_with(opts, None, true, false)
    }

    /// [`Session::start_load`], with wrk also recording the load per 100 ms (for actions during
    /// load: [`Session::run_during`]; the series comes back in [`LoadOutcome::series`]).
    pub fn start_load_recording(&mut self, opts: &LoadOptions) -> Result<()> {
        self.start_load_with(opts, None, true, true)
    }

    /// Starts one short burst of measured load against gateway instance `instance`, without
    /// the cool-down gate (a multiplexed comparison's bursts follow each other closely on
    /// purpose: the block design, not a quiet machine, cancels the machine's noise). Its CPU
    /// and memory are charged to that instance by [`Session::wait_result`].
    pub fn start_burst(&mut self, instance: &str, opts: &LoadOptions) -> Result<()> {
        self.start_load_with(opts, Some(instance), false, false)
    }

    pub(super) fn start_load_with(
        &mut self,
        opts: &LoadOptions,
        instance: Option<&str>,
        gate: bool,
        series: bool,
    ) -> Result<()> {
        if self.load.is_some() {
            return Err(Error::Usage(
                "load is already started: call wait_result first".into(),
            ));
        }
        opts.validate()?;
        let (host, url, cpus) = self.load_target(opts, instance)?;
        let gw_host = self.target_gateway(instance).map(|g| g.host.clone());
        let machine_prep = if gate {
            Some(match &gw_host {
                Some(h) => self.prepare_machine(h.as_ref(), "gateway")?,
                None => self.prepare_machine(host.as_ref(), "worker")?,
            })
        } else {
            None
        };
        let before_worker = host.proc_snapshot()?;
        // The gateway's processes are counted from its own `/proc` when the worker cannot see
        // them (another machine, or a container with its own PID namespace); machine-wide
        // background is judged on the gateway's machine only when it is another kernel.
        let (before_gateway, gateway_same_machine) = match &gw_host {
            Some(h) if !self.same_process_table(h.as_ref(), host.as_ref()) => (
                Some(h.proc_snapshot()?),
                self.same_machine(h.as_ref(), host.as_ref()),
            ),
            _ => (None, true),
        };
        // Open-loop load runs on every load host at once, each with its share of the rate;
        // wrk runs on the first (its percentiles cannot be merged).
        let n = self.driver()?.load_hosts();
        let mut notes = Vec::new();
        let mut targets = vec![(host, cpus)];
        if n > 1 {
            if opts.kind == wrk::LoadKind::Open {
                for i in 1..n {
                    let h = self.host(Role::Worker, &driver::load_host_instance(i))?;
                    let c = self.cpu_plan(h.as_ref()).others;
                    targets.push((h, c));
                }
            } else {
                notes.push(format!(
                    "wrk ran on one load host of {n}: load_hosts applies to open-loop load"
                ));
            }
        }
        let count = targets.len() as u32;
        let mut loads = Vec::new();
        let mut loads_cpus = Vec::new();
        for (i, (h, c)) in targets.into_iter().enumerate() {
            loads_cpus.push(
                c.as_ref()
                    .map(|c| c.len())
                    .unwrap_or_else(|| self.cpus(h.as_ref())),
            );
            let share = crate::role::load::open::share(opts, i as u32, count);
            let share = if count > 1 { &share } else { opts };
            let dir = h.lab_dir().join("load");
            // On an error, the loads already started are stopped when `loads` is dropped.
            loads.push(wrk::start_load_recording(
                h,
                &dir,
                "run",
                share,
                &url,
                opts.duration,
                c,
                series,
            )?);
        }
        self.load = Some(LoadInProgress {
            loads,
            loads_cpus,
            target: instance.map(str::to_string),
            before_gateway,
            gateway_same_machine,
            before_worker,
            started: Instant::now(),
            machine_prep,
            notes,
            reloaded: false,
        });
        Ok(())
    }

    /// Waits up to the load's duration plus `timeout` for it to finish, and returns the result
    /// with the CPU accounting of its window.
    pub fn wait_result(&mut self, timeout: Duration) -> Result<Measurement> {
        let lp = self
            .load
            .take()
            .ok_or_else(|| Error::Usage("no load is running: call start_load first".into()))?;
        let worker = self.host(Role::Worker, "default")?;
        let outcome = wrk::wait_all(lp.loads, &lp.loads_cpus, timeout)?;
        let window_s = lp.started.elapsed().as_secs_f64();
        let after_worker = worker.proc_snapshot()?;
        let gw = self
            .target_gateway(lp.target.as_deref())
            .map(|g| (g.proc.pid(), g.host.clone()));
        let after_gateway = match (&gw, &lp.before_gateway) {
            (Some((_, h)), Some(_)) => Some(h.proc_snapshot()?),
            _ => None,
        };
        let cores = match (&gw, &after_gateway) {
            (Some((_, h)), Some(_)) => self.cpus(h.as_ref()),
            _ => self.cpus(worker.as_ref()),
        };
        let mut deaths = Vec::new();
        let instances: Vec<String> = self.gateways.keys().cloned().collect();
        for name in instances {
            let l = self.gateway_alive(&name)?;
            if !l.alive {
                let who = if self.gateways.len() > 1 {
                    format!("gateway instance {name}")
                } else {
                    "the gateway".to_string()
                };
                deaths.push(format!("{who} died during the run: {}", l.detail));
            }
        }
        let gateway_died = !deaths.is_empty();
        let acct = cpu::account(&cpu::CpuWindow {
            window_s,
            cores,
            worker: (&lp.before_worker, &after_worker),
            gateway: gw.as_ref().map(|(pgid, _)| cpu::GatewayGroup {
                pgid: *pgid,
                own_host: lp.before_gateway.as_ref().zip(after_gateway.as_ref()),
                same_machine: lp.gateway_same_machine,
            }),
            upstream_pgid: self.upstream.as_ref().map(|u| u.proc.pid()),
            load_s: outcome.cpu_s,
            load_cpus: lp.loads_cpus[0],
            open_loop_saturated: outcome
                .result
                .open_loop
                .as_ref()
                .filter(|o| !o.hosts.is_empty())
                .map(|o| o.hosts.iter().any(|h| h.load_saturated)),
            requests: outcome.result.requests,
            deaths,
            reloaded: lp.reloaded,
            noisy_background_pct: self.cooldown.noisy_background_pct,
        });
        let mut notes = lp.notes;
        notes.extend(acct.notes);
        let profile = match self.profiler.take() {
            Some(p) => Some(p.stop_and_collect()?),
            None => None,
        };
        self.last_profile = profile.clone();
        let flags = RunFlags {
            noisy: acct.noisy,
            errors: outcome.result.errors.total() > 0,
            load_saturated: acct.load_saturated,
            profiled: profile.is_some(),
            gateway_died,
            generator_limited: outcome
                .result
                .open_loop
                .as_ref()
                .is_some_and(|o| o.generator_limited),
        };
        Ok(Measurement {
            outcome,
            cpu: acct.cpu,
            rps_per_gateway_cpu_s: acct.rps_per_gateway_cpu_s,
            flags,
            cooldown_waited_s: lp
                .machine_prep
                .as_ref()
                .map_or(0.0, |p| p.cool_down.waited_s),
            machine_prep: lp.machine_prep,
            profile,
            gateway_rss_bytes: acct.gateway_rss_bytes,
            notes,
        })
    }
}
