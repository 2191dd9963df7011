//! The environment fingerprint stored with every result: what machine, kernel, tools and
//! versions produced the numbers, so a figure can be reproduced or explained.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::driver::Role;
use crate::host::{Cmd, Host};
use crate::session::Session;
use crate::version::Version;

/// The tools whose path, version and hash are recorded.
pub const TOOLS: &[(&str, &[&str])] = &[
    ("wrk", &["-v"]),
    ("nginx", &["-v"]),
    ("haproxy", &["-v"]),
    ("perf", &["--version"]),
    ("pg_ctl", &["--version"]),
    ("terraform", &["version"]),
    ("docker", &["--version"]),
    ("kong", &["version"]),
];

fn read_text(host: &dyn Host, path: &str) -> Option<String> {
    host.read_file(Path::new(path))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
}

/// sha256 of a file on a host: its own `sha256sum` (native speed, no transfer), else read and
/// hashed here. Results are remembered per host and path for the life of the process, because
/// several roles often share one machine and tools like dockerd are hundreds of megabytes.
pub fn file_sha256(host: &dyn Host, path: &str) -> String {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: Mutex<Option<HashMap<(String, String), String>>> = Mutex::new(None);
    let key = (
        host.name().to_string() + "@" + &host.address(),
        path.to_string(),
    );
    if let Some(v) = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return v.clone();
    }
    let native = host
        .run(&Cmd::new("sha256sum").arg(path), Duration::from_secs(60))
        .ok()
        .filter(|o| o.success())
        .and_then(|o| {
            o.stdout_text()
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .filter(|h| h.len() == 64);
    let sha = native.unwrap_or_else(|| {
        host.read_file(Path::new(path))
            .map(|b| sha256_hex(&b))
            .unwrap_or_default()
    });
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, sha.clone());
    sha
}

/// sha256 of a file's bytes, as hex.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Facts about one tool on one host: path, version text, sha256.
pub fn tool_info(host: &dyn Host, name: &str, version_args: &[&str]) -> Value {
    let Some(path) = host.which(name) else {
        return json!({ "found": false });
    };
    let version = host
        .run(
            &Cmd::new(&path).args(version_args.iter().copied()),
            Duration::from_secs(10),
        )
        .map(|o| {
            o.combined_text()
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let real = host
        .run(
            &Cmd::new("readlink").arg("-f").arg(&path),
            Duration::from_secs(10),
        )
        .map(|o| o.stdout_text().trim().to_string())
        .unwrap_or_else(|_| path.clone());
    let sha = file_sha256(host, &real);
    json!({ "found": true, "path": path, "resolved": real, "version": version, "sha256": sha })
}

/// Facts about one host: CPU, kernel, governor, THP, load.
pub fn host_info(host: &dyn Host) -> Value {
    let cpuinfo = read_text(host, "/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let siblings: Option<u32> = cpuinfo
        .lines()
        .find(|l| l.starts_with("siblings"))
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().parse().ok());
    let cores: Option<u32> = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu cores"))
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().parse().ok());
    json!({
        "name": host.name(),
        "address": host.address(),
        "cpu_model": model,
        "cpus_online": crate::session::cpu_count(host),
        "smt": match (siblings, cores) { (Some(s), Some(c)) => Some(s > c), _ => None },
        "kernel": read_text(host, "/proc/sys/kernel/osrelease"),
        "governor": read_text(host, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "thp": read_text(host, "/sys/kernel/mm/transparent_hugepage/enabled"),
        "loadavg": read_text(host, "/proc/loadavg"),
        "boot_id": read_text(host, "/proc/sys/kernel/random/boot_id"),
        "container": read_text(host, "/proc/1/cgroup").map(|c| c.contains("docker") || Path::new("/.dockerenv").exists()),
    })
}

/// perflab's own version and, when built from a checkout, its commit.
pub fn perflab_info() -> Value {
    let commit = git2::Repository::discover(env!("CARGO_MANIFEST_DIR"))
        .ok()
        .and_then(|r| {
            r.head()
                .ok()
                .and_then(|h| h.target())
                .map(|o| o.to_string())
        });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": commit,
        "nixpkgs_rev": std::env::var("PERFLAB_NIXPKGS_REV").ok(),
        "toolchain": std::env::var("PERFLAB_TOOLCHAIN").unwrap_or_else(|_| "system".into()),
    })
}

/// Everything, for a session's hosts and the versions in play.
pub fn collect(session: &mut Session, versions: &[Version]) -> Value {
    let mut hosts = serde_json::Map::new();
    let mut tools = serde_json::Map::new();
    for role in [Role::Gateway, Role::Worker] {
        if let Ok(h) = session.host(role, "default") {
            hosts.insert(role.as_str().into(), host_info(h.as_ref()));
            let mut t = serde_json::Map::new();
            for (name, args) in TOOLS {
                t.insert((*name).into(), tool_info(h.as_ref(), name, args));
            }
            tools.insert(role.as_str().into(), Value::Object(t));
        }
    }
    json!({
        "collected_unix_s": crate::store::now_unix(),
        "perflab": perflab_info(),
        "driver": session.driver_info(),
        "hosts": hosts,
        "tools": tools,
        "versions": versions,
    })
}
