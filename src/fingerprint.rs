//! The environment fingerprint stored with every result: what machine, kernel, tools and
//! versions produced the numbers, so a figure can be reproduced or explained.
//!
//! [`collect`] runs once the lab's hosts exist (CPU, cores, SMT, governor, THP, kernel, container
//! runtime, load, each tool's path, version and sha256, perflab's identity, driver and network
//! mode); [`finish`] adds what is only known at the end (load after, what each gateway reported,
//! the load commands). The runner stores the result in `manifest.json`. [`differences`] says
//! what changed between two fingerprints (`perflab reproduce` prints it), [`compact`] is the
//! short form `perflab doctor` prints. Field list: docs/reproducibility.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::driver::Role;
use crate::host::{Cmd, Host};
use crate::result::RunRecord;
use crate::session::Session;
use crate::version::Version;

/// The tools whose path, version and hash are recorded on each lab host (terraform, which runs
/// on the controller, is recorded there when the terraform driver is used).
pub const TOOLS: &[(&str, &[&str])] = &[
    ("wrk", &["-v"]),
    ("nginx", &["-v"]),
    ("haproxy", &["-v"]),
    ("perf", &["--version"]),
    ("taskset", &["--version"]),
    ("pg_ctl", &["--version"]),
    ("kong", &["version"]),
];

fn read_text(host: &dyn Host, path: &str) -> Option<String> {
    host.read_file(Path::new(path))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
}

/// [`sha256_on_host`], remembered per host and path for the life of the process, because
/// several roles often share one machine and tools like dockerd are hundreds of megabytes.
pub fn file_sha256(host: &dyn Host, path: &str) -> String {
    if let Some(v) = sha256_cache(host, path, None) {
        return v;
    }
    let sha = sha256_on_host(host, path);
    sha256_cache(host, path, Some(sha.clone()));
    sha
}

/// The process-wide cache of [`file_sha256`]: looks `path` on `host` up, or stores `put`.
fn sha256_cache(host: &dyn Host, path: &str, put: Option<String>) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: Mutex<Option<HashMap<(String, String), String>>> = Mutex::new(None);
    let key = (
        host.name().to_string() + "@" + &host.address(),
        path.to_string(),
    );
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    match put {
        Some(v) => map.insert(key, v),
        None => map.get(&key).cloned(),
    }
}

/// sha256 of a file on a host: `sha256sum` there (native speed, and no copy of a large binary
/// over SSH), else the bytes read back and hashed here. Empty when the file cannot be read.
pub fn sha256_on_host(host: &dyn Host, path: &str) -> String {
    if let Ok(o) = host.run(
        &Cmd::new("sha256sum").arg("--").arg(path),
        Duration::from_secs(60),
    ) && o.success()
        && let Some(h) = o.stdout_text().split_whitespace().next()
        && h.len() == 64
    {
        return h.to_string();
    }
    host.read_file(Path::new(path))
        .map(|b| crate::util::hash::sha256_hex(&b))
        .unwrap_or_default()
}

/// Facts about one tool on one host: path, the file it resolves to, version text, sha256.
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
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout_text().trim().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| path.clone());
    let sha = file_sha256(host, &real);
    json!({ "found": true, "path": path, "resolved": real, "version": version, "sha256": sha })
}

fn cpuinfo_field<T: std::str::FromStr>(cpuinfo: &str, key: &str) -> Option<T> {
    cpuinfo
        .lines()
        .find(|l| l.split(':').next().map(str::trim) == Some(key))
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// The host's container runtime and virtualisation, from `systemd-detect-virt` where it exists,
/// else from the usual markers (`/.dockerenv`, `/run/.containerenv`, `/proc/1/cgroup`, the
/// `hypervisor` CPU flag).
pub fn container_info(host: &dyn Host, cpuinfo: &str) -> Value {
    let detect = |flag: &str| {
        host.run(
            &Cmd::new("systemd-detect-virt").arg(flag),
            Duration::from_secs(10),
        )
        .ok()
        .map(|o| o.stdout_text().trim().to_string())
        .filter(|s| !s.is_empty())
    };
    let cgroup = read_text(host, "/proc/1/cgroup").unwrap_or_default();
    let marker = if host.read_file(Path::new("/.dockerenv")).is_ok() {
        Some(("docker", "/.dockerenv"))
    } else if host.read_file(Path::new("/run/.containerenv")).is_ok() {
        Some(("podman", "/run/.containerenv"))
    } else if cgroup.contains("kubepods") {
        Some(("kubernetes", "/proc/1/cgroup"))
    } else if cgroup.contains("docker") {
        Some(("docker", "/proc/1/cgroup"))
    } else if cgroup.contains("containerd") {
        Some(("containerd", "/proc/1/cgroup"))
    } else if cgroup.contains("lxc") {
        Some(("lxc", "/proc/1/cgroup"))
    } else {
        None
    };
    let (runtime, detected_by) = match (detect("-c"), marker) {
        (Some(r), _) if r != "none" => (r, "systemd-detect-virt -c".to_string()),
        (_, Some((r, by))) => (r.to_string(), by.to_string()),
        (Some(r), None) => (r, "systemd-detect-virt -c".to_string()),
        (None, None) => ("none".to_string(), "no marker found".to_string()),
    };
    let hypervisor_flag = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    let virtualization = detect("-v").unwrap_or_else(|| {
        if hypervisor_flag {
            "vm (hypervisor CPU flag)".into()
        } else {
            "none".into()
        }
    });
    json!({ "runtime": runtime, "detected_by": detected_by, "virtualization": virtualization })
}

/// Facts about one host: CPU (model, online CPUs, physical cores, SMT), kernel, governor, THP,
/// container runtime, and the load average now (`load_before`; [`finish`] adds `load_after`).
pub fn host_info(host: &dyn Host) -> Value {
    let cpuinfo = read_text(host, "/proc/cpuinfo").unwrap_or_default();
    let model: Option<String> = cpuinfo_field(&cpuinfo, "model name");
    let siblings: Option<u32> = cpuinfo_field(&cpuinfo, "siblings");
    let cores_per_socket: Option<u32> = cpuinfo_field(&cpuinfo, "cpu cores");
    let sockets = {
        let mut ids: Vec<&str> = cpuinfo
            .lines()
            .filter(|l| l.starts_with("physical id"))
            .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
            .collect();
        ids.sort();
        ids.dedup();
        ids.len().max(1) as u32
    };
    // The kernel's own answer first (it knows when SMT is switched off); cpuinfo otherwise.
    let smt = match read_text(host, "/sys/devices/system/cpu/smt/active").as_deref() {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => match (siblings, cores_per_socket) {
            (Some(s), Some(c)) => Some(s > c),
            _ => None,
        },
    };
    json!({
        "name": host.name(),
        "address": host.address(),
        "cpu_model": model,
        "cpus_online": crate::session::cpu_count(host),
        "cores": cores_per_socket.map(|c| c * sockets),
        "sockets": sockets,
        "smt": smt,
        "kernel": read_text(host, "/proc/sys/kernel/osrelease"),
        "governor": read_text(host, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "thp": read_text(host, "/sys/kernel/mm/transparent_hugepage/enabled"),
        "load_before": read_text(host, "/proc/loadavg"),
        "boot_id": read_text(host, "/proc/sys/kernel/random/boot_id"),
        "container": container_info(host, &cpuinfo),
    })
}

/// sha256 of a file on this machine (`sha256sum` when on PATH: a debug build hashes slowly).
fn sha256_local(path: &Path) -> Option<String> {
    let mut c = std::process::Command::new("sha256sum");
    c.arg("--").arg(path);
    if let Ok(o) = crate::host::process_group::output_tied(c)
        && o.status.success()
        && let Some(h) = String::from_utf8_lossy(&o.stdout).split_whitespace().next()
        && h.len() == 64
    {
        return Some(h.to_string());
    }
    std::fs::read(path)
        .ok()
        .map(|b| crate::util::hash::sha256_hex(&b))
}

/// A commit as a packager records it (the flake passes `self.rev`, `self.dirtyRev` =
/// `<rev>-dirty`, or `dirty` for an uncommitted tree): (commit, dirty).
pub fn packaged_commit(c: &str) -> (Option<String>, Option<bool>) {
    match c.strip_suffix("-dirty") {
        _ if c == "dirty" => (None, Some(true)),
        Some(rev) => (Some(rev.to_string()), Some(true)),
        None => (Some(c.to_string()), Some(false)),
    }
}

/// perflab's own identity: version, the commit of the checkout it was built from (`PERFLAB_COMMIT`
/// when set, else `PERFLAB_BUILD_COMMIT` as set at build time by a packager such as the flake;
/// else read from the source checkout at run time, with `dirty`
/// when tracked files differ from it), the sha256 of the running binary, and — when run from
/// the flake — the nixpkgs revision (`PERFLAB_NIXPKGS_REV`) and toolchain.
pub fn perflab_info() -> Value {
    let given = std::env::var("PERFLAB_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| option_env!("PERFLAB_BUILD_COMMIT").map(str::to_string));
    let (commit, dirty) = match given {
        Some(c) => packaged_commit(&c),
        None => match git2::Repository::discover(env!("CARGO_MANIFEST_DIR")) {
            Ok(r) => {
                let commit = r
                    .head()
                    .ok()
                    .and_then(|h| h.target())
                    .map(|o| o.to_string());
                let mut so = git2::StatusOptions::new();
                so.include_untracked(false).include_ignored(false);
                let dirty = r.statuses(Some(&mut so)).ok().map(|s| !s.is_empty());
                (commit, dirty)
            }
            Err(_) => (None, None),
        },
    };
    let exe = std::env::current_exe().ok();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": commit,
        "dirty": dirty,
        "binary": exe.as_ref().map(|p| p.display().to_string()),
        "binary_sha256": exe.as_deref().and_then(sha256_local),
        "nixpkgs_rev": std::env::var("PERFLAB_NIXPKGS_REV").ok(),
        "toolchain": std::env::var("PERFLAB_TOOLCHAIN").unwrap_or_else(|_| "system".into()),
    })
}

/// Asks a host about every tool of [`TOOLS`] in one command (a round trip costs 0.1–0.3 s on
/// container and SSH hosts): for each, `T <name>`, then `P <path>` (or nothing when it is not
/// on PATH), `V <first non-blank line of its version output>`, `R <resolved path>` and, where
/// `sha256sum` exists, `S <sha256>`. Arguments: `name nargs args…` per tool.
const TOOLS_SCRIPT: &str = r#"export CHECKPOINT_DISABLE=1
while [ $# -gt 0 ]; do
  name=$1; n=$2; shift 2
  args=""; i=0
  while [ $i -lt "$n" ]; do args="$args $1"; shift; i=$((i+1)); done
  echo "T $name"
  p=$(command -v "$name" 2>/dev/null) || continue
  case $p in /*) ;; *) continue;; esac
  echo "P $p"
  v=$("$p" $args </dev/null 2>&1 | while IFS= read -r l; do case $l in *[![:space:]]*) echo "$l"; break;; esac; done)
  echo "V $v"
  r=$(readlink -f "$p" 2>/dev/null) || r=$p
  echo "R ${r:-$p}"
  if command -v sha256sum >/dev/null 2>&1; then
    h=$(sha256sum -- "${r:-$p}" 2>/dev/null) && echo "S ${h%% *}"
  fi
done"#;

/// The [`TOOLS`] of a host (path, version, resolved path, hash), asked in one command; the
/// same as [`tool_info`] tool by tool.
pub fn tools_of(host: &dyn Host) -> Value {
    let mut argv: Vec<String> = Vec::new();
    for (name, args) in TOOLS {
        argv.push((*name).to_string());
        argv.push(args.len().to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
    }
    // When the script cannot run at all, every tool is asked for on its own below.
    let out = host
        .run(
            &Cmd::new("sh")
                .arg("-c")
                .arg(TOOLS_SCRIPT)
                .arg("sh")
                .args(argv),
            Duration::from_secs(120),
        )
        .map(|o| o.stdout_text())
        .unwrap_or_default();
    let mut t = serde_json::Map::new();
    for block in out.split("\nT ").map(|b| b.trim_start_matches("T ")) {
        let Some(name) = block
            .lines()
            .next()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let field = |tag: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(tag))
                .map(|v| v.trim().to_string())
        };
        let info = match field("P ") {
            None => json!({ "found": false }),
            Some(path) => {
                let real = field("R ")
                    .filter(|r| !r.is_empty())
                    .unwrap_or(path.clone());
                let sha = match field("S ").filter(|h| h.len() == 64) {
                    Some(h) => {
                        sha256_cache(host, &real, Some(h.clone()));
                        h
                    }
                    None => file_sha256(host, &real),
                };
                json!({
                    "found": true,
                    "path": path,
                    "resolved": real,
                    "version": field("V ").unwrap_or_default(),
                    "sha256": sha,
                })
            }
        };
        t.insert(name.to_string(), info);
    }
    // Tools the script gave no answer for, one by one.
    for (name, args) in TOOLS {
        if !t.contains_key(*name) {
            t.insert((*name).into(), tool_info(host, name, args));
        }
    }
    Value::Object(t)
}

/// Everything, for a session's hosts and the versions in play, at the start of an invocation.
/// [`finish`] completes it at the end.
pub fn collect(session: &mut Session, versions: &[Version]) -> Value {
    let mut hosts = serde_json::Map::new();
    let mut tools = serde_json::Map::new();
    let driver = session.driver_info();
    // The local driver's roles are one machine: hash its tools once.
    let same_machine = driver["driver"] == "local";
    for role in [Role::Gateway, Role::Worker] {
        if let Ok(h) = session.host(role, "default") {
            hosts.insert(role.as_str().into(), host_info(h.as_ref()));
            let t = match tools.values().next() {
                Some(t) if same_machine => t.clone(),
                _ => tools_of(h.as_ref()),
            };
            tools.insert(role.as_str().into(), t);
        }
    }
    // A version that is an image runs its gateway in a container of that image: its tools are
    // that image's (`tools["gateway image:<ref>"]`). Making the host here also pulls the image
    // before the first run; a failure is reported by the run that needs it.
    for v in versions {
        if let crate::version::VersionKind::Image { image } = &v.kind
            && let Ok(h) = session.host_from_image(
                Role::Gateway,
                "default",
                &crate::driver::GatewayImage::new(image.clone()),
            )
        {
            tools.insert(format!("gateway {}", v.label), tools_of(h.as_ref()));
        }
    }
    // Again: the images just made are in it now.
    let driver = session.driver_info();
    let mut controller = serde_json::Map::new();
    if driver["driver"] == "terraform"
        && let Ok(local) = crate::host::LocalHost::new("controller", &std::env::temp_dir())
    {
        controller.insert(
            "terraform".into(),
            tool_info(&local, "terraform", &["version"]),
        );
    }
    json!({
        "collected_unix_s": crate::util::time::now_unix(),
        "perflab": perflab_info(),
        "network": driver.get("network").cloned().unwrap_or(Value::Null),
        "driver": driver,
        "hosts": hosts,
        "tools": tools,
        "controller_tools": controller,
        "versions": versions,
    })
}

/// Completes a fingerprint made by [`collect`] once the runs are done: each host's load
/// average now (`load_after`), what each version's gateway reported itself to be, and the
/// distinct load commands run. Does nothing when `fp` is not a fingerprint (setup failed).
pub fn finish(fp: &mut Value, session: &mut Session, runs: &[RunRecord]) {
    let Some(obj) = fp.as_object_mut() else {
        return;
    };
    if let Some(hosts) = obj.get_mut("hosts").and_then(Value::as_object_mut) {
        for (name, info) in hosts.iter_mut() {
            let role = match name.as_str() {
                "gateway" => Role::Gateway,
                "worker" => Role::Worker,
                _ => continue,
            };
            if let (Ok(h), Some(info)) = (session.host(role, "default"), info.as_object_mut()) {
                info.insert(
                    "load_after".into(),
                    json!(read_text(h.as_ref(), "/proc/loadavg")),
                );
            }
        }
    }
    let mut gateways: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut commands: BTreeSet<String> = BTreeSet::new();
    for r in runs {
        gateways
            .entry(r.version.clone())
            .or_default()
            .insert(format!("{}: {}", r.gateway, r.version_detail));
        commands.insert(r.load_command.clone());
    }
    obj.insert("gateway_versions".into(), json!(gateways));
    obj.insert("load_commands".into(), json!(commands));
    obj.insert(
        "finished_unix_s".into(),
        json!(crate::util::time::now_unix()),
    );
}

/// The fingerprint of this machine alone (what `perflab doctor` shows): host facts, tools and
/// perflab's identity, without a lab.
pub fn local() -> Value {
    let Ok(host) = crate::host::LocalHost::new("local", &std::env::temp_dir()) else {
        return Value::Null;
    };
    json!({
        "perflab": perflab_info(),
        "hosts": { "local": host_info(&host) },
        "tools": { "local": tools_of(&host) },
    })
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

fn short(v: &Value, n: usize) -> String {
    show(v).chars().take(n).collect()
}

/// The selected value of a sysfs multiple-choice file (`always [madvise] never` → `madvise`).
fn selected(v: &Value) -> String {
    let s = show(v);
    match (s.find('['), s.find(']')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].to_string(),
        _ => s,
    }
}

/// A compact, human-readable form of a fingerprint: a few lines per host and one per tool found.
pub fn compact(fp: &Value) -> String {
    let mut out = String::new();
    let p = &fp["perflab"];
    out.push_str(&format!(
        "  perflab   {} · commit {}{} · binary sha256 {} · nixpkgs {} · toolchain {}\n",
        show(&p["version"]),
        short(&p["commit"], 12),
        if p["dirty"] == true { " (dirty)" } else { "" },
        short(&p["binary_sha256"], 16),
        short(&p["nixpkgs_rev"], 12),
        show(&p["toolchain"]),
    ));
    if let Some(n) = fp.get("network") {
        out.push_str(&format!("  network   {}\n", show(n)));
    }
    for (role, h) in fp["hosts"].as_object().into_iter().flatten() {
        let c = &h["container"];
        out.push_str(&format!(
            "  {role:<9} {} · {} CPUs online, {} cores, SMT {} · container {} · virtualization {}\n",
            show(&h["cpu_model"]),
            show(&h["cpus_online"]),
            show(&h["cores"]),
            if h["smt"] == true { "on" } else if h["smt"] == false { "off" } else { "?" },
            show(&c["runtime"]),
            show(&c["virtualization"]),
        ));
        out.push_str(&format!(
            "  {:<9} kernel {} · governor {} · THP {} · load {}{}\n",
            "",
            show(&h["kernel"]),
            show(&h["governor"]),
            selected(&h["thp"]),
            show(&h["load_before"]),
            h.get("load_after")
                .map(|l| format!(" → {}", show(l)))
                .unwrap_or_default(),
        ));
        for (name, t) in fp["tools"][role.as_str()].as_object().into_iter().flatten() {
            if t["found"] == true {
                out.push_str(&format!(
                    "  {:<9} {name:<10} {} sha256 {} · {}\n",
                    "",
                    show(&t["resolved"]),
                    short(&t["sha256"], 16),
                    show(&t["version"]),
                ));
            }
        }
    }
    out
}

/// Host facts whose change can move the numbers.
const HOST_KEYS: &[&str] = &[
    "cpu_model",
    "cpus_online",
    "cores",
    "sockets",
    "smt",
    "kernel",
    "governor",
    "thp",
];

/// What differs between two fingerprints, as one line per difference (`gateway kernel: A → B`):
/// perflab's version, commit and binary, the nixpkgs revision, driver and network mode, each
/// host's CPU, cores, SMT, kernel, governor, THP and container runtime, each tool's presence and
/// sha256 (with versions), and what each version's gateway reported. Load, times, addresses
/// and boot ids are not compared (they differ between any two invocations). A field absent from
/// either side (a fingerprint from an older perflab) is skipped.
pub fn differences(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |what: String, x: Option<&Value>, y: Option<&Value>| {
        if let (Some(x), Some(y)) = (x, y)
            && x != y
        {
            out.push(format!("{what}: {} → {}", show(x), show(y)));
        }
    };
    for (key, what) in [
        ("version", "perflab version"),
        ("commit", "perflab commit"),
        ("dirty", "perflab checkout dirty"),
        ("binary_sha256", "perflab binary sha256"),
        ("nixpkgs_rev", "nixpkgs revision"),
        ("toolchain", "toolchain"),
    ] {
        cmp(what.into(), a["perflab"].get(key), b["perflab"].get(key));
    }
    for key in [
        "driver",
        "network",
        "engine",
        "image_id",
        "version_images",
        "provider",
    ] {
        cmp(
            format!("driver {key}"),
            a["driver"].get(key),
            b["driver"].get(key),
        );
    }
    let roles = |v: &Value, k: &str| -> BTreeSet<String> {
        v[k].as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let host_roles: BTreeSet<String> = roles(a, "hosts")
        .union(&roles(b, "hosts"))
        .cloned()
        .collect();
    for role in &host_roles {
        let (ha, hb) = (&a["hosts"][role.as_str()], &b["hosts"][role.as_str()]);
        for key in HOST_KEYS {
            cmp(
                format!("{role} {}", key.replace('_', " ")),
                ha.get(*key),
                hb.get(*key),
            );
        }
        for key in ["runtime", "virtualization"] {
            cmp(
                format!("{role} container {key}"),
                ha["container"].get(key),
                hb["container"].get(key),
            );
        }
    }
    let tool_roles: BTreeSet<String> = roles(a, "tools")
        .union(&roles(b, "tools"))
        .cloned()
        .collect();
    for role in &tool_roles {
        let (ta, tb) = (&a["tools"][role.as_str()], &b["tools"][role.as_str()]);
        let names: BTreeSet<String> = [ta, tb]
            .iter()
            .filter_map(|t| t.as_object())
            .flat_map(|o| o.keys().cloned())
            .collect();
        for name in names {
            let (x, y) = (&ta[name.as_str()], &tb[name.as_str()]);
            if x.is_null() || y.is_null() {
                continue;
            }
            if x["found"] != y["found"] {
                let state = |t: &Value| {
                    if t["found"] == true {
                        format!("found ({})", show(&t["resolved"]))
                    } else {
                        "missing".to_string()
                    }
                };
                out.push(format!("{role} tool {name}: {} → {}", state(x), state(y)));
            } else if x["sha256"] != y["sha256"] {
                let version = if x["version"] != y["version"] {
                    format!(
                        " (version {} → {})",
                        show(&x["version"]),
                        show(&y["version"])
                    )
                } else {
                    " (same version text)".to_string()
                };
                out.push(format!(
                    "{role} tool {name}: sha256 {} → {}{version}",
                    short(&x["sha256"], 16),
                    short(&y["sha256"], 16)
                ));
            }
        }
    }
    if let (Some(ga), Some(gb)) = (
        a.get("gateway_versions").and_then(Value::as_object),
        b.get("gateway_versions").and_then(Value::as_object),
    ) {
        for (label, x) in ga {
            if let Some(y) = gb.get(label)
                && x != y
            {
                let join = |v: &Value| {
                    v.as_array()
                        .map(|a| a.iter().map(show).collect::<Vec<_>>().join(", "))
                        .unwrap_or_else(|| show(v))
                };
                out.push(format!(
                    "gateway of version {label}: {} → {}",
                    join(x),
                    join(y)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaged_commits_say_whether_the_tree_was_dirty() {
        assert_eq!(
            packaged_commit("abc123"),
            (Some("abc123".into()), Some(false))
        );
        assert_eq!(
            packaged_commit("abc123-dirty"),
            (Some("abc123".into()), Some(true))
        );
        assert_eq!(packaged_commit("dirty"), (None, Some(true)));
    }

    fn fp() -> Value {
        json!({
            "perflab": { "version": "0.1.0", "commit": "abc", "binary_sha256": "11", "nixpkgs_rev": null },
            "driver": { "driver": "local", "network": "loopback" },
            "hosts": { "gateway": {
                "cpu_model": "AMD EPYC", "cpus_online": 2, "cores": 2, "sockets": 1, "smt": false,
                "kernel": "6.1.0", "governor": null, "thp": "always [madvise] never",
                "load_before": "1.00 1.00 1.00 1/100 1", "boot_id": "x",
                "container": { "runtime": "docker", "virtualization": "kvm" } } },
            "tools": { "gateway": {
                "wrk": { "found": true, "resolved": "/usr/bin/wrk", "sha256": "aaaa", "version": "wrk 4.1.0" },
                "kong": { "found": false } } },
            "gateway_versions": { "current": ["nginx: nginx/1.22.1"] },
        })
    }

    #[test]
    fn same_fingerprint_has_no_differences_whatever_the_load() {
        let mut b = fp();
        b["hosts"]["gateway"]["load_before"] = json!("9.00 9.00 9.00 9/900 9");
        b["hosts"]["gateway"]["boot_id"] = json!("y");
        assert!(differences(&fp(), &b).is_empty());
    }

    #[test]
    fn differences_name_the_field_and_both_values() {
        let mut b = fp();
        b["hosts"]["gateway"]["kernel"] = json!("6.18.44");
        b["hosts"]["gateway"]["governor"] = json!("performance");
        b["tools"]["gateway"]["wrk"]["sha256"] = json!("bbbb");
        b["tools"]["gateway"]["kong"] = json!({ "found": true, "resolved": "/usr/bin/kong" });
        b["perflab"]["commit"] = json!("def");
        b["gateway_versions"]["current"] = json!(["nginx: nginx/1.24.0"]);
        let d = differences(&fp(), &b);
        for want in [
            "gateway kernel: 6.1.0 → 6.18.44",
            "gateway governor: - → performance",
            "gateway tool wrk: sha256 aaaa → bbbb (same version text)",
            "gateway tool kong: missing → found (/usr/bin/kong)",
            "perflab commit: abc → def",
            "gateway of version current: nginx: nginx/1.22.1 → nginx: nginx/1.24.0",
        ] {
            assert!(d.iter().any(|l| l == want), "{want:?} not in {d:#?}");
        }
        assert_eq!(d.len(), 6, "{d:#?}");
    }

    #[test]
    fn fields_missing_from_an_older_fingerprint_are_skipped() {
        let mut old = fp();
        old["hosts"]["gateway"]
            .as_object_mut()
            .unwrap()
            .remove("container");
        old["hosts"]["gateway"]
            .as_object_mut()
            .unwrap()
            .remove("cores");
        assert!(differences(&old, &fp()).is_empty());
    }

    #[test]
    fn compact_shows_the_selected_thp_mode_and_tools() {
        let c = compact(&fp());
        assert!(c.contains("THP madvise"), "{c}");
        assert!(c.contains("/usr/bin/wrk sha256 aaaa"), "{c}");
        assert!(!c.contains("kong"), "{c}");
    }
}
