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

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::driver::Role;
use crate::host::{Cmd, Host};
use crate::result::RunRecord;
use crate::session::Session;
use crate::version::Version;

/// The environment fingerprint of an invocation (`manifest.json`'s `fingerprint`). Every field
/// has a default, so fingerprints written by older perflab versions (with fewer fields) load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fingerprint {
    /// When [`collect`] ran (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_unix_s: Option<f64>,
    /// perflab's own identity.
    pub perflab: PerflabInfo,
    /// The driver's network mode (`loopback`, `host`, `bridge`, …).
    pub network: Option<String>,
    /// The driver's facts ([`crate::driver::Driver::describe`]: its own keys per driver).
    pub driver: Value,
    /// Facts per host, by role (`gateway`, `worker`; `local` for doctor's machine).
    pub hosts: BTreeMap<String, HostFacts>,
    /// The [`crate::tools::on_lab_hosts`] tools per host (by role; `gateway image:<ref>` for a
    /// version that runs from an image).
    pub tools: BTreeMap<String, BTreeMap<String, ToolInfo>>,
    /// Tools on the machine perflab runs on (terraform, with the terraform driver).
    pub controller_tools: BTreeMap<String, ToolInfo>,
    /// The versions in play.
    pub versions: Vec<Version>,
    /// What each version's gateway reported itself to be (`kind: detail`), by version label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_versions: Option<BTreeMap<String, BTreeSet<String>>>,
    /// The distinct load commands run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_commands: Option<BTreeSet<String>>,
    /// When [`finish`] ran (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_unix_s: Option<f64>,
}

/// perflab's own identity ([`perflab_info`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PerflabInfo {
    /// perflab's version.
    pub version: Option<String>,
    /// The commit it was built from.
    pub commit: Option<String>,
    /// Whether tracked files differed from that commit.
    pub dirty: Option<bool>,
    /// The running binary.
    pub binary: Option<String>,
    /// sha256 of the running binary.
    pub binary_sha256: Option<String>,
    /// The nixpkgs revision, when built by the flake.
    pub nixpkgs_rev: Option<String>,
    /// The toolchain (`system` outside Nix).
    pub toolchain: Option<String>,
}

/// Facts about one host ([`host_info`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostFacts {
    /// The host's name in the lab.
    pub name: Option<String>,
    /// The address other hosts reach it at.
    pub address: Option<String>,
    /// CPU model name.
    pub cpu_model: Option<String>,
    /// CPUs online.
    pub cpus_online: Option<u64>,
    /// Physical cores.
    pub cores: Option<u32>,
    /// Sockets.
    pub sockets: Option<u32>,
    /// Whether SMT (hyper-threading) is on.
    pub smt: Option<bool>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// CPU frequency governor of cpu0.
    pub governor: Option<String>,
    /// Transparent huge pages setting (`always [madvise] never`).
    pub thp: Option<String>,
    /// `/proc/loadavg` at the start.
    pub load_before: Option<String>,
    /// `/proc/loadavg` at the end ([`finish`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_after: Option<String>,
    /// The boot id (tells two boots of one machine apart).
    pub boot_id: Option<String>,
    /// Container runtime and virtualisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
}

/// A host's container runtime and virtualisation ([`container_info`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerInfo {
    /// `docker`, `podman`, `kubernetes`, `lxc`, … or `none`.
    pub runtime: Option<String>,
    /// What told: `systemd-detect-virt -c`, a marker file, or `no marker found`.
    pub detected_by: Option<String>,
    /// `kvm`, `vm (hypervisor CPU flag)`, … or `none`.
    pub virtualization: Option<String>,
}

/// One tool on one host ([`tool_info`]): absent, or where it is, what it says and its hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolInfo {
    /// Whether it is on PATH.
    pub found: bool,
    /// Its path on PATH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The file the path resolves to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// The first non-blank line of its version output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// sha256 of the resolved file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl ToolInfo {
    /// A tool that is not on PATH.
    fn missing() -> ToolInfo {
        ToolInfo::default()
    }
}

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
pub fn tool_info(host: &dyn Host, name: &str, version_args: &[&str]) -> ToolInfo {
    let Some(path) = host.which(name) else {
        return ToolInfo::missing();
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
    ToolInfo {
        found: true,
        path: Some(path),
        resolved: Some(real),
        version: Some(version),
        sha256: Some(sha),
    }
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
pub fn container_info(host: &dyn Host, cpuinfo: &str) -> ContainerInfo {
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
    ContainerInfo {
        runtime: Some(runtime),
        detected_by: Some(detected_by),
        virtualization: Some(virtualization),
    }
}

/// Facts about one host: CPU (model, online CPUs, physical cores, SMT), kernel, governor, THP,
/// container runtime, and the load average now (`load_before`; [`finish`] adds `load_after`).
pub fn host_info(host: &dyn Host) -> HostFacts {
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
    HostFacts {
        name: Some(host.name().to_string()),
        address: Some(host.address()),
        cpu_model: model,
        cpus_online: Some(crate::session::cpu_count(host) as u64),
        cores: cores_per_socket.map(|c| c * sockets),
        sockets: Some(sockets),
        smt,
        kernel: read_text(host, "/proc/sys/kernel/osrelease"),
        governor: read_text(
            host,
            "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        ),
        thp: read_text(host, "/sys/kernel/mm/transparent_hugepage/enabled"),
        load_before: read_text(host, "/proc/loadavg"),
        load_after: None,
        boot_id: read_text(host, "/proc/sys/kernel/random/boot_id"),
        container: Some(container_info(host, &cpuinfo)),
    }
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
pub fn perflab_info() -> PerflabInfo {
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
    PerflabInfo {
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        commit,
        dirty,
        binary: exe.as_ref().map(|p| p.display().to_string()),
        binary_sha256: exe.as_deref().and_then(sha256_local),
        nixpkgs_rev: std::env::var("PERFLAB_NIXPKGS_REV").ok(),
        toolchain: Some(std::env::var("PERFLAB_TOOLCHAIN").unwrap_or_else(|_| "system".into())),
    }
}

/// Asks a host about every tool of [`crate::tools::on_lab_hosts`] in one command (a round trip costs 0.1–0.3 s on
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

/// The [`crate::tools::on_lab_hosts`] tools of a host (path, version, resolved path, hash),
/// asked in one command; the same as [`tool_info`] tool by tool.
pub fn tools_of(host: &dyn Host) -> BTreeMap<String, ToolInfo> {
    let mut argv: Vec<String> = Vec::new();
    for t in crate::tools::on_lab_hosts() {
        argv.push(t.program.to_string());
        argv.push(t.version_args.len().to_string());
        argv.extend(t.version_args.iter().map(|a| a.to_string()));
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
    let mut t = BTreeMap::new();
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
            None => ToolInfo::missing(),
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
                ToolInfo {
                    found: true,
                    path: Some(path),
                    resolved: Some(real),
                    version: Some(field("V ").unwrap_or_default()),
                    sha256: Some(sha),
                }
            }
        };
        t.insert(name.to_string(), info);
    }
    // Tools the script gave no answer for, one by one.
    for tool in crate::tools::on_lab_hosts() {
        if !t.contains_key(tool.program) {
            t.insert(
                tool.program.into(),
                tool_info(host, tool.program, tool.version_args),
            );
        }
    }
    t
}

/// Everything, for a session's hosts and the versions in play, at the start of an invocation.
/// [`finish`] completes it at the end.
pub fn collect(session: &mut Session, versions: &[Version]) -> Fingerprint {
    let mut hosts = BTreeMap::new();
    let mut tools: BTreeMap<String, BTreeMap<String, ToolInfo>> = BTreeMap::new();
    // Hosts whose files are this machine's files (the local driver's) have the same tools:
    // hash them once. The host says so itself; no driver name decides it.
    let mut local_tools: Option<BTreeMap<String, ToolInfo>> = None;
    for role in [Role::Gateway, Role::Worker] {
        if let Ok(h) = session.host(role, "default") {
            hosts.insert(role.as_str().to_string(), host_info(h.as_ref()));
            let t = if h.shares_local_files() {
                local_tools
                    .get_or_insert_with(|| tools_of(h.as_ref()))
                    .clone()
            } else {
                tools_of(h.as_ref())
            };
            tools.insert(role.as_str().to_string(), t);
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
    // Asked after the hosts are made: the images just made are in it now.
    let driver = session.driver_info();
    let mut controller_tools = BTreeMap::new();
    if session.driver_name() == "terraform"
        && let Ok(local) = crate::host::LocalHost::new("controller", &std::env::temp_dir())
    {
        let t = crate::tools::tool("terraform").map_or(&[][..], |t| t.version_args);
        controller_tools.insert("terraform".into(), tool_info(&local, "terraform", t));
    }
    Fingerprint {
        collected_unix_s: Some(crate::util::time::now_unix()),
        perflab: perflab_info(),
        network: driver
            .get("network")
            .and_then(Value::as_str)
            .map(str::to_string),
        driver,
        hosts,
        tools,
        controller_tools,
        versions: versions.to_vec(),
        ..Default::default()
    }
}

/// Completes a fingerprint made by [`collect`] once the runs are done: each host's load
/// average now (`load_after`), what each version's gateway reported itself to be, and the
/// distinct load commands run.
pub fn finish(fp: &mut Fingerprint, session: &mut Session, runs: &[RunRecord]) {
    for (name, info) in fp.hosts.iter_mut() {
        let role = match name.as_str() {
            "gateway" => Role::Gateway,
            "worker" => Role::Worker,
            _ => continue,
        };
        if let Ok(h) = session.host(role, "default") {
            info.load_after = read_text(h.as_ref(), "/proc/loadavg");
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
    fp.gateway_versions = Some(gateways);
    fp.load_commands = Some(commands);
    fp.finished_unix_s = Some(crate::util::time::now_unix());
}

/// The fingerprint of this machine alone (what `perflab doctor` shows): host facts, tools and
/// perflab's identity, without a lab.
pub fn local() -> Option<Fingerprint> {
    let host = crate::host::LocalHost::new("local", &std::env::temp_dir()).ok()?;
    Some(Fingerprint {
        perflab: perflab_info(),
        hosts: [("local".to_string(), host_info(&host))].into(),
        tools: [("local".to_string(), tools_of(&host))].into(),
        ..Default::default()
    })
}

/// A value for people: `-` when absent, `yes`/`no` for booleans.
fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
    match v {
        None => "-".into(),
        Some(v) => v.to_string(),
    }
}

fn short(v: &Option<String>, n: usize) -> String {
    show(v).chars().take(n).collect()
}

fn yes_no(v: Option<bool>) -> Option<&'static str> {
    v.map(|b| if b { "yes" } else { "no" })
}

/// The selected value of a sysfs multiple-choice file (`always [madvise] never` → `madvise`).
fn selected(v: &Option<String>) -> String {
    let s = show(v);
    match (s.find('['), s.find(']')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].to_string(),
        _ => s,
    }
}

/// A compact, human-readable form of a fingerprint: a few lines per host and one per tool found.
pub fn compact(fp: &Fingerprint) -> String {
    let mut out = String::new();
    let p = &fp.perflab;
    out.push_str(&format!(
        "  perflab   {} · commit {}{} · binary sha256 {} · nixpkgs {} · toolchain {}\n",
        show(&p.version),
        short(&p.commit, 12),
        if p.dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        },
        short(&p.binary_sha256, 16),
        short(&p.nixpkgs_rev, 12),
        show(&p.toolchain),
    ));
    if let Some(n) = &fp.network {
        out.push_str(&format!("  network   {n}\n"));
    }
    for (role, h) in &fp.hosts {
        let c = h.container.clone().unwrap_or_default();
        out.push_str(&format!(
            "  {role:<9} {} · {} CPUs online, {} cores, SMT {} · container {} · virtualization {}\n",
            show(&h.cpu_model),
            show(&h.cpus_online),
            show(&h.cores),
            match h.smt {
                Some(true) => "on",
                Some(false) => "off",
                None => "?",
            },
            show(&c.runtime),
            show(&c.virtualization),
        ));
        out.push_str(&format!(
            "  {:<9} kernel {} · governor {} · THP {} · load {}{}\n",
            "",
            show(&h.kernel),
            show(&h.governor),
            selected(&h.thp),
            show(&h.load_before),
            h.load_after
                .as_ref()
                .map(|l| format!(" → {l}"))
                .unwrap_or_default(),
        ));
        for (name, t) in fp.tools.get(role).into_iter().flatten() {
            if t.found {
                out.push_str(&format!(
                    "  {:<9} {name:<10} {} sha256 {} · {}\n",
                    "",
                    show(&t.resolved),
                    short(&t.sha256, 16),
                    show(&t.version),
                ));
            }
        }
    }
    out
}

/// What differs between two fingerprints, as one line per difference (`gateway kernel: A → B`):
/// perflab's version, commit and binary, the nixpkgs revision, driver and network mode, each
/// host's CPU, cores, SMT, kernel, governor, THP and container runtime, each tool's presence and
/// sha256 (with versions), and what each version's gateway reported. Load, times, addresses
/// and boot ids are not compared (they differ between any two invocations). A field absent from
/// either side (a fingerprint from an older perflab) is skipped.
pub fn differences(a: &Fingerprint, b: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |what: String, x: Option<String>, y: Option<String>| {
        if let (Some(x), Some(y)) = (x, y)
            && x != y
        {
            out.push(format!("{what}: {x} → {y}"));
        }
    };
    let (pa, pb) = (&a.perflab, &b.perflab);
    for (what, x, y) in [
        ("perflab version", &pa.version, &pb.version),
        ("perflab commit", &pa.commit, &pb.commit),
        (
            "perflab binary sha256",
            &pa.binary_sha256,
            &pb.binary_sha256,
        ),
        ("nixpkgs revision", &pa.nixpkgs_rev, &pb.nixpkgs_rev),
        ("toolchain", &pa.toolchain, &pb.toolchain),
    ] {
        cmp(what.into(), x.clone(), y.clone());
    }
    cmp(
        "perflab checkout dirty".into(),
        yes_no(pa.dirty).map(str::to_string),
        yes_no(pb.dirty).map(str::to_string),
    );
    // The driver's facts are its own (free-form per driver): compared as they were recorded.
    for key in [
        "driver",
        "network",
        "engine",
        "image_id",
        "version_images",
        "provider",
    ] {
        let fact = |fp: &Fingerprint| {
            fp.driver.get(key).map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            })
        };
        cmp(format!("driver {key}"), fact(a), fact(b));
    }
    for (role, ha) in &a.hosts {
        let Some(hb) = b.hosts.get(role) else {
            continue;
        };
        let facts = |h: &HostFacts| -> Vec<(&'static str, Option<String>)> {
            let c = h.container.clone();
            vec![
                ("cpu model", h.cpu_model.clone()),
                ("cpus online", h.cpus_online.map(|n| n.to_string())),
                ("cores", h.cores.map(|n| n.to_string())),
                ("sockets", h.sockets.map(|n| n.to_string())),
                ("smt", yes_no(h.smt).map(str::to_string)),
                ("kernel", h.kernel.clone()),
                // A governor nobody can read (a container, a VM) is "-", not absent.
                ("governor", Some(show(&h.governor))),
                ("thp", h.thp.clone()),
                ("container runtime", c.as_ref().map(|c| show(&c.runtime))),
                (
                    "container virtualization",
                    c.as_ref().map(|c| show(&c.virtualization)),
                ),
            ]
        };
        for ((what, x), (_, y)) in facts(ha).into_iter().zip(facts(hb)) {
            cmp(format!("{role} {what}"), x, y);
        }
    }
    for (role, ta) in &a.tools {
        let Some(tb) = b.tools.get(role) else {
            continue;
        };
        for (name, x) in ta {
            let Some(y) = tb.get(name) else {
                continue;
            };
            if x.found != y.found {
                let state = |t: &ToolInfo| {
                    if t.found {
                        format!("found ({})", show(&t.resolved))
                    } else {
                        "missing".to_string()
                    }
                };
                out.push(format!("{role} tool {name}: {} → {}", state(x), state(y)));
            } else if x.sha256 != y.sha256 {
                let version = if x.version != y.version {
                    format!(" (version {} → {})", show(&x.version), show(&y.version))
                } else {
                    " (same version text)".to_string()
                };
                out.push(format!(
                    "{role} tool {name}: sha256 {} → {}{version}",
                    short(&x.sha256, 16),
                    short(&y.sha256, 16)
                ));
            }
        }
    }
    if let (Some(ga), Some(gb)) = (&a.gateway_versions, &b.gateway_versions) {
        for (label, x) in ga {
            if let Some(y) = gb.get(label)
                && x != y
            {
                let join = |v: &BTreeSet<String>| v.iter().cloned().collect::<Vec<_>>().join(", ");
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
    use serde_json::json;

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

    fn fp_json() -> Value {
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

    /// The typed fingerprint of a JSON one (as `manifest.json` holds it).
    fn typed(v: Value) -> Fingerprint {
        serde_json::from_value(v).unwrap()
    }

    fn fp() -> Fingerprint {
        typed(fp_json())
    }

    #[test]
    fn same_fingerprint_has_no_differences_whatever_the_load() {
        let mut b = fp_json();
        b["hosts"]["gateway"]["load_before"] = json!("9.00 9.00 9.00 9/900 9");
        b["hosts"]["gateway"]["boot_id"] = json!("y");
        assert!(differences(&fp(), &typed(b)).is_empty());
    }

    #[test]
    fn differences_name_the_field_and_both_values() {
        let mut b = fp_json();
        b["hosts"]["gateway"]["kernel"] = json!("6.18.44");
        b["hosts"]["gateway"]["governor"] = json!("performance");
        b["tools"]["gateway"]["wrk"]["sha256"] = json!("bbbb");
        b["tools"]["gateway"]["kong"] = json!({ "found": true, "resolved": "/usr/bin/kong" });
        b["perflab"]["commit"] = json!("def");
        b["gateway_versions"]["current"] = json!(["nginx: nginx/1.24.0"]);
        let d = differences(&fp(), &typed(b));
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
        let mut old = fp_json();
        old["hosts"]["gateway"]
            .as_object_mut()
            .unwrap()
            .remove("container");
        old["hosts"]["gateway"]
            .as_object_mut()
            .unwrap()
            .remove("cores");
        assert!(differences(&typed(old), &fp()).is_empty());
    }

    #[test]
    fn compact_shows_the_selected_thp_mode_and_tools() {
        let c = compact(&fp());
        assert!(c.contains("THP madvise"), "{c}");
        assert!(c.contains("/usr/bin/wrk sha256 aaaa"), "{c}");
        assert!(!c.contains("kong"), "{c}");
    }
}
