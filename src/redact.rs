//! Keeping secrets out of results, logs and reports.
//!
//! Driver options carry terraform variables (`var.NAME=VALUE`, often cloud tokens) and may carry
//! other credentials. Their values must never reach a results folder (`manifest.json` is 0644 and
//! results are shared), a log line or a report. Two layers:
//!
//! - **structured**: [`driver_options`] and [`argv`] replace the value of every `var.*` option and
//!   of every option whose name looks like a secret ([`is_secret_key`]) with [`REDACTED`] before
//!   the manifest records them;
//! - **by value**: the values themselves are registered ([`register`]) when the command line is
//!   read, and [`scrub`] replaces every occurrence in whatever the store writes (manifest,
//!   results, copied logs, reports) and in perflab's own error messages. Values shorter than
//!   [`MIN_SCRUB_LEN`] are only redacted structurally: replacing every `3` of a file would
//!   corrupt it.
//!
//! `perflab reproduce` cannot re-use a redacted value: it drops such options, so the driver falls
//! back to the environment (`TF_VAR_NAME`), or the user passes them again with `--driver-opt`.

use std::sync::Mutex;

/// `KEY=VALUE` options, as the drivers take them (the drivers' `DriverOptions` is this map;
/// named here so that redaction, a leaf of the layering, needs nothing of the drivers).
pub type DriverOptions = std::collections::BTreeMap<String, String>;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Shortest value that is also scrubbed by value from everything written.
pub const MIN_SCRUB_LEN: usize = 6;

/// Words that make an option name a secret (matched against the name's words, split at `.`, `-`
/// and `_`, and as a suffix: `apitoken`, `db_password`).
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pass",
    "key",
    "apikey",
    "credential",
    "credentials",
    "auth",
];

/// Option names that contain a secret word but hold no secret.
const NOT_SECRET: &[&str] = &["host-keys"];

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// True for `var.*` options and options named like a secret (token, secret, password, key…).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase();
    if k.starts_with("var.") {
        return true;
    }
    if NOT_SECRET.contains(&k.as_str()) {
        return false;
    }
    k.split(['.', '-', '_']).any(|w| {
        SECRET_WORDS
            .iter()
            .any(|s| w == *s || (s.len() > 3 && w.ends_with(s)))
    })
}

/// A copy of `opts` with secret values replaced by [`REDACTED`].
pub fn driver_options(opts: &DriverOptions) -> DriverOptions {
    opts.iter()
        .map(|(k, v)| {
            let v = if is_secret_key(k) {
                REDACTED.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// Redacts one `KEY=VALUE` option string.
pub fn option_string(o: &str) -> String {
    match o.split_once('=') {
        Some((k, _)) if is_secret_key(k) => format!("{k}={REDACTED}"),
        _ => scrub_str(o),
    }
}

/// A command line with the values of secret `--driver-opt KEY=VALUE` options redacted (both
/// `--driver-opt K=V` and `--driver-opt=K=V`), and registered secrets scrubbed from every word.
pub fn argv(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_option = false;
    for a in args {
        if next_is_option {
            out.push(option_string(a));
            next_is_option = false;
        } else if a == "--driver-opt" {
            out.push(a.clone());
            next_is_option = true;
        } else if let Some(o) = a.strip_prefix("--driver-opt=") {
            out.push(format!("--driver-opt={}", option_string(o)));
        } else {
            out.push(scrub_str(a));
        }
    }
    out
}

/// Remembers the secret values among `opts`, so that [`scrub`] removes them from everything
/// written later in this process.
pub fn register(opts: &DriverOptions) {
    let mut s = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    for (k, v) in opts {
        if is_secret_key(k) && v.len() >= MIN_SCRUB_LEN && v != REDACTED && !s.contains(v) {
            s.push(v.clone());
        }
    }
    // Longest first, so a secret containing another is replaced whole.
    s.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// Remembers one secret value (a password perflab generated), as [`register`] does for options.
pub fn register_value(v: &str) {
    let mut s = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if v.len() >= MIN_SCRUB_LEN && !s.iter().any(|x| x == v) {
        s.push(v.to_string());
        s.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// `data` with every registered secret value replaced by [`REDACTED`].
pub fn scrub(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if secrets.is_empty() || !secrets.iter().any(|s| contains(data, s.as_bytes())) {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut out = data.to_vec();
    for s in secrets.iter() {
        out = replace(&out, s.as_bytes(), REDACTED.as_bytes());
    }
    std::borrow::Cow::Owned(out)
}

/// [`scrub`] for text.
pub fn scrub_str(s: &str) -> String {
    String::from_utf8_lossy(&scrub(s.as_bytes())).into_owned()
}

/// Options a stored manifest holds without their redacted values (see the module docs).
pub fn without_redacted(opts: &DriverOptions) -> (DriverOptions, Vec<String>) {
    let mut kept = DriverOptions::new();
    let mut dropped = Vec::new();
    for (k, v) in opts {
        if v == REDACTED {
            dropped.push(k.clone());
        } else {
            kept.insert(k.clone(), v.clone());
        }
    }
    (kept, dropped)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for k in [
            "var.net_octet",
            "var.api_token",
            "token",
            "api-token",
            "db_password",
            "ssh-key",
            "apikey",
            "client_secret",
            "AUTH",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "provider",
            "network",
            "host-keys",
            "lab",
            "ssh-user",
            "monkey-mode",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn argv_and_options_are_redacted() {
        let args: Vec<String> = [
            "perflab",
            "suite",
            "--driver-opt",
            "var.api_token=s3cr3t-value",
            "--driver-opt=password=hunter22",
            "--driver-opt",
            "provider=netns",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = argv(&args).join(" ");
        assert!(!r.contains("s3cr3t") && !r.contains("hunter22"), "{r}");
        assert!(r.contains("var.api_token=<redacted>") && r.contains("provider=netns"));
        let mut o = DriverOptions::new();
        o.insert("var.x".into(), "1".into());
        o.insert("network".into(), "bridge".into());
        let red = driver_options(&o);
        assert_eq!(red["var.x"], REDACTED);
        assert_eq!(red["network"], "bridge");
        let (kept, dropped) = without_redacted(&red);
        assert_eq!(dropped, vec!["var.x".to_string()]);
        assert!(kept.contains_key("network"));
    }

    #[test]
    fn registered_values_are_scrubbed() {
        let mut o = DriverOptions::new();
        o.insert("var.unit_test_token".into(), "tok-0123456789".into());
        o.insert("var.short".into(), "3".into());
        register(&o);
        assert_eq!(
            scrub_str("a tok-0123456789 b tok-0123456789 3"),
            "a <redacted> b <redacted> 3"
        );
    }
}
