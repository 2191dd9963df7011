//! The session API: the verbs of Kong's performance testing framework as a Rust library.
//!
//! A [`Session`] holds one lab: a driver, the hosts it handed out, the upstream, the running
//! gateway instances and the load in progress. The suite runner and the CLI are clients of
//! this API, and so can be a user's own program:
//!
//! ```no_run
//! use perflab::session::Session;
//! use perflab::role::gateway::GatewayKind;
//! use perflab::role::load::wrk::LoadOptions;
//! # fn main() -> perflab::Result<()> {
//! let mut s = Session::new();
//! s.use_defaults()?;                       // PERF_TEST_DRIVER (default local), debug, 3 retries
//! s.setup()?;
//! let upstream = s.start_upstream("location / { return 200; }")?;
//! s.start_gateway(GatewayKind::Nginx, "current", &Default::default(), &Default::default(), "default")?;
//! s.start_load(&LoadOptions { duration: 5.0, connections: 50, threads: 2, ..Default::default() })?;
//! let m = s.wait_result(std::time::Duration::from_secs(60))?;
//! println!("{} requests/s ({upstream})", m.outcome.result.rps);
//! s.teardown(false)?;
//! # Ok(()) }
//! ```
//!
//! Dropping a session tears it down, so nothing it started outlives it.

mod actions;
mod cpu;
mod facts;
mod gateways;
mod kong;
mod load;
mod machine;
mod profile;
mod record;
mod upstreams;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::driver::{self, Driver, DriverOptions, GatewayImage, Role};
use crate::host::Host;
use crate::result::RunRecord;
use crate::role::gateway::RunningGateway;
use crate::role::load::wrk;
pub use crate::role::ports::{pick_ports, used_ports};
use crate::role::upstream::Upstream;
use crate::{Error, Result};

use facts::HostFacts;
pub use facts::{CpuPlan, cpu_count};
pub use gateways::GatewayLiveness;
use load::LoadInProgress;
pub use load::Measurement;
pub use machine::{
    CoolDown, CooldownOptions, GovernorRecord, MachinePrep, set_governor_performance,
};
pub use record::run_record;
pub use upstreams::MAX_PORT_BASE;

/// Log levels, as Kong's framework named them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything, including each command (default: the `tracing` subscriber filters).
    Debug,
    /// Progress.
    Info,
    /// Notable events.
    Notice,
    /// Warnings.
    Warn,
    /// Errors.
    Error,
    /// Critical only.
    Crit,
}

impl std::str::FromStr for LogLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warn" | "warning" => LogLevel::Warn,
            "error" | "err" => LogLevel::Error,
            "crit" => LogLevel::Crit,
            other => {
                return Err(Error::Usage(format!(
                    "unknown log level \"{other}\": expected debug, info, notice, warn, error or crit"
                )));
            }
        })
    }
}

/// One lab session. See the module docs for an example.
pub struct Session {
    driver: Option<Box<dyn Driver>>,
    log_level: LogLevel,
    retry_count: u32,
    charts: bool,
    /// The lab's id (names its files, labels its containers).
    pub lab_id: String,
    /// Pin roles to CPUs when the host has at least two.
    pub pin_cpus: bool,
    /// The cool-down gate's bounds.
    pub cooldown: CooldownOptions,
    /// Fixed first port for the upstream (the gateway gets `port_base + 100`); `None` picks free
    /// ports automatically.
    pub port_base: Option<u16>,
    upstream: Option<Upstream>,
    gateways: BTreeMap<String, RunningGateway>,
    load: Option<LoadInProgress>,
    warmups: u32,
    baseline_mode: bool,
    profiler: Option<crate::role::profiler::RunningSampler>,
    last_profile: Option<crate::role::profiler::Profile>,
    postgres: Option<crate::role::postgres::Postgres>,
    /// CPU counts and boot ids per host (`name@address`): asked for every run, and a round trip
    /// each on remote hosts.
    host_facts: std::sync::Mutex<BTreeMap<String, HostFacts>>,
    /// Version trees already copied to hosts (`name@address:path`).
    uploaded_trees: std::collections::BTreeSet<String>,
    /// The processes of each gateway instance's group once it was ready (for
    /// [`Session::gateway_alive`]); empty when the host's process table could not be read.
    gateway_pids: BTreeMap<String, std::collections::BTreeSet<u32>>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// A lab id: time and pid, unique on a machine.
/// Logs `msg` through `tracing` (the binary's subscriber prints it on stderr, `-v` for debug
/// and info) when `level` is at least the session's `threshold` (default: everything, the
/// subscriber filters).
fn log(threshold: LogLevel, level: LogLevel, msg: &str) {
    if level < threshold {
        return;
    }
    match level {
        LogLevel::Debug | LogLevel::Info => tracing::debug!("{msg}"),
        LogLevel::Notice => tracing::info!("{msg}"),
        LogLevel::Warn => tracing::warn!("{msg}"),
        LogLevel::Error | LogLevel::Crit => tracing::error!("{msg}"),
    }
}

/// Calls `f` until it succeeds, at most `retries` more times, waiting 200 ms, then twice as long
/// each time; a warning at `level` says what failed. Bad input, a missing program and an
/// interrupt are not retried.
fn retry<T>(
    retries: u32,
    level: LogLevel,
    what: &str,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e @ (Error::Usage(_) | Error::MissingTool { .. } | Error::Interrupted)) => {
                return Err(e);
            }
            Err(e) if attempt >= retries => return Err(e),
            Err(e) => {
                attempt += 1;
                log(
                    level,
                    LogLevel::Warn,
                    &format!("{what} failed: {e:#} (try {attempt} of {})", retries + 1),
                );
                std::thread::sleep(delay);
                delay *= 2;
                crate::signals::check()?;
            }
        }
    }
}

pub fn new_lab_id() -> String {
    format!(
        "{}-{}",
        crate::util::time::timestamp(crate::util::time::now_unix()),
        std::process::id()
    )
}

impl Session {
    /// A session with no driver yet, log level debug (the subscriber filters), 3 retries, charts on.
    pub fn new() -> Self {
        Session {
            driver: None,
            log_level: LogLevel::Debug,
            retry_count: 3,
            charts: true,
            lab_id: new_lab_id(),
            pin_cpus: true,
            cooldown: CooldownOptions::default(),
            port_base: None,
            upstream: None,
            gateways: BTreeMap::new(),
            load: None,
            warmups: 0,
            baseline_mode: false,
            profiler: None,
            last_profile: None,
            postgres: None,
            host_facts: std::sync::Mutex::new(BTreeMap::new()),
            uploaded_trees: std::collections::BTreeSet::new(),
            gateway_pids: BTreeMap::new(),
        }
    }

    /// Kong's `use_defaults`: log level debug, retry count 3, and the driver named by
    /// `PERF_TEST_DRIVER` (default `local`).
    pub fn use_defaults(&mut self) -> Result<()> {
        self.set_log_level("debug")?;
        self.set_retry_count(3);
        let kind = match std::env::var("PERF_TEST_DRIVER") {
            Ok(name) => name.parse()?,
            Err(_) => driver::DriverKind::Local,
        };
        self.use_driver(kind, &DriverOptions::new())
    }

    /// Selects the driver with its options (`"docker".parse()?` for a driver named by a string).
    pub fn use_driver(&mut self, kind: driver::DriverKind, options: &DriverOptions) -> Result<()> {
        if let Some(mut d) = self.driver.take() {
            d.teardown(false)?;
        }
        let lab_id = self.lab_id.clone();
        let d = self.retry("use_driver", || kind.create(options, &lab_id))?;
        self.driver = Some(d);
        Ok(())
    }

    /// Uses a driver made by the caller (e.g. a [`driver::docker::DockerDriver`] for a given
    /// engine address); its lab id should be this session's [`Session::lab_id`].
    pub fn use_driver_instance(&mut self, driver: Box<dyn Driver>) -> Result<()> {
        if let Some(mut d) = self.driver.take() {
            d.teardown(false)?;
        }
        self.driver = Some(driver);
        Ok(())
    }

    /// Sets the log level: debug, info, notice, warn, error or crit.
    pub fn set_log_level(&mut self, level: &str) -> Result<()> {
        self.log_level = level.parse()?;
        Ok(())
    }

    /// The current log level.
    pub fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// How often idempotent driver operations are retried (with exponential backoff). Operations
    /// that are not idempotent — starting a gateway, running load — are never retried.
    pub fn set_retry_count(&mut self, n: u32) {
        self.retry_count = n;
    }

    /// Turns chart rendering on or off for reports made from this session.
    pub fn enable_charts(&mut self, on: bool) {
        self.charts = on;
    }

    /// True when charts are on.
    pub fn charts_enabled(&self) -> bool {
        self.charts
    }

    fn log(&self, level: LogLevel, msg: &str) {
        log(self.log_level, level, msg);
    }

    fn retry<T>(&self, what: &str, f: impl FnMut() -> Result<T>) -> Result<T> {
        retry(self.retry_count, self.log_level, what, f)
    }

    fn driver(&mut self) -> Result<&mut Box<dyn Driver>> {
        self.driver
            .as_mut()
            .ok_or_else(|| Error::Usage("no driver selected: call use_driver first".into()))
    }

    /// The host for a role (retried: asking for a host is idempotent).
    pub fn host(&mut self, role: Role, instance: &str) -> Result<Arc<dyn Host>> {
        let (retries, level) = (self.retry_count, self.log_level);
        let d = self.driver()?;
        retry(
            retries,
            level,
            &format!("getting the {role:?} host"),
            || d.host(role, instance),
        )
    }

    /// The host for `role`/`instance` running `image` (docker driver; other drivers refuse).
    pub fn host_from_image(
        &mut self,
        role: Role,
        instance: &str,
        image: &GatewayImage,
    ) -> Result<Arc<dyn Host>> {
        self.driver()?.host_from_image(role, instance, image)
    }

    /// Driver facts for results.
    pub fn driver_info(&self) -> serde_json::Value {
        self.driver
            .as_ref()
            .map(|d| d.describe())
            .unwrap_or(serde_json::Value::Null)
    }

    /// The driver's name.
    pub fn driver_name(&self) -> &str {
        self.driver.as_ref().map(|d| d.name()).unwrap_or("none")
    }

    /// Prepares the lab's hosts and checks that the tools every run needs are there.
    pub fn setup(&mut self) -> Result<()> {
        let worker = self.host(Role::Worker, "default")?;
        wrk::find_wrk(worker.as_ref())?;
        if worker.which("nginx").is_none() {
            return Err(Error::MissingTool {
                program: "nginx".into(),
                where_: format!(" on host {}", worker.name()),
                hint: "install it (Debian/Ubuntu: apt-get install nginx-light)".into(),
            });
        }
        self.host(Role::Gateway, "default")?;
        Ok(())
    }

    /// Kong's `combine_results`: n-aware summaries of the given runs.
    pub fn combine_results(&self, runs: &[&RunRecord]) -> Option<crate::stats::CombinedRuns> {
        crate::stats::combine(runs)
    }

    /// Stops everything the lab started; `full` also removes the hosts the driver created.
    pub fn teardown(&mut self, full: bool) -> Result<()> {
        let mut first_err: Option<Error> = None;
        if let Some(lp) = self.load.take() {
            drop(lp);
        }
        if let Some(p) = self.profiler.take() {
            let _ = p.stop_and_collect();
        }
        if let Err(e) = self.stop_gateway() {
            first_err.get_or_insert(e);
        }
        if let Some(mut u) = self.upstream.take()
            && let Err(e) = u.stop()
        {
            first_err.get_or_insert(e);
        }
        if let Some(mut pg) = self.postgres.take()
            && let Err(e) = pg.stop()
        {
            first_err.get_or_insert(e);
        }
        if let Some(mut d) = self.driver.take()
            && let Err(e) = d.teardown(full)
        {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.teardown(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_parse_by_name() {
        assert_eq!("warn".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        assert!("loud".parse::<LogLevel>().is_err());
    }
}
