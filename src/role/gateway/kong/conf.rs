//! `kong.conf` rendering: perflab's defaults, then the case's `kong_configs`, then `KONG_*`.
//!
//! Kong's framework (reference §1.2 `start_kong`, §6.5) added its defaults (prefix, listens,
//! logs, database) "unless provided" by the test, and copied **every `KONG_*` environment
//! variable of the controller** into the confs, lower-cased and without the prefix, overriding
//! what the test set. perflab keeps that precedence — defaults < case < environment — so a user
//! can flip any Kong property for a whole suite from the shell (`KONG_NGINX_WORKER_PROCESSES=4`).
//! The environment is an explicit input so the rule is testable without touching the process
//! environment.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Kong properties by name, in a stable (sorted) order.
pub type KongConf = BTreeMap<String, String>;

/// The `KONG_*` variables of `env` as Kong properties: `KONG_NGINX_WORKER_PROCESSES=4` becomes
/// `nginx_worker_processes = 4`. A bare `KONG_` is ignored.
pub fn env_overrides<I, K, V>(env: I) -> KongConf
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    env.into_iter()
        .filter_map(|(k, v)| {
            let key = k.as_ref().strip_prefix("KONG_")?;
            (!key.is_empty()).then(|| (key.to_ascii_lowercase(), v.as_ref().to_string()))
        })
        .collect()
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
    /// process group perflab started), `anonymous_reports = off` (the lab's network rule) and
    /// `admin_gui_listen = off` (Kong Manager would listen on every address, 0.0.0.0:8002 and
    /// :8445, and collide with any other Kong on the machine).
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
        c.insert("admin_gui_listen".into(), "off".into());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_parses_hashes() {
        let mut c = KongConf::new();
        c.insert("nginx_http_x".into(), "a#b".into());
        let text = render(&c);
        assert!(text.contains("nginx_http_x = a\\#b"));
        assert_eq!(parse(&text), c);
    }
}
