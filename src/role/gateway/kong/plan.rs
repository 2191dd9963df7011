//! What a Kong start writes, computed without touching a host: every instance's `kong.conf`
//! (perflab's defaults, the case's `kong_configs`, `KONG_*` from the environment), the
//! declarative document, the database and the cluster certificate paths.

use std::path::PathBuf;

use super::ports::{PortLayout, planned_ports};
use super::settings::{KongSettings, Mode};
use super::{conf, declarative, meta};
use crate::role::gateway::GatewayContext;
use crate::role::postgres::PostgresOptions;
use crate::{Error, Result};

/// One Kong instance's files and listens, before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct InstancePlan {
    /// Instance name (`kong`, `cp`, `dp1`, …).
    pub name: String,
    /// Kong's prefix.
    pub prefix: PathBuf,
    /// The `kong.conf` path.
    pub conf_path: PathBuf,
    /// The merged properties.
    pub conf: conf::KongConf,
}

impl InstancePlan {
    /// The error log this instance writes.
    pub fn error_log(&self) -> PathBuf {
        self.prefix.join("logs/error.log")
    }
}

/// Everything a start writes, computed without touching a host: the instances' configurations
/// (in start order: control plane first) and the declarative document. Public so the rendering
/// can be checked without Kong.
#[derive(Debug, Clone, PartialEq)]
pub struct StartPlan {
    /// The mode.
    pub mode: Mode,
    /// Instances in start order; the last one (the only one, or the last data plane) is not
    /// special: traffic goes to [`StartPlan::traffic_instance`].
    pub instances: Vec<InstancePlan>,
    /// The entities as a declarative document.
    pub document: serde_json::Value,
    /// Where the declarative document is written (DB-less mode).
    pub declarative_path: PathBuf,
    /// PostgreSQL options when perflab starts its own server.
    pub postgres: Option<PostgresOptions>,
    /// Cluster certificate paths (hybrid).
    pub cluster_cert: Option<(PathBuf, PathBuf)>,
}

impl StartPlan {
    /// The index of the instance that serves traffic (the first data plane in hybrid mode).
    pub fn traffic_instance(&self) -> usize {
        if self.mode == Mode::Hybrid { 1 } else { 0 }
    }
    /// The index of the instance with the Admin API.
    pub fn admin_instance(&self) -> usize {
        0
    }

    /// Fits the plan to the Kong `version` that runs it (`3.9.3`, `2.8.1`): the declarative
    /// format of its major ([`declarative::format_version`]) and Kong's unused default
    /// listeners off ([`conf::unused_default_listeners`]) unless the case set them.
    pub fn adapt_to(&mut self, version: &str) {
        let Some((major, minor)) = meta::major_minor(version) else {
            return;
        };
        self.document["_format_version"] = declarative::format_version(major).into();
        for inst in &mut self.instances {
            for key in conf::unused_default_listeners(major, minor) {
                inst.conf
                    .entry(key.to_string())
                    .or_insert_with(|| "off".to_string());
            }
        }
    }
}

/// Computes what [`KongAdapter::start`] writes for `ctx` with `env` as the `KONG_*` source.
/// Refuses a plan in which two listeners share a port.
pub fn plan(ctx: &GatewayContext, env: &[(String, String)]) -> Result<StartPlan> {
    let s = KongSettings::from_table(ctx.settings)?;
    let addr = ctx.host.address();
    let document = declarative::document(ctx.entities, ctx.upstream_uris, &s.service_path)?;
    let declarative_path = ctx.prefix.join("kong.json");
    let admin = format!("{addr}:{}", ctx.admin_port);

    // The database, when one is needed: the case's/environment's pg_host wins; otherwise ours.
    let probe = conf::merge(
        conf::KongConf::new(),
        Some(&s.kong_configs),
        env.iter().map(|(k, v)| (k, v)),
    )?;
    let own_pg = s.mode != Mode::Dbless && !probe.contains_key("pg_host");
    let ports = PortLayout::new(&s, ctx.proxy_port, ctx.admin_port, own_pg);
    let postgres = match ports.postgres {
        Some(port) => Some(PostgresOptions {
            port,
            password: Some(crate::role::postgres::generate_password()?),
            ..PostgresOptions::default()
        }),
        None => None,
    };
    let mut db = conf::KongConf::new();
    if let Some(o) = &postgres {
        db.insert("database".into(), "postgres".into());
        let db_addr = ctx
            .database_host
            .as_ref()
            .map(|h| h.address())
            .unwrap_or_else(|| addr.clone());
        db.insert("pg_host".into(), db_addr);
        db.insert("pg_port".into(), o.port.to_string());
        db.insert("pg_user".into(), o.user.clone());
        if let Some(pw) = &o.password {
            db.insert("pg_password".into(), pw.clone());
        }
        db.insert("pg_database".into(), o.database.clone());
    } else if s.mode != Mode::Dbless {
        db.insert("database".into(), "postgres".into());
    }

    let instance =
        |name: &str, proxy_listen: String, admin_listen: String, extra: &conf::KongConf| {
            let prefix = ctx.prefix.join(name);
            let prefix_s = prefix.display().to_string();
            let error_log = prefix.join("logs/error.log").display().to_string();
            let mut defaults = conf::Defaults {
                prefix: &prefix_s,
                proxy_listen,
                admin_listen,
                workers: ctx.workers.max(1),
                error_log: &error_log,
            }
            .to_conf();
            defaults.extend(extra.clone());
            let merged = conf::merge(
                defaults,
                Some(&s.kong_configs),
                env.iter().map(|(k, v)| (k, v)),
            )?;
            Ok::<_, Error>(InstancePlan {
                name: name.to_string(),
                conf_path: ctx.prefix.join(format!("{name}.conf")),
                prefix,
                conf: merged,
            })
        };

    let proxy = |port: u16| format!("{addr}:{port}");
    let mut instances = Vec::new();
    let mut cluster_cert = None;
    match s.mode {
        Mode::Traditional => {
            instances.push(instance("kong", proxy(ctx.proxy_port), admin, &db)?);
        }
        Mode::Dbless => {
            let mut extra = conf::KongConf::new();
            extra.insert("database".into(), "off".into());
            extra.insert(
                "declarative_config".into(),
                declarative_path.display().to_string(),
            );
            instances.push(instance("kong", proxy(ctx.proxy_port), admin, &extra)?);
        }
        Mode::Hybrid => {
            let cert = ctx.prefix.join("cluster.crt");
            let key = ctx.prefix.join("cluster.key");
            let cluster = format!("{addr}:{}", ports.cluster.unwrap_or_default());
            let telemetry = format!("{addr}:{}", ports.telemetry.unwrap_or_default());
            let mut common = conf::KongConf::new();
            common.insert("cluster_cert".into(), cert.display().to_string());
            common.insert("cluster_cert_key".into(), key.display().to_string());
            let mut cp = db.clone();
            cp.extend(common.clone());
            cp.insert("role".into(), "control_plane".into());
            cp.insert("cluster_listen".into(), cluster.clone());
            cp.insert("cluster_telemetry_listen".into(), telemetry.clone());
            instances.push(instance("cp", "off".into(), admin, &cp)?);
            for i in 1..=s.data_planes {
                let mut dp = common.clone();
                dp.insert("role".into(), "data_plane".into());
                dp.insert("database".into(), "off".into());
                dp.insert("cluster_control_plane".into(), cluster.clone());
                dp.insert("cluster_telemetry_endpoint".into(), telemetry.clone());
                let port = ports.data_plane_proxy(i);
                instances.push(instance(&format!("dp{i}"), proxy(port), "off".into(), &dp)?);
            }
            cluster_cert = Some((cert, key));
        }
    }
    let plan = StartPlan {
        mode: s.mode,
        instances,
        document,
        declarative_path,
        postgres,
        cluster_cert,
    };
    let mut seen: std::collections::BTreeMap<u16, String> = Default::default();
    for (port, who) in planned_ports(&plan) {
        if let Some(first) = seen.insert(port, who.clone()) {
            return Err(Error::Usage(format!(
                "kong: port {port} is planned twice ({first} and {who}); change pg_port, \
                 kong_configs or the lab's ports"
            )));
        }
    }
    Ok(plan)
}
