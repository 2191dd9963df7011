//! What a Kong start writes, computed without touching a host: every instance's `kong.conf`
//! (perflab's defaults, the case's `kong_configs`, `KONG_*` from the environment), the
//! declarative document, the database and the cluster certificate paths.

use std::path::PathBuf;

use super::ports::{PortLayout, planned_ports};
use super::settings::{KongSettings, Mode, Seed};
use super::{conf, declarative, meta};
use crate::role::gateway::GatewayContext;
use crate::role::postgres::Postgres;
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
    /// The database of the lab's PostgreSQL the plan uses (`pg_database` of every instance
    /// with a database), when the case names no `pg_host` of its own.
    pub lab_database: Option<String>,
    /// Cluster certificate paths (hybrid).
    pub cluster_cert: Option<(PathBuf, PathBuf)>,
}

/// Whether a start with settings `s` uses a database of the lab's PostgreSQL: a mode with a
/// database whose `kong_configs` and `KONG_*` environment (`env`) name no `pg_host`.
pub(crate) fn uses_lab_database(s: &KongSettings, env: &[(String, String)]) -> Result<bool> {
    let probe = conf::merge(
        conf::KongConf::new(),
        Some(&s.kong_configs),
        env.iter().map(|(k, v)| (k, v)),
    )?;
    Ok(s.mode != Mode::Dbless && !probe.contains_key("pg_host"))
}

/// The properties that point Kong at `database` of the lab's server `pg`.
fn lab_database_conf(pg: &Postgres, database: &str) -> conf::KongConf {
    let mut c = conf::KongConf::new();
    c.insert("pg_host".into(), pg.address().to_string());
    c.insert("pg_port".into(), pg.port().to_string());
    c.insert("pg_user".into(), pg.user().to_string());
    if let Some(pw) = pg.password() {
        c.insert("pg_password".into(), pw.to_string());
    }
    c.insert("pg_database".into(), database.to_string());
    c
}

impl StartPlan {
    /// Renames the plan's database of the lab's PostgreSQL to `name` (once the Kong version
    /// that runs it is known); nothing without one.
    pub fn use_lab_database(&mut self, name: &str) {
        let Some(old) = self.lab_database.replace(name.to_string()) else {
            return;
        };
        for inst in &mut self.instances {
            if inst.conf.get("pg_database") == Some(&old) {
                inst.conf.insert("pg_database".into(), name.to_string());
            }
        }
    }

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
    // SQL seeding writes the entities itself: the document (DB-less config, Admin API requests,
    // a kept config file) stays empty rather than hold 100,000 entities per kind.
    let none = crate::entities::Entities {
        services: 0,
        consumers: 0,
        upstreams: 0,
        plugins: Vec::new(),
        ..crate::entities::Entities::default()
    };
    let listed = if s.seed == Seed::Sql && s.mode != Mode::Dbless {
        &none
    } else {
        ctx.entities
    };
    let document = declarative::document(listed, ctx.upstream_uris, &s.service_path)?;
    let declarative_path = ctx.prefix.join("kong.json");
    let admin = format!("{addr}:{}", ctx.admin_port);

    // The database, when one is needed: the case's/environment's pg_host wins; otherwise a
    // database of the lab's PostgreSQL (its name is fixed once the Kong version is known,
    // `StartPlan::use_lab_database`).
    let ports = PortLayout::new(&s, ctx.proxy_port, ctx.admin_port);
    let lab_database = match ctx.postgres {
        Some(pg) if uses_lab_database(&s, env)? => Some(super::lab_database::database_name(
            ctx.version,
            ctx.instance,
        ))
        .map(|name| (name, pg)),
        _ => None,
    };
    let mut db = conf::KongConf::new();
    if s.mode != Mode::Dbless {
        db.insert("database".into(), "postgres".into());
    }
    if let Some((name, pg)) = &lab_database {
        db.extend(lab_database_conf(pg, name));
    }
    let lab_database = lab_database.map(|(name, _)| name);

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
        lab_database,
        cluster_cert,
    };
    let mut seen: std::collections::BTreeMap<u16, String> = Default::default();
    for (port, who) in planned_ports(&plan) {
        if let Some(first) = seen.insert(port, who.clone()) {
            return Err(Error::Usage(format!(
                "kong: port {port} is planned twice ({first} and {who}); change \
                 kong_configs or the lab's ports"
            )));
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::role::gateway::GatewayAdapter;
    use crate::role::gateway::kong::test_support::*;
    use crate::role::gateway::kong::*;

    #[test]
    fn traditional_plan_has_perflabs_defaults_and_a_database() {
        let tmp = tempfile::tempdir().unwrap();
        let host = local(tmp.path());
        let uris = vec!["http://127.0.0.1:18088".to_string()];
        let e = entities(1, 1, vec![], 0);
        let s = settings(
            r#"mode = "traditional"
            kong_configs = { nginx_worker_processes = "1" }"#,
        );
        let c = ctx(
            &host,
            tmp.path(),
            &uris,
            &e,
            "current",
            None,
            &s,
            (9000, 9001),
        );
        let p = plan(&c, &env(&[("KONG_LOG_LEVEL", "debug")])).unwrap();
        assert_eq!(p.mode, Mode::Traditional);
        assert_eq!(p.instances.len(), 1);
        let k = &p.instances[0].conf;
        let prefix = tmp.path().join("kong").display().to_string();
        assert_eq!(k["prefix"], prefix);
        assert_eq!(k["proxy_listen"], "127.0.0.1:9000");
        assert_eq!(k["admin_listen"], "127.0.0.1:9001");
        assert_eq!(k["nginx_worker_processes"], "1");
        assert_eq!(k["nginx_daemon"], "off");
        assert_eq!(k["proxy_access_log"], "off");
        assert_eq!(k["proxy_error_log"], format!("{prefix}/logs/error.log"));
        assert_eq!(k["database"], "postgres");
        // Without the lab's PostgreSQL (the session gives it; tests/kong.rs checks that path on
        // a real server) the plan names no database of it.
        assert!(p.lab_database.is_none() && !k.contains_key("pg_host"));
        assert_eq!(k["log_level"], "debug");
        assert_eq!(
            p.instances[0].error_log(),
            tmp.path().join("kong/logs/error.log")
        );

        // A pg_host from the case (or KONG_PG_HOST) means an external database: the lab's is
        // not used.
        let s2 = settings(r#"kong_configs = { pg_host = "10.0.0.5" }"#);
        assert!(!uses_lab_database(&KongSettings::from_table(&s2).unwrap(), &[]).unwrap());
        assert!(
            !uses_lab_database(
                &KongSettings::from_table(&s).unwrap(),
                &env(&[("KONG_PG_HOST", "db.lab")])
            )
            .unwrap()
        );
        assert!(uses_lab_database(&KongSettings::from_table(&s).unwrap(), &[]).unwrap());
        let p3 = plan(&c, &env(&[("KONG_PG_HOST", "db.lab")])).unwrap();
        assert!(p3.lab_database.is_none());
        assert_eq!(p3.instances[0].conf["pg_host"], "db.lab");
    }

    #[test]
    fn dbless_plan_points_at_the_declarative_file() {
        let tmp = tempfile::tempdir().unwrap();
        let host = local(tmp.path());
        let uris = vec!["http://127.0.0.1:18088".to_string()];
        let e = entities(2, 3, vec![], 0);
        let s = settings(r#"mode = "dbless""#);
        let c = ctx(
            &host,
            tmp.path(),
            &uris,
            &e,
            "current",
            None,
            &s,
            (9000, 9001),
        );
        let p = plan(&c, &[]).unwrap();
        assert!(p.lab_database.is_none());
        let k = &p.instances[0].conf;
        assert_eq!(k["database"], "off");
        assert_eq!(
            k["declarative_config"],
            tmp.path().join("kong.json").display().to_string()
        );
        assert!(!k.contains_key("pg_host"));
        assert_eq!(k["nginx_worker_processes"], "2", "ctx.workers");
    }

    #[test]
    fn hybrid_plan_has_a_control_plane_and_data_planes() {
        let tmp = tempfile::tempdir().unwrap();
        let host = local(tmp.path());
        let uris = vec!["http://127.0.0.1:18088".to_string()];
        let e = entities(1, 1, vec![], 0);
        let s = settings(
            r#"mode = "hybrid"
            data_planes = 3"#,
        );
        let c = ctx(
            &host,
            tmp.path(),
            &uris,
            &e,
            "current",
            None,
            &s,
            (9000, 9001),
        );
        let p = plan(&c, &env(&[("KONG_NGINX_WORKER_PROCESSES", "3")])).unwrap();
        let names: Vec<&str> = p.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["cp", "dp1", "dp2", "dp3"]);
        assert_eq!(p.traffic_instance(), 1);
        let cp = &p.instances[0].conf;
        assert_eq!(cp["role"], "control_plane");
        assert_eq!(cp["proxy_listen"], "off");
        assert_eq!(cp["admin_listen"], "127.0.0.1:9001");
        assert_eq!(cp["cluster_listen"], "127.0.0.1:9002");
        assert_eq!(cp["cluster_telemetry_listen"], "127.0.0.1:9003");
        assert_eq!(cp["database"], "postgres");
        let (cert, key) = p.cluster_cert.clone().unwrap();
        for (i, dp) in p.instances[1..].iter().enumerate() {
            let d = &dp.conf;
            assert_eq!(d["role"], "data_plane");
            assert_eq!(d["database"], "off");
            assert_eq!(d["admin_listen"], "off");
            // dp1 on the lab's proxy port; the others after the control plane's admin (9001),
            // cluster (9002) and telemetry (9003) ports, never on one of them.
            let want = [9000, 9004, 9005][i];
            assert_eq!(d["proxy_listen"], format!("127.0.0.1:{want}"));
            assert_eq!(d["cluster_control_plane"], "127.0.0.1:9002");
            assert_eq!(d["cluster_telemetry_endpoint"], "127.0.0.1:9003");
            assert_eq!(d["cluster_cert"], cert.display().to_string());
            assert_eq!(d["cluster_cert_key"], key.display().to_string());
            assert_eq!(
                d["nginx_worker_processes"], "3",
                "KONG_* applies to every instance"
            );
            assert!(!d.contains_key("pg_host"));
        }
        let mut ports: Vec<u16> = crate::role::gateway::kong::planned_ports(&p)
            .into_iter()
            .map(|(port, _)| port)
            .collect();
        ports.sort();
        assert_eq!(ports, [9000, 9001, 9002, 9003, 9004, 9005]);
        // The session picks exactly that many consecutive free ports from the proxy port.
        let a = KongAdapter::new();
        assert_eq!(a.ports_needed(&s), 6);
        assert_eq!(a.ports_needed(&settings(r#"mode = "hybrid""#)), 4);
        assert_eq!(a.ports_needed(&settings(r#"mode = "traditional""#)), 2);
        assert_eq!(a.ports_needed(&settings(r#"mode = "dbless""#)), 2);
        // A case that puts a status listener on a data plane's port is refused before anything
        // starts.
        let clash = settings(
            r#"mode = "hybrid"
            data_planes = 2
            kong_configs = { status_listen = "127.0.0.1:9004" }"#,
        );
        let c = ctx(
            &host,
            tmp.path(),
            &uris,
            &e,
            "current",
            None,
            &clash,
            (9000, 9001),
        );
        let err = plan(&c, &env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("port 9004 is planned twice"),
            "{err}"
        );
    }

    #[test]
    fn kong_environment_cannot_move_an_instance() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings("mode = \"hybrid\"\ndata_planes = 2");
        let dev_env = env(&[
            ("KONG_PREFIX", "/usr/local/kong"),
            ("KONG_PROXY_LISTEN", "0.0.0.0:8000"),
            ("KONG_ROLE", "traditional"),
            ("KONG_LOG_LEVEL", "warn"),
        ]);
        let p = one_route_plan(tmp.path(), &s, &dev_env);
        let prefixes: std::collections::BTreeSet<&str> = p
            .instances
            .iter()
            .map(|i| i.conf["prefix"].as_str())
            .collect();
        assert_eq!(prefixes.len(), 3, "one prefix per instance: {prefixes:?}");
        for i in &p.instances {
            assert_ne!(i.conf["proxy_listen"], "0.0.0.0:8000");
            assert_ne!(i.conf["role"], "traditional");
            assert_eq!(i.conf["log_level"], "warn", "other KONG_* still apply");
            // Kong reads KONG_* over kong.conf, so each command pins its instance's values.
            let pinned = conf::pinned_env(&i.conf);
            assert!(pinned.contains(&("KONG_PREFIX".to_string(), i.conf["prefix"].clone())));
            assert!(pinned.contains(&(
                "KONG_PROXY_LISTEN".to_string(),
                i.conf["proxy_listen"].clone()
            )));
        }
    }

    #[test]
    fn plans_fit_the_kong_version_that_runs_them() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings("mode = \"dbless\"");
        let mut p3 = one_route_plan(tmp.path(), &s, &[]);
        p3.adapt_to("3.9.3");
        assert_eq!(p3.document["_format_version"], "3.0");
        assert_eq!(p3.instances[0].conf["admin_gui_listen"], "off");
        assert_eq!(p3.instances[0].conf["status_listen"], "off");
        let mut p2 = one_route_plan(tmp.path(), &s, &[]);
        p2.adapt_to("2.8.5");
        assert_eq!(p2.document["_format_version"], "2.1");
        assert!(!p2.instances[0].conf.contains_key("admin_gui_listen"));
        // A case that asks for the status API keeps it (and its port is planned).
        let asks =
            settings("mode = \"dbless\"\nkong_configs = { status_listen = \"127.0.0.1:9100\" }");
        let mut p = one_route_plan(tmp.path(), &asks, &[]);
        p.adapt_to("3.9.3");
        assert_eq!(p.instances[0].conf["status_listen"], "127.0.0.1:9100");
        assert!(
            crate::role::gateway::kong::planned_ports(&p)
                .iter()
                .any(|(port, _)| *port == 9100)
        );
        // No listener of the lab on 0.0.0.0 (the local host's address is loopback).
        for v in p.instances[0].conf.values() {
            assert!(!v.contains("0.0.0.0"), "{v}");
        }
    }
}
