//! The Kong gateway adapter: traditional (PostgreSQL), DB-less and hybrid modes, for the Kong
//! that is installed (`current`), a release (`3.9.1`) or a git ref (`git:<ref>`).
//!
//! This re-creates Kong's framework's `setup_kong`/`start_kong`/`start_hybrid_kong`/`stop_kong`
//! (reference §1.2, §5, §6.5, §8) once, against a [`crate::host::Host`], instead of once per
//! driver:
//!
//! - **traditional**: a database of the lab's one PostgreSQL ([`lab_database`]) unless the case
//!   names a `pg_host`, `kong migrations` ([`migrations`]), then `kong start` with
//!   `nginx_daemon = off` as a background process in its own group ([`process`]); entities
//!   through the Admin API ([`admin`]), `kong config db_import` or SQL ([`sql_seed`]).
//! - **dbless**: `database = off` and a declarative config file ([`declarative`]).
//! - **hybrid**: one control plane (traditional, `role = control_plane`, no proxy) and N data
//!   planes (`role = data_plane`, `database = off`, `cluster_control_plane = …`), sharing a
//!   fresh cluster certificate ([`certs`]); traffic goes to the first data plane.
//!
//! Where each concept lives: the case's settings ([`settings`]); which `kong` runs a version
//! ([`binary`], [`meta`], [`prefix`], [`package`]) and which image ([`image`]); what a start
//! writes ([`plan`], rendered by [`conf`]: perflab's defaults, then the case's `kong_configs`,
//! then every `KONG_*` variable of perflab's environment, as in Kong's framework, except the
//! per-instance properties ([`conf::PER_INSTANCE`]), which are also pinned in the environment
//! of every `kong` command); the listeners' ports ([`ports`]: one allocator, every port distinct
//! and free on the host before anything starts); when a started Kong is ready ([`readiness`]).
//! This file orders the steps of a start.

pub mod admin;
pub mod binary;
pub mod certs;
pub mod conf;
pub mod declarative;
pub mod image;
pub mod lab_database;
pub mod meta;
pub mod migrations;
pub mod package;
pub mod plan;
pub mod ports;
pub mod prefix;
pub mod process;
pub mod readiness;
pub mod settings;
pub mod sql_seed;
#[cfg(test)]
mod test_support;

use std::path::Path;
use std::time::Duration;

use crate::host::{Cmd, Proc, poll_until};
use crate::role::gateway::{GatewayAdapter, GatewayContext, RunningGateway};
use crate::{Error, Result};

use binary::env_value;
use migrations::migrate;
use ports::{listen_ports, ports_in_use};
use process::{instance_cmd, with_open_files};
use readiness::{tail, wait_routed};

pub use binary::{KongBinary, KongLocation, resolve_binary};
pub use migrations::migrate_only;
pub use plan::{InstancePlan, StartPlan, plan};
pub use process::OPEN_FILES;
pub use settings::{KongSettings, Mode, Readiness, Seed};

pub(crate) use binary::{BASE_VERSION_VAR, VersionSpec};
pub(crate) use image::image_for;
pub(crate) use ports::{PortLayout, planned_ports};
pub(crate) use process::KongProcs;
pub(crate) use readiness::router_rebuild_interval;

/// The Kong adapter.
#[derive(Debug, Clone, Default)]
pub struct KongAdapter {
    env: Option<Vec<(String, String)>>,
}

impl KongAdapter {
    /// An adapter whose `KONG_*` overrides come from perflab's own environment at start time.
    pub fn new() -> Self {
        KongAdapter { env: None }
    }

    /// An adapter with an explicit environment for `KONG_*` overrides (tests, embedding).
    pub fn with_env(env: Vec<(String, String)>) -> Self {
        KongAdapter { env: Some(env) }
    }

    fn env(&self) -> Vec<(String, String)> {
        self.env
            .clone()
            .unwrap_or_else(|| std::env::vars().collect())
    }
}

impl GatewayAdapter for KongAdapter {
    /// A mode with a database whose case and environment name no `pg_host` of their own.
    fn needs_lab_database(&self, settings: &toml::Table) -> bool {
        KongSettings::from_table(settings)
            .is_ok_and(|s| plan::uses_lab_database(&s, &self.env()).unwrap_or(false))
    }

    /// The span of the [`PortLayout`] for these settings (proxy, admin, then the listeners the
    /// allocator hands out after the admin port).
    fn ports_needed(&self, settings: &toml::Table) -> u16 {
        match KongSettings::from_table(settings) {
            Ok(s) => PortLayout::new(&s, 0, 1).span(),
            Err(_) => 2,
        }
    }

    fn keeps_for_repeats(&self, settings: &toml::Table) -> bool {
        KongSettings::from_table(settings).is_ok_and(|s| s.per_case)
    }

    fn container_image(
        &self,
        version: &str,
        version_dir: Option<&Path>,
        settings: &toml::Table,
    ) -> Result<Option<crate::driver::GatewayImage>> {
        let env = self.env();
        let mut s = KongSettings::from_table(settings)?;
        if s.base_version.is_none() {
            s.base_version = env_value(&env, BASE_VERSION_VAR).map(str::to_string);
        }
        // Kong's framework spelled it PERF_TEST_USE_DAILY_IMAGE; both are honoured.
        let daily = env_value(&env, "PERFLAB_USE_DAILY_IMAGE")
            .or_else(|| env_value(&env, "PERF_TEST_USE_DAILY_IMAGE"));
        image_for(version, version_dir, &s, daily)
    }

    fn start(&self, ctx: &GatewayContext) -> Result<RunningGateway> {
        let host = ctx.host.clone();
        let env = self.env();
        let mut plan = plan(ctx, &env)?;
        // perflab's own PATH goes behind a built prefix's dirs only where it means the same.
        let own_path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        let settings = KongSettings::from_table(ctx.settings)?;
        let mut loc = KongLocation::from_env(&env, own_path.filter(|_| host.shares_local_files()));
        if settings.base_version.is_some() {
            loc.base_version = settings.base_version.clone();
        }
        let mut bin = resolve_binary(
            host.as_ref(),
            ctx.version,
            ctx.version_dir.as_deref(),
            ctx.install_packages,
            &loc,
        )?;
        plan.adapt_to(&bin.version);
        // The lab's PostgreSQL: a database per Kong schema and instance, created once, emptied
        // before every start (lab_database's module docs).
        let lab_db = match (&plan.lab_database, ctx.postgres) {
            (Some(_), Some(pg)) => {
                let name = lab_database::database_name(
                    &lab_database::schema_key(ctx.version, &bin.version),
                    ctx.instance,
                );
                plan.use_lab_database(&name);
                Some((pg, name))
            }
            _ => None,
        };
        if lab_db.is_none() && plan::uses_lab_database(&settings, &env)? {
            return Err(Error::Lab(format!(
                "kong {} mode needs a database: start it through a session (which gives it \
                 the lab's PostgreSQL) or set kong_configs.pg_host",
                plan.mode.as_str()
            )));
        }
        let seed = settings.seed.resolve(admin::requests(&plan.document).len());
        let sql = match (seed, &lab_db) {
            (Seed::Sql, Some(_)) => {
                sql_seed::check_version(&bin.version)?;
                sql_seed::statements(ctx.entities, ctx.upstream_uris, &settings.service_path)?
            }
            (Seed::Sql, None) => {
                return Err(Error::Usage(
                    "seed = \"sql\" writes the lab's PostgreSQL: it needs the traditional or hybrid \
                     mode without a pg_host of the case's own (else use seed = \"import\")"
                        .into(),
                ));
            }
            _ => Vec::new(),
        };
        if let Some(lpp) = &bin.lua_package_path {
            for inst in plan.instances.iter_mut() {
                inst.conf
                    .entry("lua_package_path".into())
                    .or_insert_with(|| lpp.clone());
            }
        }
        // perflab's Lua sampler, loaded into every instance (dormant until asked).
        // (a built prefix's KONG_LUA_PACKAGE_PATH wins over kong.conf, so it gets the path too).
        let lua_dir = ctx.prefix.join("perflab-lua");
        for inst in plan.instances.iter_mut() {
            crate::role::lua_profiler::add_to_kong_conf(&mut inst.conf, &lua_dir);
        }
        for (_, v) in bin
            .env
            .iter_mut()
            .filter(|(k, _)| k == "KONG_LUA_PACKAGE_PATH")
        {
            *v = crate::role::lua_profiler::with_plugin_path(v, &lua_dir);
        }
        let busy = ports_in_use(host.as_ref(), &planned_ports(&plan));
        if !busy.is_empty() {
            let list: Vec<String> = busy.iter().map(|(p, who)| format!("{p} ({who})")).collect();
            return Err(Error::Lab(format!(
                "kong on {}: ports already in use: {}",
                host.name(),
                list.join(", ")
            )));
        }
        let mut config_files = Vec::new();
        host.write_file(
            &plan.declarative_path,
            declarative::render(&plan.document).as_bytes(),
        )?;
        config_files.push(plan.declarative_path.clone());
        if let Some((cert, key)) = &plan.cluster_cert {
            let pair = certs::generate(certs::DEFAULT_DAYS)?;
            host.write_file(cert, pair.cert_pem.as_bytes())?;
            host.write_file(key, pair.key_pem.as_bytes())?;
            config_files.push(cert.clone());
        }
        crate::role::lua_profiler::install_kong_plugin(host.as_ref(), &lua_dir)?;
        for inst in &plan.instances {
            crate::role::lua_profiler::prepare_control_dir(host.as_ref(), &inst.prefix)?;
            host.write_file(&inst.conf_path, conf::render(&inst.conf).as_bytes())?;
            config_files.push(inst.conf_path.clone());
        }

        let mut procs = KongProcs {
            host: host.clone(),
            kongs: Vec::new(),
        };
        if let Some((pg, name)) = &lab_db {
            lab_database::ensure(pg, name)?;
        }
        let admin_uri = format!("http://{}:{}", host.address(), ctx.admin_port);
        let t = Duration::from_secs(300);
        let mut started: Vec<(Box<dyn Proc>, Cmd)> = Vec::new();
        for (i, inst) in plan.instances.iter().enumerate() {
            let conf_s = inst.conf_path.display().to_string();
            let check = host.run(&instance_cmd(&bin, &inst.conf, &["check", &conf_s]), t)?;
            if !check.success() {
                return Err(Error::ConfigRefused {
                    program: "kong".into(),
                    config: conf_s,
                    message: check.combined_text(),
                });
            }
            if inst.conf.get("database").map(String::as_str) == Some("postgres") {
                migrate(host.as_ref(), &bin, &inst.conf, &conf_s)?;
                if i == plan.admin_instance()
                    && let Some((pg, name)) = &lab_db
                {
                    lab_database::reset(pg, name)?;
                    for statement in &sql {
                        pg.psql_on(name, statement)?;
                    }
                }
                if seed == Seed::Import && i == plan.admin_instance() {
                    let file = plan.declarative_path.display().to_string();
                    let args = ["config", "db_import", &file, "-c", &conf_s];
                    let out = host.run(&instance_cmd(&bin, &inst.conf, &args), t)?;
                    if !out.success() {
                        return Err(Error::Lab(format!(
                            "`kong config db_import` of the case's entities failed:\n{}",
                            out.combined_text()
                        )));
                    }
                }
            }
            let log = ctx.prefix.join(format!("{}.out", inst.name));
            let start = with_open_files(instance_cmd(&bin, &inst.conf, &["start", "-c", &conf_s]))
                .cpus(ctx.cpus.clone());
            let proc = match host.spawn(&start, &log) {
                Ok(p) => p,
                Err(e) => {
                    procs.kongs = started;
                    let _ = procs.stop(Duration::from_secs(5));
                    return Err(e.into());
                }
            };
            let prefix_s = inst.prefix.display().to_string();
            let quit = instance_cmd(&bin, &inst.conf, &["quit", "-p", &prefix_s, "-t", "5"]);
            started.push((proc, quit));
            // The Admin API of the first instance must answer before the next one starts.
            if i == plan.admin_instance()
                && inst.conf.get("admin_listen").map(String::as_str) != Some("off")
            {
                let status = format!("{admin_uri}/status");
                let (p, _) = started.last_mut().expect("just pushed");
                let ok = poll_until(settings.start_timeout, Duration::from_millis(250), || {
                    if !p.is_running() {
                        return Some(false);
                    }
                    matches!(
                        ctx.load_host.http_status(&status, Duration::from_secs(2)),
                        Ok(200)
                    )
                    .then_some(true)
                });
                if ok != Some(true) {
                    crate::signals::check()?;
                    let msg = format!(
                        "kong ({}) did not become ready at {status}:\n{}\n{}",
                        inst.name,
                        tail(host.as_ref(), &log),
                        tail(host.as_ref(), &inst.error_log())
                    );
                    procs.kongs = started;
                    let _ = procs.stop(Duration::from_secs(5));
                    return Err(Error::Lab(msg));
                }
                if plan.mode != Mode::Dbless && seed == Seed::Admin {
                    admin::apply(
                        ctx.load_host.as_ref(),
                        &admin_uri,
                        &admin::requests(&plan.document),
                        Duration::from_secs(30),
                    )?;
                }
            }
        }
        // Entities reach the proxy asynchronously (router rebuilds, CP→DP sync): wait until every
        // route the load may use is routed on every instance that proxies (each data plane in
        // hybrid mode, so that one that failed to start or to sync is an error here, with its
        // own log, not a silently smaller lab). An instance whose process ended fails at once.
        // A load on the Admin API (`readiness = "admin"`) needs no route: the Admin API's
        // `/status` answered above.
        let paths = match settings.readiness {
            Readiness::Routes => ctx.entities.route_paths(),
            Readiness::Admin => Vec::new(),
        };
        for (idx, inst) in plan.instances.iter().enumerate() {
            let Some(port) = inst
                .conf
                .get("proxy_listen")
                .and_then(|l| listen_ports(l).first().copied())
            else {
                continue;
            };
            let uri = format!("http://{}:{port}", host.address());
            let rebuild = router_rebuild_interval(&inst.conf);
            let (proc, _) = &mut started[idx];
            let ready = wait_routed(
                ctx.load_host.as_ref(),
                &uri,
                &paths,
                settings.start_timeout,
                rebuild,
                &mut || proc.is_running(),
            );
            if let Err(url) = ready {
                crate::signals::check()?;
                let msg = format!(
                    "kong ({}) never routed {url}:\n{}\n{}",
                    inst.name,
                    tail(
                        host.as_ref(),
                        &ctx.prefix.join(format!("{}.out", inst.name))
                    ),
                    tail(host.as_ref(), &inst.error_log())
                );
                procs.kongs = started;
                let _ = procs.stop(Duration::from_secs(5));
                return Err(Error::Lab(msg));
            }
        }
        // Traffic instance first, so `pid()` is the process serving the load; the control plane
        // is stopped last.
        let traffic = plan.traffic_instance();
        let mut ordered: Vec<(Box<dyn Proc>, Cmd)> = Vec::new();
        let mut rest = Vec::new();
        for (i, p) in started.into_iter().enumerate() {
            if i == traffic {
                ordered.insert(0, p);
            } else {
                rest.push(p);
            }
        }
        rest.reverse();
        ordered.extend(rest);
        procs.kongs = ordered;

        let traffic_inst = &plan.instances[traffic];
        let proxy_port = ctx.proxy_port;
        let proxy_uri = format!("http://{}:{proxy_port}", host.address());
        Ok(RunningGateway {
            kind: crate::role::gateway::GatewayKind::Kong,
            instance: ctx.instance.to_string(),
            proc: Box::new(procs),
            server_pid_file: Some(traffic_inst.prefix.join("pids/nginx.pid")),
            proxy_uri,
            admin_uri: Some(admin_uri),
            // The traffic instance's `status_listen`, when its planned conf sets one (Kong's own
            // default, kong/templates/kong_defaults.lua, is 127.0.0.1:8007 since 3.6: a
            // listener the lab did not choose, so it is not offered to actions).
            status_uri: traffic_inst
                .conf
                .get("status_listen")
                .filter(|v| v.as_str() != "off")
                .and_then(|v| listen_ports(v).first().copied())
                .map(|port| format!("http://{}:{port}", host.address())),
            // `kong reload` rebuilds the prefix from `-c` over the running node's `.kong_env`
            // and sends nginx a HUP (Kong's kong/cmd/reload.lua); without `-c` a DB-less node
            // would lose its declarative_config.
            reload: Some(instance_cmd(
                &bin,
                &traffic_inst.conf,
                &[
                    "reload",
                    "-c",
                    &traffic_inst.conf_path.display().to_string(),
                    "-p",
                    &traffic_inst.prefix.display().to_string(),
                ],
            )),
            error_log: traffic_inst.error_log(),
            other_logs: plan
                .instances
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != traffic)
                .map(|(_, inst)| (inst.name.clone(), inst.error_log()))
                .collect(),
            config_files,
            version_detail: format!("{} ({})", bin.detail, plan.mode.as_str()),
            host,
            lua_profiler_dir: Some(
                traffic_inst
                    .prefix
                    .join(crate::role::lua_profiler::CONTROL_DIR),
            ),
        })
    }
}
