//! The session API: the verbs of Kong's performance testing framework as a Rust library.
//!
//! A [`Session`] holds one lab: a driver, the hosts it handed out, the upstream, the running
//! gateway instances and the load in progress. The suite runner and the CLI are clients of
//! this API, and so can be a user's own program:
//!
//! ```no_run
//! use perflab::session::Session;
//! use perflab::role::load::wrk::LoadOptions;
//! # fn main() -> perflab::Result<()> {
//! let mut s = Session::new();
//! s.use_defaults()?;                       // PERF_TEST_DRIVER (default local), debug, 3 retries
//! s.setup()?;
//! let upstream = s.start_upstream("location / { return 200; }")?;
//! s.start_gateway("nginx", "current", &Default::default(), &Default::default(), "default")?;
//! s.start_load(&LoadOptions { duration: 5.0, connections: 50, threads: 2, ..Default::default() })?;
//! let m = s.wait_result(std::time::Duration::from_secs(60))?;
//! println!("{} requests/s ({upstream})", m.outcome.result.rps);
//! s.teardown(false)?;
//! # Ok(()) }
//! ```
//!
//! Dropping a session tears it down, so nothing it started outlives it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::{self, Driver, DriverOptions, GatewayImage, Role};
use crate::during::{self, ActionKind, ActionRecord, DuringAction, Listener};
use crate::entities::Entities;
use crate::host::{Host, HttpCall, proc_stat::Snapshot};
use crate::result::{CpuUsage, RunFlags, RunRecord};
use crate::role::gateway::{self, GatewayContext, RunningGateway};
use crate::role::load::wrk::{self, LoadOptions, LoadOutcome, RunningLoad};
use crate::role::upstream::{self, Upstream, UpstreamOptions};
use crate::{Error, Result};

/// Where the load goes: the worker host, the target URI, the load generator's CPUs.
type LoadTarget = (Arc<dyn Host>, String, Option<Vec<usize>>);

/// Log levels, as Kong's framework named them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything, including each command.
    Debug,
    /// Progress.
    Info,
    /// Notable events (default).
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

/// How the lab pins roles to CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuPlan {
    /// CPUs of the server being measured (the gateway; the upstream in baseline cases).
    pub measured: Option<Vec<usize>>,
    /// CPUs of everything else (upstream, load generator).
    pub others: Option<Vec<usize>>,
}

impl CpuPlan {
    /// The measured server gets the last CPU, the rest share the others; no pinning below 2 CPUs.
    pub fn for_cpus(n: usize) -> CpuPlan {
        if n < 2 {
            return CpuPlan {
                measured: None,
                others: None,
            };
        }
        CpuPlan {
            measured: Some(vec![n - 1]),
            others: Some((0..n - 1).collect()),
        }
    }
}

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
    /// The profile, when a profiler was attached for this load.
    pub profile: Option<crate::role::profiler::Profile>,
    /// Resident memory of the loaded gateway's process group at the end of the load, bytes.
    pub gateway_rss_bytes: Option<u64>,
    /// What went wrong (a gateway that died, CPU figures left out), in words.
    pub notes: Vec<String>,
}

/// What [`Session::gateway_alive`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLiveness {
    /// The main process runs and every process of the group seen at start still exists.
    pub alive: bool,
    /// What died, in words (empty when alive).
    pub detail: String,
}

struct LoadInProgress {
    /// The load on each load host (one unless the driver hands out several).
    loads: Vec<RunningLoad>,
    /// The CPUs each load had.
    loads_cpus: Vec<usize>,
    /// The gateway instance the load was sent to (`None`: the first one, or the upstream).
    target: Option<String>,
    before_gateway: Option<Snapshot>,
    /// The gateway shares the worker's kernel (and `/proc/stat`), if not its process table.
    gateway_same_machine: bool,
    before_worker: Snapshot,
    started: Instant,
    cooldown_waited_s: f64,
    notes: Vec<String>,
    /// A reload replaced gateway processes during the load ([`Session::run_during`]).
    reloaded: bool,
}

/// A host's CPU count and boot id (`None` when unreadable).
#[derive(Debug, Clone)]
struct HostFacts {
    /// CPUs online.
    cpus: usize,
    /// The kernel's boot id: equal on hosts that share a kernel (and so `/proc/stat`).
    boot_id: Option<Vec<u8>>,
    /// The PID namespace (`/proc/self/ns/pid`): equal when the process tables are the same.
    pid_ns: Option<String>,
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
pub fn new_lab_id() -> String {
    format!(
        "{}-{}",
        crate::store::timestamp(crate::store::now_unix()),
        std::process::id()
    )
}

impl Session {
    /// A session with no driver yet, log level notice, 3 retries, charts on.
    pub fn new() -> Self {
        Session {
            driver: None,
            log_level: LogLevel::Notice,
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
        let name = std::env::var("PERF_TEST_DRIVER").unwrap_or_else(|_| "local".into());
        self.use_driver(&name, &DriverOptions::new())
    }

    /// Selects the driver (`local`, `docker`, `terraform`) with its options.
    pub fn use_driver(&mut self, name: &str, options: &DriverOptions) -> Result<()> {
        if let Some(mut d) = self.driver.take() {
            d.teardown(false)?;
        }
        let lab_id = self.lab_id.clone();
        let d = self.retry("use_driver", || driver::create(name, options, &lab_id))?;
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
        if level >= self.log_level {
            eprintln!("perflab: {msg}");
        }
    }

    fn retry<T>(&self, what: &str, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(e @ (Error::Usage(_) | Error::MissingTool { .. } | Error::Interrupted)) => {
                    return Err(e);
                }
                Err(e) if attempt >= self.retry_count => return Err(e),
                Err(e) => {
                    attempt += 1;
                    self.log(
                        LogLevel::Warn,
                        &format!(
                            "{what} failed: {e:#} (try {attempt} of {})",
                            self.retry_count + 1
                        ),
                    );
                    std::thread::sleep(delay);
                    delay *= 2;
                    crate::signals::check()?;
                }
            }
        }
    }

    fn driver(&mut self) -> Result<&mut Box<dyn Driver>> {
        self.driver
            .as_mut()
            .ok_or_else(|| Error::Usage("no driver selected: call use_driver first".into()))
    }

    /// The host for a role (retried: asking for a host is idempotent).
    pub fn host(&mut self, role: Role, instance: &str) -> Result<Arc<dyn Host>> {
        let retries = self.retry_count;
        let d = self.driver()?;
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            match d.host(role, instance) {
                Ok(h) => return Ok(h),
                Err(e @ (Error::Usage(_) | Error::MissingTool { .. })) => return Err(e),
                Err(e) if attempt >= retries => return Err(e),
                Err(_) => {
                    attempt += 1;
                    std::thread::sleep(delay);
                    delay *= 2;
                }
            }
        }
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

    /// Lets the driver prepare the measured machine before a run (bounded by the cool-down's
    /// `max_wait`); returns its record (`Null` when the driver does nothing).
    pub fn before_run(&mut self) -> Result<serde_json::Value> {
        let max_wait = self.cooldown.max_wait;
        self.driver()?.before_run(max_wait)
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

    fn facts(&self, host: &dyn Host) -> HostFacts {
        let key = format!("{}@{}", host.name(), host.address());
        if let Some(f) = self.host_facts.lock().expect("not poisoned").get(&key) {
            return f.clone();
        }
        let f = HostFacts {
            cpus: cpu_count(host),
            boot_id: host
                .read_file(Path::new("/proc/sys/kernel/random/boot_id"))
                .ok(),
            pid_ns: host
                .run(
                    &crate::host::Cmd::new("readlink").arg("/proc/self/ns/pid"),
                    Duration::from_secs(10),
                )
                .ok()
                .filter(|o| o.success())
                .map(|o| o.stdout_text().trim().to_string())
                .filter(|s| !s.is_empty()),
        };
        self.host_facts
            .lock()
            .expect("not poisoned")
            .insert(key, f.clone());
        f
    }

    /// [`cpu_count`], asked once per host.
    fn cpus(&self, host: &dyn Host) -> usize {
        self.facts(host).cpus
    }

    /// True when two hosts share a kernel (same boot id): their `/proc/stat` is the same
    /// machine. Asked once per host.
    fn same_machine(&self, a: &dyn Host, b: &dyn Host) -> bool {
        match (self.facts(a).boot_id, self.facts(b).boot_id) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    /// True when two hosts see the same process table: the same kernel and PID namespace (not
    /// so for two containers, or a container and the machine). A process group started on one
    /// is then visible, by the same pid, in the other's `/proc`. Asked once per host.
    fn same_process_table(&self, a: &dyn Host, b: &dyn Host) -> bool {
        self.same_machine(a, b)
            && match (self.facts(a).pid_ns, self.facts(b).pid_ns) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
    }

    fn cpu_plan(&self, host: &dyn Host) -> CpuPlan {
        if !self.pin_cpus {
            return CpuPlan {
                measured: None,
                others: None,
            };
        }
        CpuPlan::for_cpus(self.cpus(host))
    }

    /// Starts the upstream with `conf` inside its `server {}` block on one port; returns its URI
    /// as the gateway sees it.
    pub fn start_upstream(&mut self, conf: &str) -> Result<String> {
        Ok(self.start_upstreams(conf, 1)?.remove(0))
    }

    /// Starts the upstream on `n` consecutive ports; returns their URIs.
    pub fn start_upstreams(&mut self, conf: &str, n: u16) -> Result<Vec<String>> {
        self.start_upstream_with(&crate::suite::UpstreamTable {
            config: conf.into(),
            ports: Some(n),
            ..Default::default()
        })
    }

    /// Starts the upstream from a case's upstream settings. In baseline mode the upstream is the
    /// measured server and gets the measured CPUs.
    pub fn start_upstream_with(
        &mut self,
        spec: &crate::suite::UpstreamTable,
    ) -> Result<Vec<String>> {
        if let Some(mut u) = self.upstream.take() {
            u.stop()?;
        }
        let host = self.host(Role::Worker, "default")?;
        let plan = self.cpu_plan(host.as_ref());
        let n = spec.ports.unwrap_or(1).max(1);
        if n > crate::suite::MAX_UPSTREAM_PORTS {
            return Err(Error::Usage(format!(
                "upstream.ports must be from 1 to {} (got {n})",
                crate::suite::MAX_UPSTREAM_PORTS
            )));
        }
        let base_port = match self.port_base {
            Some(p) => check_port_base(p)?,
            None => pick_ports(host.as_ref(), n, 18088)?,
        };
        let opts = UpstreamOptions {
            config: spec.config.clone(),
            ports: n,
            base_port,
            workers: spec.workers.unwrap_or(1),
            body_bytes: spec.body_bytes,
            cpus: if self.baseline_mode {
                plan.measured
            } else {
                plan.others
            },
        };
        let prefix = host.lab_dir().join(format!("upstream-{base_port}"));
        let up = upstream::start_upstream(host, prefix, &opts)?;
        let uris = up.uris.clone();
        self.log(
            LogLevel::Debug,
            &format!("upstream ready at {}", uris.join(", ")),
        );
        self.upstream = Some(up);
        Ok(uris)
    }

    /// The running upstream, if any.
    pub fn upstream(&self) -> Option<&Upstream> {
        self.upstream.as_ref()
    }

    /// Marks the next upstream as the measured server (baseline cases: no gateway).
    pub fn set_baseline_mode(&mut self, on: bool) {
        self.baseline_mode = on;
    }

    /// Starts a gateway instance of `kind` at `version` in front of the upstream; returns its
    /// proxy URI. Call it again with another `instance` name to run several at once.
    pub fn start_gateway(
        &mut self,
        kind: &str,
        version: &str,
        entities: &Entities,
        settings: &toml::Table,
        instance: &str,
    ) -> Result<String> {
        self.start_gateway_in(kind, version, None, entities, settings, instance, 1)
    }

    /// [`Session::start_gateway`] with a version directory (a git worktree) and worker count.
    #[allow(clippy::too_many_arguments)]
    pub fn start_gateway_in(
        &mut self,
        kind: &str,
        version: &str,
        version_dir: Option<PathBuf>,
        entities: &Entities,
        settings: &toml::Table,
        instance: &str,
        workers: u32,
    ) -> Result<String> {
        if self.gateways.contains_key(instance) {
            return Err(Error::Usage(format!(
                "gateway instance \"{instance}\" is already running: stop it first or use another name"
            )));
        }
        let upstream_uris = self
            .upstream
            .as_ref()
            .map(|u| u.uris.clone())
            .ok_or_else(|| Error::Usage("start the upstream before the gateway".into()))?;
        let adapter = gateway::adapter(kind)?;
        let image = match version.strip_prefix("image:") {
            Some(reference) => Some(GatewayImage::new(reference)),
            None if self.driver()?.runs_images() => {
                adapter.container_image(version, version_dir.as_deref(), settings)?
            }
            None => None,
        };
        let host = match &image {
            Some(image) => self
                .driver()?
                .host_from_image(Role::Gateway, instance, image)?,
            None => self.host(Role::Gateway, instance)?,
        };
        let version_dir = match version_dir {
            Some(dir) if !host.shares_local_files() => Some(self.upload_version_tree(&host, &dir)?),
            other => other,
        };
        let load_host = self.host(Role::Worker, "default")?;
        let lab_database = adapter.needs_lab_database(settings);
        if lab_database {
            // As Kong's own database always had: a password, also on loopback.
            self.start_lab_postgres(true)?;
        }
        let install_packages = self.driver()?.installs_packages();
        let plan = self.cpu_plan(host.as_ref());
        let proxy_port = match self.port_base {
            Some(p) => check_port_base(p)? + 100,
            None => pick_ports(host.as_ref(), adapter.ports_needed(settings).max(2), 38000)?,
        };
        let prefix = host
            .lab_dir()
            .join(format!("{kind}-{instance}-{proxy_port}"));
        let ctx = GatewayContext {
            host: host.clone(),
            load_host,
            postgres: self.postgres.as_ref().filter(|_| lab_database),
            instance,
            prefix,
            upstream_uris: &upstream_uris,
            entities,
            version,
            version_dir,
            proxy_port,
            admin_port: proxy_port + 1,
            cpus: plan.measured,
            workers,
            settings,
            install_packages,
        };
        let mut gw = adapter.start(&ctx)?;
        if let Some(image) = &image {
            let id = self
                .driver()?
                .image_id(&image.reference)
                .map(|id| format!(" {id}"))
                .unwrap_or_default();
            gw.version_detail = format!("{} (image {}{id})", gw.version_detail, image.reference);
        }
        let uri = gw.proxy_uri.clone();
        self.log(
            LogLevel::Debug,
            &format!("{kind} {version} ({}) ready at {uri}", gw.version_detail),
        );
        let pids = group_pids(gw.host.as_ref(), gw.proc.pid()).unwrap_or_default();
        self.gateway_pids.insert(instance.to_string(), pids);
        self.gateways.insert(instance.to_string(), gw);
        Ok(uri)
    }

    /// Whether a gateway instance is still whole: its main process runs, and every process of
    /// its process group seen when it became ready (nginx's master and workers, HAProxy) still
    /// exists. A worker that nginx replaced counts as died: the run lost it. Cheap enough to
    /// call between load bursts (one process-table read on the gateway's host).
    pub fn gateway_alive(&mut self, instance: &str) -> Result<GatewayLiveness> {
        let gw = self.gateways.get_mut(instance).ok_or_else(|| {
            Error::Usage(format!("gateway instance \"{instance}\" is not running"))
        })?;
        let pgid = gw.proc.pid();
        let mut problems = Vec::new();
        if !gw.proc.is_running() {
            problems.push(match gw.proc.wait_timeout(Duration::ZERO).ok().flatten() {
                Some(c) if c < 0 => format!("its main process {pgid} was killed by signal {}", -c),
                Some(c) => format!("its main process {pgid} exited with status {c}"),
                None => format!("its main process {pgid} is gone"),
            });
        }
        let expected = self.gateway_pids.get(instance).cloned().unwrap_or_default();
        // An unreadable process table says nothing about the gateway: only the main process
        // is judged then.
        if !expected.is_empty()
            && let Some(now) = group_pids(gw.host.as_ref(), pgid)
        {
            let gone: Vec<String> = expected
                .difference(&now)
                .filter(|p| **p != pgid || problems.is_empty())
                .map(|p| p.to_string())
                .collect();
            if !gone.is_empty() {
                let new: Vec<String> = now.difference(&expected).map(|p| p.to_string()).collect();
                let mut d = format!(
                    "process{} {} of its group exited",
                    if gone.len() == 1 { "" } else { "es" },
                    gone.join(", ")
                );
                if !new.is_empty() {
                    d.push_str(&format!(" ({} started in their place)", new.join(", ")));
                }
                if now.is_empty() {
                    d.push_str(" (no process of the group is left)");
                }
                problems.push(d);
            }
        }
        Ok(GatewayLiveness {
            alive: problems.is_empty(),
            detail: problems.join("; "),
        })
    }

    /// Copies a `git:` version's local tree to a host that cannot see this machine's files, once
    /// per host, and returns where it is there (`<lab dir>/versions/<commit>`).
    fn upload_version_tree(&mut self, host: &Arc<dyn Host>, dir: &Path) -> Result<PathBuf> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tree".into());
        let remote = host.lab_dir().join("versions").join(name);
        let key = format!("{}@{}:{}", host.name(), host.address(), remote.display());
        if self.uploaded_trees.insert(key) {
            self.log(
                LogLevel::Info,
                &format!(
                    "copying {} to {}:{}",
                    dir.display(),
                    host.name(),
                    remote.display()
                ),
            );
            host.upload_tree(dir, &remote)?;
        }
        Ok(remote)
    }

    /// A running gateway instance.
    pub fn gateway(&self, instance: &str) -> Option<&RunningGateway> {
        self.gateways.get(instance)
    }

    /// Stops every gateway instance.
    pub fn stop_gateway(&mut self) -> Result<()> {
        self.gateway_pids.clear();
        let mut first_err = None;
        for (_, mut gw) in std::mem::take(&mut self.gateways) {
            let adapter = gateway::adapter(&gw.kind)?;
            if let Err(e) = adapter.stop(&mut gw) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The admin API URI of an instance (the first one with an admin API when `None`), as the
    /// worker sees it.
    pub fn get_admin_uri(&self, instance: Option<&str>) -> Result<String> {
        let found = match instance {
            Some(name) => self
                .gateways
                .get(name)
                .ok_or_else(|| Error::Usage(format!("gateway instance \"{name}\" is not running")))?
                .admin_uri
                .clone(),
            None => self.gateways.values().find_map(|g| g.admin_uri.clone()),
        };
        found.ok_or_else(|| Error::Usage("no running gateway has an admin API".into()))
    }

    /// Copies each gateway instance's error log to `path` (suffixed with the instance name when
    /// several run), and the error logs of its other processes (Kong's control plane in hybrid
    /// mode) beside it, suffixed with their names (`PATH-cp`).
    pub fn save_error_log(&self, path: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let many = self.gateways.len() > 1;
        for (name, gw) in &self.gateways {
            let data = gw.host.read_file(&gw.error_log).unwrap_or_default();
            let p = if many {
                PathBuf::from(format!("{}-{name}", path.display()))
            } else {
                path.to_path_buf()
            };
            crate::store::atomic_write(&p, &data).map_err(|e| Error::io(&p, e))?;
            out.push(p.clone());
            for (other, log) in &gw.other_logs {
                let data = gw.host.read_file(log).unwrap_or_default();
                let q = PathBuf::from(format!("{}-{other}", p.display()));
                crate::store::atomic_write(&q, &data).map_err(|e| Error::io(&q, e))?;
                out.push(q);
            }
        }
        Ok(out)
    }

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
    fn target_gateway(&self, instance: Option<&str>) -> Option<&RunningGateway> {
        match instance {
            Some(name) => self.gateways.get(name),
            None => self.gateways.values().next(),
        }
    }

    fn load_target(&mut self, opts: &LoadOptions, instance: Option<&str>) -> Result<LoadTarget> {
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

    fn start_load_with(
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
        let cooldown_waited_s = if gate {
            self.cool_down(gw_host.as_deref().unwrap_or(host.as_ref()))?
        } else {
            0.0
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
            cooldown_waited_s,
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
        let mut notes = lp.notes;
        let gw = self.target_gateway(lp.target.as_deref());
        let mut gateway_rss_bytes = None;
        let (gateway_s, gw_machine, cores) = match gw {
            Some(g) => {
                let pgid = g.proc.pid();
                match &lp.before_gateway {
                    Some(before) => {
                        let after = g.host.proc_snapshot()?;
                        let s = after.group_seconds(pgid) - before.group_seconds(pgid);
                        gateway_rss_bytes = after.group_rss_bytes(pgid);
                        let s = non_negative(s, "gateway", &mut notes);
                        let machine =
                            (!lp.gateway_same_machine).then_some((before.machine, after.machine));
                        (s, machine, self.cpus(g.host.as_ref()))
                    }
                    None => {
                        gateway_rss_bytes = after_worker.group_rss_bytes(pgid);
                        (
                            non_negative(
                                after_worker.group_seconds(pgid)
                                    - lp.before_worker.group_seconds(pgid),
                                "gateway",
                                &mut notes,
                            ),
                            None,
                            self.cpus(worker.as_ref()),
                        )
                    }
                }
            }
            None => (None, None, self.cpus(worker.as_ref())),
        };
        let upstream_s = self
            .upstream
            .as_ref()
            .map(|u| {
                after_worker.group_seconds(u.proc.pid())
                    - lp.before_worker.group_seconds(u.proc.pid())
            })
            .and_then(|s| non_negative(s, "upstream", &mut notes))
            .unwrap_or(0.0);
        // A gateway that died during the window is a finding: its processes' CPU seconds went
        // with them, so its CPU figure is unknown rather than small.
        let mut gateway_died = false;
        let mut gateway_s = gateway_s;
        let instances: Vec<String> = self.gateways.keys().cloned().collect();
        for name in instances {
            let l = self.gateway_alive(&name)?;
            if !l.alive {
                gateway_died = true;
                let who = if self.gateways.len() > 1 {
                    format!("gateway instance {name}")
                } else {
                    "the gateway".to_string()
                };
                notes.push(format!("{who} died during the run: {}", l.detail));
                if gateway_s.take().is_some() {
                    notes.push(
                        "cpu.gateway_s left out: the CPU seconds of processes that died are not \
                         known"
                            .into(),
                    );
                }
            }
        }
        if lp.reloaded && gateway_s.take().is_some() {
            notes.push(
                "cpu.gateway_s left out: a reload replaced gateway processes during the load, \
                 and the CPU seconds of the ones that exited are not known"
                    .into(),
            );
        }
        let load_s = outcome.cpu_s;
        // Background CPU on the measured machine: what was busy besides the lab's roles.
        let (busy, total, lab) = match gw_machine {
            Some((b, a)) => (
                a.busy_s - b.busy_s,
                a.total_s - b.total_s,
                gateway_s.unwrap_or(0.0),
            ),
            None => (
                after_worker.machine.busy_s - lp.before_worker.machine.busy_s,
                after_worker.machine.total_s - lp.before_worker.machine.total_s,
                gateway_s.unwrap_or(0.0) + upstream_s + load_s,
            ),
        };
        let background_s = (busy - lab).max(0.0);
        let background_pct = if total > 0.0 {
            100.0 * background_s / total
        } else {
            0.0
        };
        let cpu = CpuUsage {
            window_s,
            cores,
            gateway_s,
            upstream_s,
            load_s,
            background_s,
            background_pct,
        };
        let profile = match self.profiler.take() {
            Some(p) => Some(p.stop_and_collect()?),
            None => None,
        };
        self.last_profile = profile.clone();
        let rps_per_gateway_cpu_s = gateway_s
            .filter(|s| *s > 0.0)
            .map(|s| outcome.result.requests as f64 / s);
        let flags = RunFlags {
            noisy: background_pct > self.cooldown.noisy_background_pct,
            errors: outcome.result.errors.total() > 0,
            load_saturated: match outcome
                .result
                .open_loop
                .as_ref()
                .filter(|o| !o.hosts.is_empty())
            {
                Some(o) => o.hosts.iter().any(|h| h.load_saturated),
                None => load_s / window_s.max(1e-9) >= 0.95 * lp.loads_cpus[0] as f64,
            },
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
            cpu,
            rps_per_gateway_cpu_s,
            flags,
            cooldown_waited_s: lp.cooldown_waited_s,
            profile,
            gateway_rss_bytes,
            notes,
        })
    }

    /// Checks that the running gateway (`instance`, or the first) can take `actions`: every
    /// listener they name exists and it can reload in place. Call it before the load starts, so
    /// a case whose actions cannot run fails before anything is measured.
    pub fn check_during(&self, actions: &[DuringAction], instance: Option<&str>) -> Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        let gw = self.target_gateway(instance).ok_or_else(|| {
            Error::Usage("actions during load need a running gateway (not a baseline run)".into())
        })?;
        for (i, a) in actions.iter().enumerate() {
            let problem = match a.action {
                ActionKind::Reload => gw
                    .reload
                    .is_none()
                    .then(|| format!("gateway {} cannot reload in place", gw.kind)),
                _ => listener_uri(gw, a.listener()).is_none().then(|| {
                    format!(
                        "gateway {} has no {} listener in this lab",
                        gw.kind,
                        a.listener().as_str()
                    )
                }),
            };
            if let Some(p) = problem {
                return Err(Error::Usage(format!("during[{}]: {p}", i + 1)));
            }
        }
        Ok(())
    }

    /// Runs `actions` on time while the load runs (start it with
    /// [`Session::start_load_recording`] to get the traffic around each action), and returns
    /// when the last one is done or the load's planned duration is over. HTTP requests and
    /// scrapes go from the load host, where the gateway's lab addresses are reachable. An action
    /// that fails is a finding, recorded with its error, not an error of the run. Returns each
    /// occurrence's record and, for scrapes, the answer's body.
    pub fn run_during(
        &mut self,
        actions: &[DuringAction],
        instance: Option<&str>,
    ) -> Result<Vec<(ActionRecord, Option<Vec<u8>>)>> {
        let (started, duration) = match &self.load {
            Some(lp) => (lp.started, lp.loads[0].duration_s),
            None => {
                return Err(Error::Usage(
                    "no load is running: call start_load_recording first".into(),
                ));
            }
        };
        self.check_during(actions, instance)?;
        let worker = self.host(Role::Worker, "default")?;
        let mut out = Vec::new();
        let mut reloaded = None;
        for (at, i) in during::schedule(actions, duration) {
            loop {
                crate::signals::check()?;
                let now = started.elapsed().as_secs_f64();
                if now >= at {
                    break;
                }
                std::thread::sleep(Duration::from_secs_f64((at - now).min(0.05)));
            }
            let started_s = started.elapsed().as_secs_f64();
            if started_s >= duration {
                break;
            }
            let a = &actions[i];
            let gw = self
                .target_gateway(instance)
                .ok_or_else(|| Error::Lab("the gateway went away during the load".into()))?;
            let mut rec = ActionRecord {
                action: a.action.as_str().to_string(),
                scheduled_s: at,
                started_s,
                ..Default::default()
            };
            let mut body = None;
            if a.action == ActionKind::Reload {
                let t = Instant::now();
                let r = gateway::adapter(&gw.kind)?.reload(gw);
                rec.duration_s = t.elapsed().as_secs_f64();
                rec.ok = r.is_ok();
                rec.error = r.err().map(|e| format!("{e:#}"));
                reloaded = Some(gw.instance.clone());
            } else {
                let base = listener_uri(gw, a.listener()).unwrap_or_default();
                let url = format!(
                    "{}{}",
                    base.trim_end_matches('/'),
                    a.path.as_deref().unwrap_or("/")
                );
                rec.method = Some(a.method().to_string());
                rec.path = a.path.clone();
                rec.port = Some(a.listener().as_str().to_string());
                let call = HttpCall::json(a.method(), url, a.body.clone().map(String::into_bytes));
                match worker.http_request(&call, Duration::from_secs(30)) {
                    Ok(r) => {
                        rec.status = Some(r.status);
                        rec.duration_s = r.duration_s;
                        rec.ok = (200..300).contains(&r.status);
                        if !rec.ok {
                            rec.error = Some(format!("HTTP {}", r.status));
                        }
                        if a.action == ActionKind::Scrape {
                            body = Some(r.body);
                        } else {
                            let n = r.body.len().min(during::ANSWER_BYTES);
                            rec.answer = Some(String::from_utf8_lossy(&r.body[..n]).into_owned());
                        }
                    }
                    Err(e) => rec.error = Some(e.to_string()),
                }
            }
            out.push((rec, body));
        }
        if let Some(name) = reloaded {
            // The reload replaced worker processes: from now on only the main process tells
            // whether the gateway lives, and the run's gateway CPU figure is left out.
            self.gateway_pids.insert(name, Default::default());
            if let Some(lp) = self.load.as_mut() {
                lp.reloaded = true;
            }
        }
        Ok(out)
    }

    /// The cool-down gate: waits (bounded) until the machine is quiet. Returns seconds waited.
    fn cool_down(&self, host: &dyn Host) -> Result<f64> {
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

    /// Attaches a profiler to the measured server (the first gateway instance, or the upstream
    /// in baseline mode) until the next [`Session::wait_result`]. Call it before
    /// [`Session::start_load`]; the run is then flagged `profiled`. `opts.tool` picks perf or
    /// the Lua sampler ([`Session::start_lua_sampler`]).
    pub fn start_profiler(&mut self, opts: crate::role::profiler::ProfilerOptions) -> Result<()> {
        use crate::role::profiler::{ProfilerTool, RunningSampler};
        if self.profiler.is_some() {
            return Err(Error::Usage("a profiler is already attached".into()));
        }
        if opts.tool == ProfilerTool::Lua {
            return self.start_lua_sampler(opts.frequency_hz);
        }
        let (host, pgid, pid_file) = match self.gateways.values().next() {
            Some(g) => (g.host.clone(), g.proc.pid(), g.server_pid_file.clone()),
            None => {
                let u = self.upstream.as_ref().ok_or_else(|| {
                    Error::Usage("nothing to profile: start a gateway or an upstream first".into())
                })?;
                (u.host.clone(), u.proc.pid(), None)
            }
        };
        let dir = host.lab_dir().join(format!("profile-{}", pgid));
        self.profiler = Some(RunningSampler::Perf(match pid_file {
            Some(f) => {
                let pids = crate::role::profiler::nginx_server_pids(host.as_ref(), &f)?;
                let what = format!("the server of {}", f.display());
                crate::role::profiler::start_profiler_on(host, pids, &what, &dir, opts)?
            }
            None => crate::role::profiler::start_profiler(host, pgid, &dir, opts)?,
        }));
        Ok(())
    }

    /// Starts perflab's Lua sampler in the workers of the first gateway instance (Kong only:
    /// [`crate::role::lua_profiler`]) until the next [`Session::wait_result`], at
    /// `frequency_hz` samples per second per worker.
    pub fn start_lua_sampler(&mut self, frequency_hz: u32) -> Result<()> {
        if self.profiler.is_some() {
            return Err(Error::Usage("a profiler is already attached".into()));
        }
        let g = self.gateways.values().next().ok_or_else(|| {
            Error::Usage("the Lua profiler needs a gateway: start Kong first".into())
        })?;
        let dir = g.lua_profiler_dir.clone().ok_or_else(|| {
            Error::Usage(format!(
                "the Lua profiler works with Kong only, not with {}: use the perf profiler",
                g.kind
            ))
        })?;
        let p = crate::role::lua_profiler::start_lua_profiler(
            g.host.clone(),
            g.proc.pid(),
            &dir,
            frequency_hz,
        )?;
        self.profiler = Some(crate::role::profiler::RunningSampler::Lua(p));
        Ok(())
    }

    /// Kong's `start_stapxx`: runs a stapxx sample against the gateway where SystemTap works;
    /// elsewhere fails with the reason and points to [`Session::start_profiler`].
    pub fn start_stapxx(
        &mut self,
        sample: &str,
        args: &[String],
    ) -> Result<crate::role::profiler::RunningStapxx> {
        let g = self
            .gateways
            .values()
            .next()
            .ok_or_else(|| Error::Usage("start a gateway before start_stapxx".into()))?;
        let dir = g.host.lab_dir().join("stapxx");
        // Kong's framework attached stap++ to the first nginx worker; a launcher's group leader
        // (`kong start`) runs no request code.
        let pid = match &g.server_pid_file {
            Some(f) => {
                let pids = crate::role::profiler::nginx_server_pids(g.host.as_ref(), f)?;
                pids.get(1)
                    .or(pids.first())
                    .copied()
                    .unwrap_or(g.proc.pid())
            }
            None => g.proc.pid(),
        };
        let mut opts = crate::role::profiler::StapxxOptions::new(pid, &dir);
        opts.args = args.to_vec();
        crate::role::profiler::start_stapxx(g.host.clone(), sample, &opts)
    }

    /// Kong's `generate_flamegraph`: writes the last profile as an SVG flame graph (`.svg` is
    /// appended when missing) and its folded stacks beside it.
    pub fn generate_flamegraph(&self, path: &Path, title: &str) -> Result<PathBuf> {
        let p = self.last_profile.as_ref().ok_or_else(|| {
            Error::Usage(
                "no profile yet: call start_profiler before start_load, then wait_result".into(),
            )
        })?;
        let mut out = path.to_path_buf();
        if !out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
        {
            out = PathBuf::from(format!("{}.svg", path.display()));
        }
        crate::report::flamegraph::render_flamegraph(&p.folded, title, &out)?;
        crate::store::atomic_write(&out.with_extension("folded"), p.folded.as_bytes())
            .map_err(|e| Error::io(&out, e))?;
        Ok(out)
    }

    /// Starts the lab's PostgreSQL on the database host (a private data directory, its own
    /// port; a password where other machines can reach it) unless it runs, and returns its
    /// DSN. It is the one database server of the lab: [`Session::start_kong`] uses its
    /// database, suite runs give each Kong version a database of its own in it, and
    /// [`Session::save_pgdump`] / [`Session::load_pgdump`] work on it.
    pub fn start_postgres(&mut self) -> Result<String> {
        self.start_lab_postgres(false)
    }

    /// [`Session::start_postgres`]; `password`: a generated password even on loopback.
    fn start_lab_postgres(&mut self, password: bool) -> Result<String> {
        if let Some(pg) = &self.postgres {
            return Ok(pg.dsn());
        }
        let host = self.host(Role::Database, "default")?;
        let port = pick_ports(host.as_ref(), 1, 15432)?;
        let opts = crate::role::postgres::PostgresOptions {
            port,
            password: match password {
                true => Some(crate::role::postgres::generate_password()?),
                false => None,
            },
            ..Default::default()
        };
        let dir = host.lab_dir().join(format!("postgres-{port}"));
        let pg = crate::role::postgres::start_postgres(host, &dir, opts)?;
        let dsn = pg.dsn();
        self.postgres = Some(pg);
        Ok(dsn)
    }

    /// Kong's `start_kong`: starts Kong `version` with `kong_confs` (every `KONG_*` variable of
    /// this process overrides them) as instance `instance`. Unless `kong_confs` names a
    /// `pg_host` or `database = "off"`, Kong uses the lab's PostgreSQL
    /// ([`Session::start_postgres`], started here if needed) and its database, as Kong's
    /// framework's `start_kong` used `kong_tests`.
    pub fn start_kong(
        &mut self,
        version: &str,
        kong_confs: &toml::Table,
        entities: &Entities,
        instance: &str,
    ) -> Result<String> {
        if !kong_confs.contains_key("pg_host")
            && kong_confs.get("database").and_then(toml::Value::as_str) != Some("off")
        {
            self.start_postgres()?;
        }
        let settings = self.kong_settings(kong_confs, "traditional");
        self.start_gateway("kong", version, entities, &settings, instance)
    }

    /// Kong's historical `start_hybrid_kong`: a control plane and a data plane sharing a cluster
    /// certificate perflab generates.
    pub fn start_hybrid_kong(
        &mut self,
        version: &str,
        kong_confs: &toml::Table,
        entities: &Entities,
    ) -> Result<String> {
        if !kong_confs.contains_key("pg_host") {
            self.start_postgres()?;
        }
        let settings = self.kong_settings(kong_confs, "hybrid");
        self.start_gateway("kong", version, entities, &settings, "default")
    }

    /// The migrate-only verb: runs Kong `version`'s migrations (`kong migrations bootstrap`,
    /// `up -y`, `finish -y`) against the session's database ([`Session::start_postgres`]) or
    /// the `pg_host` of `kong_confs`, without starting Kong; e.g. after
    /// [`Session::load_pgdump`] of a dump from an older Kong.
    pub fn migrate_kong(&mut self, version: &str, kong_confs: &toml::Table) -> Result<()> {
        let settings = self.kong_settings(kong_confs, "traditional");
        let confs = settings
            .get("kong_configs")
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default();
        if !confs.contains_key("pg_host") {
            return Err(Error::Usage(
                "migrate_kong: no database (call start_postgres first, or set pg_host)".into(),
            ));
        }
        let host = self.host(Role::Gateway, "default")?;
        let dir = host.lab_dir().join("kong-migrate");
        let env: Vec<(String, String)> = std::env::vars().collect();
        gateway::kong::migrate_only(host.as_ref(), version, &confs, &dir, &env)
    }

    /// Kong's `stop_kong`: stops every gateway instance.
    pub fn stop_kong(&mut self) -> Result<()> {
        self.stop_gateway()
    }

    fn kong_settings(&self, kong_confs: &toml::Table, mode: &str) -> toml::Table {
        let mut confs = kong_confs.clone();
        if let Some(pg) = &self.postgres
            && !confs.contains_key("pg_host")
        {
            confs.insert(
                "pg_host".into(),
                toml::Value::String(pg.address().to_string()),
            );
            confs.insert("pg_port".into(), toml::Value::String(pg.port().to_string()));
            confs.insert("pg_user".into(), toml::Value::String(pg.user().to_string()));
            if let Some(pw) = pg.password() {
                confs.insert("pg_password".into(), toml::Value::String(pw.to_string()));
            }
            confs.insert(
                "pg_database".into(),
                toml::Value::String(pg.database().to_string()),
            );
        }
        let mut settings = toml::Table::new();
        settings.insert("mode".into(), toml::Value::String(mode.into()));
        settings.insert("kong_configs".into(), toml::Value::Table(confs));
        settings
    }

    /// The database [`Session::start_postgres`] started, to query it (`psql`) or read its DSN.
    pub fn postgres(&self) -> Option<&crate::role::postgres::Postgres> {
        self.postgres.as_ref()
    }

    /// Kong's `save_pgdump`: dumps the session's database to `path` (plain SQL).
    pub fn save_pgdump(&self, path: &Path) -> Result<()> {
        let pg = self
            .postgres
            .as_ref()
            .ok_or_else(|| Error::Usage("no database: call start_postgres first".into()))?;
        pg.save_pgdump(path)
    }

    /// Kong's `load_pgdump`: restores `path` into the session's database and, unless
    /// `dont_patch_service`, points every Kong service at the session's upstream.
    pub fn load_pgdump(&self, path: &Path, dont_patch_service: bool) -> Result<()> {
        let pg = self
            .postgres
            .as_ref()
            .ok_or_else(|| Error::Usage("no database: call start_postgres first".into()))?;
        let upstream = self.upstream.as_ref().and_then(|u| {
            let addr = u.uris.first()?.trim_start_matches("http://").to_string();
            let (h, p) = addr.rsplit_once(':')?;
            Some((h.to_string(), p.parse::<u16>().ok()?))
        });
        pg.load_pgdump(
            path,
            dont_patch_service,
            upstream.as_ref().map(|(h, p)| (h.as_str(), *p)),
        )
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

/// Highest `port_base`: the gateway listens on `port_base + 100` and its admin API on
/// `port_base + 101`, which must stay a valid port (65535).
pub const MAX_PORT_BASE: u16 = u16::MAX - 101;

/// Refuses a fixed port base that leaves no room for the gateway's ports (never clamps: a
/// clamped port would collide with the upstream's or another program's).
fn check_port_base(p: u16) -> Result<u16> {
    if p == 0 || p > MAX_PORT_BASE {
        return Err(Error::Usage(format!(
            "--port-base {p} leaves no room for the gateway (PORT+100) and its admin API \
             (PORT+101): use a port from 1 to {MAX_PORT_BASE}"
        )));
    }
    Ok(p)
}

/// CPUs of a host (`getconf _NPROCESSORS_ONLN`).
pub fn cpu_count(host: &dyn Host) -> usize {
    if host.address() == "127.0.0.1"
        && let Ok(n) = std::thread::available_parallelism()
    {
        return n.get();
    }
    host.run(
        &crate::host::Cmd::new("getconf").arg("_NPROCESSORS_ONLN"),
        Duration::from_secs(10),
    )
    .ok()
    .and_then(|o| o.stdout_text().trim().parse().ok())
    .unwrap_or(1)
}

/// Picks `n` consecutive free ports. On hosts reached over loopback the ports are checked by
/// binding them here. Elsewhere (network namespaces, remote machines) the host's own socket
/// tables (`/proc/net/tcp`, `/proc/net/tcp6`, which belong to its network namespace) are read
/// and a base below the usual ephemeral range is chosen that no socket there uses, so two labs
/// or a leftover of an interrupted run on the same machine do not collide; `default_base` is the
/// fallback when the tables cannot be read.
pub fn pick_ports(host: &dyn Host, n: u16, default_base: u16) -> Result<u16> {
    let seed = (std::process::id() as u64).wrapping_mul(2_654_435_761)
        ^ crate::store::now_unix().to_bits();
    if host.address() != "127.0.0.1" {
        let Ok(out) = host.run(
            &crate::host::Cmd::new("cat").args(["/proc/net/tcp", "/proc/net/tcp6"]),
            Duration::from_secs(10),
        ) else {
            return Ok(default_base);
        };
        let used = used_ports(&out.stdout_text());
        if used.is_empty() && !out.success() {
            return Ok(default_base);
        }
        for attempt in 0..200u64 {
            let base = 20_000 + ((seed.wrapping_add(attempt.wrapping_mul(7919))) % 12_000) as u16;
            if (0..n).all(|i| !used.contains(&(base + i))) {
                return Ok(base);
            }
        }
        return Ok(default_base);
    }
    for attempt in 0..200u64 {
        let base = 20_000 + ((seed.wrapping_add(attempt.wrapping_mul(7919))) % 25_000) as u16;
        let free = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return Ok(base);
        }
    }
    Err(Error::Lab(format!(
        "no {n} consecutive free ports found on 127.0.0.1"
    )))
}

/// Local ports of every socket in `/proc/net/tcp`-format text (any state).
pub fn used_ports(text: &str) -> std::collections::BTreeSet<u16> {
    text.lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(1)?;
            let (_, port) = local.rsplit_once(':')?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

/// Builds a run record from a measurement.
#[allow(clippy::too_many_arguments)]
pub fn run_record(
    m: &Measurement,
    suite: &str,
    case: &str,
    gateway: &str,
    version: &str,
    version_detail: &str,
    repeat: u32,
    sequence: u32,
    started_unix_s: f64,
    driver: &str,
) -> RunRecord {
    RunRecord {
        schema: crate::result::RUN_SCHEMA.into(),
        suite: suite.into(),
        case: case.into(),
        gateway: gateway.into(),
        version: version.into(),
        version_detail: version_detail.into(),
        repeat,
        sequence,
        started_unix_s,
        load: m.outcome.result.clone(),
        rps_per_gateway_cpu_s: m.rps_per_gateway_cpu_s,
        cpu: m.cpu.clone(),
        flags: m.flags.clone(),
        load_command: m.outcome.command.clone(),
        driver: driver.into(),
        profile: None,
        burst: None,
        gateway_rss_bytes: m.gateway_rss_bytes,
        notes: m.notes.clone(),
        during: None,
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

/// The processes of a process group on a host (`None` when the process table cannot be read).
fn group_pids(host: &dyn Host, pgid: u32) -> Option<std::collections::BTreeSet<u32>> {
    // A snapshot without a single process was not read (every host has at least one).
    let s = host.proc_snapshot().ok().filter(|s| !s.procs.is_empty())?;
    Some(
        s.procs
            .values()
            .filter(|p| p.pgrp == pgid)
            .map(|p| p.pid)
            .collect(),
    )
}

/// The URI of one of a gateway's listeners, as the load host sees it.
fn listener_uri(gw: &RunningGateway, l: Listener) -> Option<String> {
    match l {
        Listener::Admin => gw.admin_uri.clone(),
        Listener::Proxy => Some(gw.proxy_uri.clone()),
        Listener::Status => gw.status_uri.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_plan_pins_the_measured_server_alone() {
        assert_eq!(
            CpuPlan::for_cpus(1),
            CpuPlan {
                measured: None,
                others: None
            }
        );
        assert_eq!(
            CpuPlan::for_cpus(2),
            CpuPlan {
                measured: Some(vec![1]),
                others: Some(vec![0])
            }
        );
        assert_eq!(CpuPlan::for_cpus(4).others, Some(vec![0, 1, 2]));
    }

    #[test]
    fn used_ports_are_read_from_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0201E70A:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0\n";
        let p = used_ports(text);
        assert!(p.contains(&20000) && p.contains(&8080), "{p:?}");
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn log_levels_parse_by_name() {
        assert_eq!("warn".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        assert!("loud".parse::<LogLevel>().is_err());
    }
}
