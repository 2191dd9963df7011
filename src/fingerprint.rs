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

/// Reads several small text files in one command (one round trip on a remote host); a file
/// that cannot be read is `None`. Falls back to one read per file when the host cannot run it.
fn read_texts<const N: usize>(host: &dyn Host, paths: &[&str; N]) -> [Option<String>; N] {
    const SCRIPT: &str = r#"for f in "$@"; do
  echo "@@perflab-file"
  cat "$f" 2>/dev/null || echo "@@perflab-missing"
done"#;
    let cmd = Cmd::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("sh")
        .args(paths.iter().copied());
    match host.run(&cmd, Duration::from_secs(30)) {
        Ok(o) if o.success() => {
            let text = o.stdout_text();
            let mut parts = text.split("@@perflab-file\n").skip(1);
            std::array::from_fn(|_| {
                parts
                    .next()
                    .filter(|p| !p.contains("@@perflab-missing"))
                    .map(|p| p.trim().to_string())
            })
        }
        _ => std::array::from_fn(|i| read_text(host, paths[i])),
    }
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
            &Cmd::new(&path)
                .args(version_args.iter().copied())
                .env("CHECKPOINT_DISABLE", "1"),
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
    let sha = host
        .read_file(Path::new(&real))
        .map(|b| sha256_hex(&b))
        .unwrap_or_default();
    json!({ "found": true, "path": path, "resolved": real, "version": version, "sha256": sha })
}

/// The script behind [`tools_info`]: for every `NAME ARGS…` argument, a `@@perflab-tool NAME`
/// line, then (when found) the path, the resolved path, its sha256 and the first line of the
/// version output. `CHECKPOINT_DISABLE=1` keeps `terraform version` from calling home.
const TOOLS_SCRIPT: &str = r#"T=""; command -v timeout >/dev/null 2>&1 && T="timeout 10"
for t in "$@"; do
  name=${t%% *}; args=${t#"$name"}
  echo "@@perflab-tool $name"
  p=$(command -v "$name" 2>/dev/null) || continue
  r=$(readlink -f "$p" 2>/dev/null) || r=$p
  echo "$p"; echo "$r"
  sha256sum "$r" 2>/dev/null | cut -d' ' -f1 | grep . || echo
  CHECKPOINT_DISABLE=1 $T "$p" $args </dev/null 2>&1 | grep -m1 '[^[:space:]]'
done
true"#;

/// [`tool_info`] for every tool of [`TOOLS`] in one command on the host (a remote host pays a
/// round trip per command, and a binary read back for hashing costs its whole size), falling
/// back to one tool at a time when the host cannot run the script.
pub fn tools_info(host: &dyn Host) -> serde_json::Map<String, Value> {
    let mut cmd = Cmd::new("sh").arg("-c").arg(TOOLS_SCRIPT).arg("sh");
    for (name, args) in TOOLS {
        cmd = cmd.arg(
            std::iter::once(*name)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let mut out = serde_json::Map::new();
    let text = match host.run(&cmd, Duration::from_secs(120)) {
        Ok(o) if o.success() => o.stdout_text(),
        _ => {
            for (name, args) in TOOLS {
                out.insert((*name).into(), tool_info(host, name, args));
            }
            return out;
        }
    };
    for block in text.split("@@perflab-tool ").skip(1) {
        let mut lines = block.lines();
        let Some(name) = lines.next().map(str::trim) else {
            continue;
        };
        let rest: Vec<&str> = lines.collect();
        let info = match rest.as_slice() {
            [] => json!({ "found": false }),
            [path, resolved, sha, version @ ..] => {
                let sha = if sha.trim().is_empty() {
                    host.read_file(Path::new(resolved))
                        .map(|b| sha256_hex(&b))
                        .unwrap_or_default()
                } else {
                    sha.trim().to_string()
                };
                json!({
                    "found": true,
                    "path": path.trim(),
                    "resolved": resolved.trim(),
                    "version": version.first().map(|v| v.trim()).unwrap_or(""),
                    "sha256": sha,
                })
            }
            _ => json!({ "found": false }),
        };
        out.insert(name.to_string(), info);
    }
    for (name, args) in TOOLS {
        if !out.contains_key(*name) {
            out.insert((*name).into(), tool_info(host, name, args));
        }
    }
    out
}

/// Facts about one host: CPU, kernel, governor, THP, load.
pub fn host_info(host: &dyn Host) -> Value {
    const FILES: [&str; 7] = [
        "/proc/cpuinfo",
        "/proc/sys/kernel/osrelease",
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/proc/loadavg",
        "/proc/sys/kernel/random/boot_id",
        "/proc/1/cgroup",
    ];
    let texts = read_texts(host, &FILES);
    let [cpuinfo, kernel, governor, thp, loadavg, boot_id, cgroup] = texts;
    let cpuinfo = cpuinfo.unwrap_or_default();
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
        "kernel": kernel,
        "governor": governor,
        "thp": thp,
        "loadavg": loadavg,
        "boot_id": boot_id,
        "container": cgroup.map(|c| c.contains("docker") || Path::new("/.dockerenv").exists()),
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
            tools.insert(role.as_str().into(), Value::Object(tools_info(h.as_ref())));
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
