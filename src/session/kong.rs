//! Kong's verbs and settings: PostgreSQL for traditional mode, Kong started traditional, DB-less
//! or hybrid, migrations, and database dumps.

use std::path::Path;

use crate::driver::Role;
use crate::entities::Entities;
use crate::role::gateway;
use crate::role::ports::pick_ports;
use crate::{Error, Result};

use super::Session;

impl Session {
    /// Starts the lab's PostgreSQL on the database host (a private data directory, its own
    /// port; a password where other machines can reach it) unless it runs, and returns its
    /// DSN. It is the one database server of the lab: [`Session::start_kong`] uses its
    /// database, suite runs give each Kong version a database of its own in it, and
    /// [`Session::save_pgdump`] / [`Session::load_pgdump`] work on it.
    pub fn start_postgres(&mut self) -> Result<String> {
        self.start_lab_postgres(false)
    }

    /// [`Session::start_postgres`]; `password`: a generated password even on loopback.
    pub(super) fn start_lab_postgres(&mut self, password: bool) -> Result<String> {
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
        self.start_gateway(
            crate::role::gateway::GatewayKind::Kong,
            version,
            entities,
            &settings,
            instance,
        )
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
        self.start_gateway(
            crate::role::gateway::GatewayKind::Kong,
            version,
            entities,
            &settings,
            "default",
        )
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

    pub(super) fn kong_settings(&self, kong_confs: &toml::Table, mode: &str) -> toml::Table {
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
}
