//! `kong migrations`: the command sequence every database-backed start runs, and the
//! migrate-only verb.

use std::path::Path;
use std::time::Duration;

use super::binary::{KongBinary, KongLocation, resolve_binary};
use super::conf;
use super::process::instance_cmd;
use crate::host::Host;
use crate::{Error, Result};

/// The `kong migrations` commands (arguments after `kong`) that make the database behind
/// `conf_path` ready for this Kong: `bootstrap` (a no-op on a bootstrapped database), then
/// `up -y` and `finish -y`, so a reused database or a dump from an older Kong is migrated too.
/// Kong's framework ran the same three (spec/helpers/perf/drivers/docker.lua and
/// terraform.lua); each prints "Database already bootstrapped", "Database is already
/// up-to-date" or "No pending migrations to finish" and succeeds when there is nothing to do
/// (kong/cmd/utils/migrations.lua), so perflab checks every exit status.
pub(crate) fn migration_commands(conf_path: &str) -> Vec<Vec<String>> {
    [
        &["migrations", "bootstrap"][..],
        &["migrations", "up", "-y"],
        &["migrations", "finish", "-y"],
    ]
    .iter()
    .map(|a| {
        a.iter()
            .map(|s| s.to_string())
            .chain(["-c".to_string(), conf_path.to_string()])
            .collect()
    })
    .collect()
}

/// The migrate-only verb: runs Kong `version`'s migrations ([`migration_commands`]) on `host`
/// against the database `kong_configs` names (`pg_host`, `pg_port`, …), without starting Kong.
/// For a database restored from a dump of an older Kong, or to time the migrations alone.
/// `dir` is a private directory on the host for the configuration and Kong's prefix; `env` is
/// perflab's environment (for `PERFLAB_KONG_PREFIX` and `KONG_*`).
pub fn migrate_only(
    host: &dyn Host,
    version: &str,
    kong_configs: &toml::Table,
    dir: &Path,
    env: &[(String, String)],
) -> Result<()> {
    let loc = KongLocation::from_env(env, None);
    let bin = resolve_binary(host, version, None, false, &loc)?;
    let prefix = dir.join("kong");
    let mut defaults = conf::KongConf::new();
    defaults.insert("prefix".into(), prefix.display().to_string());
    defaults.insert("database".into(), "postgres".into());
    defaults.insert("anonymous_reports".into(), "off".into());
    let c = conf::merge(
        defaults,
        Some(kong_configs),
        env.iter().map(|(k, v)| (k, v)),
    )?;
    let conf_path = dir.join("migrate.conf");
    host.write_file(&conf_path, conf::render(&c).as_bytes())?;
    migrate(host, &bin, &c, &conf_path.display().to_string())
}

/// Runs [`migration_commands`] for the instance configuration at `conf_path` with `bin`; the
/// first failure is an error with Kong's output. The migrate-only verb
/// (the session's `migrate_kong`) and every database-backed start use it.
pub(crate) fn migrate(
    host: &dyn Host,
    bin: &KongBinary,
    conf: &conf::KongConf,
    conf_path: &str,
) -> Result<()> {
    for args in migration_commands(conf_path) {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = host.run(&instance_cmd(bin, conf, &argv), Duration::from_secs(600))?;
        if !out.success() {
            return Err(Error::Lab(format!(
                "`kong {}` failed on {}:\n{}",
                args.join(" "),
                host.name(),
                out.combined_text()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_bootstrap_then_up_then_finish() {
        let cmds = migration_commands("/lab/kong.conf");
        let text: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            text,
            [
                "migrations bootstrap -c /lab/kong.conf",
                "migrations up -y -c /lab/kong.conf",
                "migrations finish -y -c /lab/kong.conf",
            ]
        );
    }
}
