//! `kong.conf` rendering: perflab's defaults, then the case's `kong_configs`, then `KONG_*`.
//!
//! Kong's framework (reference §1.2 `start_kong`, §6.5) added its defaults (prefix, listens,
//! logs, database) "unless provided" by the test, and copied **every `KONG_*` environment
//! variable of the controller** into the confs, lower-cased and without the prefix, overriding
//! what the test set. perflab keeps that precedence — defaults < case < environment — so a user
//! can flip any Kong property for a whole suite from the shell (`KONG_NGINX_WORKER_PROCESSES=4`),
//! **except** for the properties that make one instance of the lab itself ([`PER_INSTANCE`]:
//! prefix, listeners, role, database, cluster wiring). Kong's development environment exports
//! `KONG_PREFIX` (and users export listeners); copied over every instance they made all
//! instances share one prefix or one port. Those keys are never taken from the environment, and
//! because Kong itself reads `KONG_<KEY>` from its own environment over `kong.conf`
//! (kong/conf_loader/parse.lua, "environment variables have higher priority"), the commands that
//! run Kong get them pinned to the instance's values ([`pinned_env`]).
//! The environment is an explicit input so the rule is testable without touching the process
//! environment.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Kong properties by name, in a stable (sorted) order.
pub type KongConf = BTreeMap<String, String>;

/// Properties that make one instance of the lab: its prefix, every listener, its role and
/// database mode, its cluster wiring and its logs. The environment never overrides them.
pub const PER_INSTANCE: &[&str] = &[
    "prefix",
    "proxy_listen",
    "admin_listen",
    "admin_gui_listen",
    "status_listen",
    "stream_listen",
    "cluster_listen",
    "cluster_telemetry_listen",
    "cluster_control_plane",
    "cluster_telemetry_endpoint",
    "cluster_cert",
    "cluster_cert_key",
    "role",
    "database",
    "declarative_config",
    "nginx_daemon",
    "proxy_error_log",
    "admin_error_log",
];

/// The `KONG_*` variables of `env` as Kong properties: `KONG_NGINX_WORKER_PROCESSES=4` becomes
/// `nginx_worker_processes = 4`. A bare `KONG_` and the [`PER_INSTANCE`] properties are
/// ignored (with a warning for the latter).
pub fn env_overrides<I, K, V>(env: I) -> KongConf
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    env.into_iter()
        .filter_map(|(k, v)| {
            let key = k.as_ref().strip_prefix("KONG_")?.to_ascii_lowercase();
            if PER_INSTANCE.contains(&key.as_str()) {
                tracing::warn!(
                    "ignoring {} from the environment: perflab sets `{key}` per Kong instance                      (use kong_configs in the case to change it)",
                    k.as_ref()
                );
                return None;
            }
            (!key.is_empty()).then(|| (key, v.as_ref().to_string()))
        })
        .collect()
}

/// The environment a command running the instance configured by `conf` needs so that Kong's
/// own reading of `KONG_*` variables (which wins over `kong.conf`) cannot replace its
/// [`PER_INSTANCE`] properties: `KONG_<KEY>=<value>` for each of them that `conf` sets.
pub fn pinned_env(conf: &KongConf) -> Vec<(String, String)> {
    PER_INSTANCE
        .iter()
        .filter_map(|k| {
            conf.get(*k)
                .map(|v| (format!("KONG_{}", k.to_ascii_uppercase()), v.clone()))
        })
        .collect()
}

/// Listeners Kong opens by default that the lab does not use, for Kong `major.minor`: the
/// Admin GUI (`admin_gui_listen = 0.0.0.0:8002, 0.0.0.0:8445 ssl` in OSS from 3.4) and the
/// status API (`status_listen = 127.0.0.1:8007` from 3.6; changelog/3.6.0/kong/
/// default_status_port.yml). Both are in kong/templates/kong_defaults.lua. On fixed, shared
/// ports they make two instances collide and expose ports on every interface; perflab turns
/// them off unless the case sets them.
pub fn unused_default_listeners(major: u32, minor: u32) -> Vec<&'static str> {
    let mut v = Vec::new();
    if (major, minor) >= (3, 4) {
        v.push("admin_gui_listen");
    }
    if (major, minor) >= (3, 6) {
        v.push("status_listen");
    }
    v
}

/// A TOML value from a case's `kong_configs` as a Kong property value: strings as they are,
/// numbers and booleans in their usual spelling (`on`/`off` for booleans, as Kong writes them),
/// arrays joined with `, ` (Kong's list syntax). Tables are refused.
pub fn toml_to_conf_value(key: &str, v: &toml::Value) -> Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| toml_to_conf_value(key, i))
            .collect::<Result<Vec<_>>>()?
            .join(", "),
        toml::Value::Table(_) => {
            return Err(Error::Usage(format!(
                "kong_configs.{key}: a table is not a Kong property value (use a string)"
            )));
        }
    })
}

/// Merges `defaults`, then the case's `kong_configs`, then the `KONG_*` variables of `env`
/// (each later source wins), into one configuration.
pub fn merge<I, K, V>(
    defaults: KongConf,
    kong_configs: Option<&toml::Table>,
    env: I,
) -> Result<KongConf>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut conf = defaults;
    if let Some(t) = kong_configs {
        for (k, v) in t {
            conf.insert(k.to_ascii_lowercase(), toml_to_conf_value(k, v)?);
        }
    }
    conf.extend(env_overrides(env));
    Ok(conf)
}

/// The text of a `kong.conf`: one `key = value` line per property. `#` starts a comment in
/// Kong's configuration files, so it is escaped as `\#` in values.
pub fn render(conf: &KongConf) -> String {
    let mut s = String::from("# kong.conf written by perflab\n");
    for (k, v) in conf {
        s.push_str(k);
        s.push_str(" = ");
        s.push_str(&v.replace('#', "\\#"));
        s.push('\n');
    }
    s
}

/// Reads a `kong.conf` back (comments and blank lines skipped, `\#` unescaped); used to check
/// rendered files and to read a user's file.
pub fn parse(text: &str) -> KongConf {
    let mut conf = KongConf::new();
    for line in text.lines() {
        // Cut at the first unescaped '#'.
        let mut out = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'#') => {
                    out.push('#');
                    chars.next();
                }
                '#' => break,
                c => out.push(c),
            }
        }
        if let Some((k, v)) = out.split_once('=') {
            let k = k.trim();
            if !k.is_empty() {
                conf.insert(k.to_string(), v.trim().to_string());
            }
        }
    }
    conf
}

/// What perflab sets for every Kong instance unless the case or the environment says otherwise.
#[derive(Debug, Clone)]
pub struct Defaults<'a> {
    /// Kong's prefix directory (its nginx config, pids, logs).
    pub prefix: &'a str,
    /// `proxy_listen` (an address:port, or `off`).
    pub proxy_listen: String,
    /// `admin_listen` (an address:port, or `off`).
    pub admin_listen: String,
    /// Worker processes.
    pub workers: u32,
    /// The error log path (both `proxy_error_log` and `admin_error_log`).
    pub error_log: &'a str,
}

impl Defaults<'_> {
    /// The defaults as properties: prefix, listens, error logs, `proxy_access_log = off`
    /// (Kong's framework used `/dev/null`; `off` skips the write entirely),
    /// `nginx_worker_processes`, `nginx_daemon = off` (Kong stays in the foreground, in the
    /// process group perflab started) and `anonymous_reports = off` (the lab's network rule).
    /// Listeners Kong opens by default (Kong Manager, status) are turned off per version by
    /// [`unused_default_listeners`].
    pub fn to_conf(&self) -> KongConf {
        let mut c = KongConf::new();
        c.insert("prefix".into(), self.prefix.to_string());
        c.insert("proxy_listen".into(), self.proxy_listen.clone());
        c.insert("admin_listen".into(), self.admin_listen.clone());
        c.insert("proxy_access_log".into(), "off".into());
        c.insert("proxy_error_log".into(), self.error_log.to_string());
        c.insert("admin_error_log".into(), self.error_log.to_string());
        c.insert("nginx_worker_processes".into(), self.workers.to_string());
        c.insert("nginx_daemon".into(), "off".into());
        c.insert("anonymous_reports".into(), "off".into());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::role::gateway::kong::test_support::*;
    use crate::role::gateway::kong::*;

    #[test]
    fn conf_precedence_is_defaults_then_case_then_kong_env() {
        let mut defaults = conf::KongConf::new();
        defaults.insert("nginx_worker_processes".into(), "2".into());
        defaults.insert("proxy_access_log".into(), "off".into());
        defaults.insert("admin_listen".into(), "127.0.0.1:8001".into());
        let case = settings(
            r#"nginx_worker_processes = "1"
            mem_cache_size = "256m"
            untrusted_lua = false
            plugins = ["bundled", "my-plugin"]
            "#,
        );
        let merged = conf::merge(
            defaults,
            Some(&case),
            env(&[
                ("KONG_MEM_CACHE_SIZE", "1g"),
                ("KONG_NGINX_HTTP_KEEPALIVE_REQUESTS", "10000"),
                ("PATH", "/usr/bin"),
                ("KONG_", "ignored"),
                ("XKONG_FOO", "ignored"),
                // Kong's dev environment exports KONG_PREFIX; listeners are per instance too.
                ("KONG_PREFIX", "/usr/local/kong"),
                ("KONG_ADMIN_LISTEN", "0.0.0.0:8001"),
            ]),
        )
        .unwrap();
        assert!(!merged.contains_key("prefix"), "KONG_PREFIX is ignored");
        assert_eq!(merged["nginx_worker_processes"], "1", "case beats defaults");
        assert_eq!(merged["mem_cache_size"], "1g", "KONG_* beats the case");
        assert_eq!(merged["nginx_http_keepalive_requests"], "10000");
        assert_eq!(merged["untrusted_lua"], "off");
        assert_eq!(merged["plugins"], "bundled, my-plugin");
        assert_eq!(merged["admin_listen"], "127.0.0.1:8001");
        assert!(!merged.contains_key("path") && !merged.contains_key(""));
        assert!(!merged.contains_key("foo"));

        let text = conf::render(&merged);
        assert!(text.contains("\nmem_cache_size = 1g\n"), "{text}");
        assert_eq!(conf::parse(&text), merged);

        let bad = settings("nginx = { a = 1 }");
        let err = conf::merge(conf::KongConf::new(), Some(&bad), env(&[])).unwrap_err();
        assert!(err.to_string().contains("kong_configs.nginx"), "{err}");
    }

    #[test]
    fn per_instance_keys_never_come_from_the_environment() {
        let env = [
            ("KONG_PREFIX", "/usr/local/kong"),
            ("KONG_PROXY_LISTEN", "0.0.0.0:8000"),
            ("KONG_MEM_CACHE_SIZE", "1g"),
        ];
        let o = env_overrides(env);
        assert_eq!(o.len(), 1);
        assert_eq!(o["mem_cache_size"], "1g");
        let mut c = KongConf::new();
        c.insert("prefix".into(), "/lab/kong".into());
        c.insert("mem_cache_size".into(), "1g".into());
        assert_eq!(
            pinned_env(&c),
            vec![("KONG_PREFIX".to_string(), "/lab/kong".to_string())]
        );
    }

    #[test]
    fn unused_listeners_follow_kongs_defaults_per_version() {
        assert!(unused_default_listeners(3, 3).is_empty());
        assert_eq!(unused_default_listeners(3, 4), vec!["admin_gui_listen"]);
        assert_eq!(
            unused_default_listeners(3, 9),
            vec!["admin_gui_listen", "status_listen"]
        );
    }

    #[test]
    fn escapes_and_parses_hashes() {
        let mut c = KongConf::new();
        c.insert("nginx_http_x".into(), "a#b".into());
        let text = render(&c);
        assert!(text.contains("nginx_http_x = a\\#b"));
        assert_eq!(parse(&text), c);
    }
}
