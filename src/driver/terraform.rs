//! The terraform driver: machines from a terraform module, reached over SSH.
//!
//! Why it looks like this:
//! - Kong's framework ran `terraform apply` in its source tree and passed every variable as
//!   `-var k=v`, which put cloud tokens on command lines and state files in the repository. Here
//!   the module is copied into a per-lab state dir (default
//!   `~/.cache/perflab/terraform/<provider>/<lab>`), the repository stays clean, and variables go
//!   to terraform only as `TF_VAR_*` in its environment.
//! - Machines are expensive to create: a later invocation with the same lab name reuses the
//!   applied infrastructure (same module and variables ⇒ no new apply). `teardown(false)` stops
//!   only what this lab started (by pid) and removes its directories; `teardown(true)` destroys
//!   the machines.
//! - The module contract is Kong's (outputs `kong-ip`, `kong-internal-ip`, `worker-ip`,
//!   `worker-internal-ip`, optional `db-ip`/`db-internal-ip`, a key `id_rsa`), extended with
//!   optional `ssh-user`, `known_hosts` and `toolchain` outputs, and for several load hosts a
//!   `load_host_count` variable and a `load-hosts` output. See docs/terraform.md.
//! - Every terraform call gets `CHECKPOINT_DISABLE=1` (no call home), `TF_IN_AUTOMATION=1` and
//!   an existing empty CLI config file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Driver, DriverOptions, Role};
use crate::host::Host;
use crate::host::ssh::{HostKeyCheck, SshConnection, SshHost, SshTarget};
use crate::{Error, Result};

/// The provider used when neither the `provider` option nor `PERF_TEST_TERRAFORM_PROVIDER` is
/// set: the network-namespace rehearsal lab, which needs no cloud account.
pub const DEFAULT_PROVIDER: &str = "netns";

/// Outputs every module must have.
pub const REQUIRED_OUTPUTS: &[&str] = &[
    "kong-ip",
    "kong-internal-ip",
    "worker-ip",
    "worker-internal-ip",
];

/// Options the driver understands (besides `var.NAME=VALUE`).
pub const OPTIONS: &[&str] = &[
    "provider",
    "lab",
    "state-dir",
    "modules-dir",
    "ssh-user",
    "ssh-port",
    "ssh-wait",
    "ssh-connect-timeout",
    "host-keys",
    // Accepted so that older results reproduce, and ignored: the machine preparation the
    // session runs before every measured load (`session/machine.rs`) is the one cool-down gate.
    "cool-down-load",
    "load_hosts",
];

/// The terraform variable the driver sets from the `load_hosts` option: how many load hosts
/// (the worker included) the module must create.
pub const LOAD_HOST_COUNT_VAR: &str = "load_host_count";

/// The module output listing every load host (`[{ip, internal_ip}, ...]`, the worker first).
/// A module without it has one load host, the worker.
pub const LOAD_HOSTS_OUTPUT: &str = "load-hosts";

/// Kong's environment variables (spec.helpers.perf `use_defaults`) and the terraform variables
/// they feed, per provider. `hetzner` is perflab's own.
const ENV_VARS: &[(&str, &str, &str)] = &[
    (
        "equinix-metal",
        "PERF_TEST_METAL_PROJECT_ID",
        "metal_project_id",
    ),
    (
        "equinix-metal",
        "PERF_TEST_METAL_AUTH_TOKEN",
        "metal_auth_token",
    ),
    ("equinix-metal", "PERF_TEST_METAL_PLAN", "metal_plan"),
    ("equinix-metal", "PERF_TEST_METAL_OS", "metal_os"),
    (
        "digitalocean",
        "PERF_TEST_DIGITALOCEAN_PROJECT_NAME",
        "do_project_name",
    ),
    ("digitalocean", "PERF_TEST_DIGITALOCEAN_TOKEN", "do_token"),
    ("digitalocean", "PERF_TEST_DIGITALOCEAN_SIZE", "do_size"),
    ("digitalocean", "PERF_TEST_DIGITALOCEAN_REGION", "do_region"),
    ("digitalocean", "PERF_TEST_DIGITALOCEAN_OS", "do_os"),
    ("aws-ec2", "PERF_TEST_AWS_REGION", "aws_region"),
    (
        "aws-ec2",
        "PERF_TEST_EC2_INSTANCE_TYPE",
        "ec2_instance_type",
    ),
    ("aws-ec2", "PERF_TEST_EC2_OS", "ec2_os"),
    ("hetzner", "PERF_TEST_HETZNER_TOKEN", "hcloud_token"),
    (
        "hetzner",
        "PERF_TEST_HETZNER_SERVER_TYPE",
        "hcloud_server_type",
    ),
    ("hetzner", "PERF_TEST_HETZNER_LOCATION", "hcloud_location"),
    ("hetzner", "PERF_TEST_HETZNER_IMAGE", "hcloud_image"),
    ("bring-your-own", "PERF_TEST_BYO_KONG_IP", "kong_ip"),
    (
        "bring-your-own",
        "PERF_TEST_BYO_KONG_INTERNAL_IP",
        "kong_internal_ip",
    ),
    ("bring-your-own", "PERF_TEST_BYO_DB_IP", "db_ip"),
    (
        "bring-your-own",
        "PERF_TEST_BYO_DB_INTERNAL_IP",
        "db_internal_ip",
    ),
    ("bring-your-own", "PERF_TEST_BYO_WORKER_IP", "worker_ip"),
    (
        "bring-your-own",
        "PERF_TEST_BYO_WORKER_INTERNAL_IP",
        "worker_internal_ip",
    ),
    (
        "bring-your-own",
        "PERF_TEST_BYO_SSH_KEY_PATH",
        "ssh_key_path",
    ),
    ("bring-your-own", "PERF_TEST_BYO_SSH_USER", "ssh_user"),
];

/// The terraform variables a provider's module reads from Kong's `PERF_TEST_*` environment
/// variables: `(env var, terraform variable)`. Every provider also gets `seperate_db_node`
/// (Kong's spelling) from `PERF_TEST_SEPERATE_DB_NODE`.
pub fn env_tfvars(provider: &str) -> Vec<(&'static str, &'static str)> {
    ENV_VARS
        .iter()
        .filter(|(p, _, _)| *p == provider)
        .map(|(_, e, v)| (*e, *v))
        .collect()
}

/// One machine of the lab, from the module's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// Address the controller connects to over SSH.
    pub ip: String,
    /// Address the other lab machines use.
    pub internal_ip: String,
}

/// What the module's outputs say about the lab.
#[derive(Debug, Clone, Serialize)]
pub struct LabOutputs {
    /// The gateway machine.
    pub kong: Machine,
    /// The upstream and load-generator machine.
    pub worker: Machine,
    /// A separate database machine, when the module has one.
    pub db: Option<Machine>,
    /// Every load host, the worker first (module output `load-hosts`; just the worker when the
    /// module has no such output).
    pub load_hosts: Vec<Machine>,
    /// The private key file.
    pub key: PathBuf,
    /// The SSH user.
    pub ssh_user: String,
    /// A known_hosts file written by the module, if any.
    pub known_hosts: Option<PathBuf>,
    /// How programs get onto the machines (module output `toolchain`).
    pub toolchain: Option<String>,
}

impl LabOutputs {
    /// The machine called `name`: `kong`, `worker`, `db` (the kong machine when the lab has no
    /// database machine), or `load-N`, the N-th load host (`load-1` is the worker).
    pub fn machine(&self, name: &str) -> Option<&Machine> {
        match name {
            "kong" => Some(&self.kong),
            "worker" => Some(&self.worker),
            "db" => Some(self.db.as_ref().unwrap_or(&self.kong)),
            _ => {
                let n: usize = name.strip_prefix("load-")?.parse().ok()?;
                self.load_hosts.get(n.checked_sub(1)?)
            }
        }
    }
}

/// Reads the `load-hosts` output's value: a non-empty list of `{ip, internal_ip}` objects
/// (`internal_ip` defaults to `ip`).
fn load_hosts_output(value: &serde_json::Value) -> Option<Vec<Machine>> {
    let list = value.as_array().filter(|l| !l.is_empty())?;
    list.iter()
        .map(|m| {
            let field = |k: &str| {
                m.get(k)
                    .and_then(|v| v.as_str())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            };
            let ip = field("ip")?.to_string();
            Some(Machine {
                internal_ip: field("internal_ip").unwrap_or(&ip).to_string(),
                ip,
            })
        })
        .collect()
}

/// The terraform driver. See the module docs.
pub struct TerraformDriver {
    provider: String,
    lab: String,
    lab_id: String,
    state_dir: PathBuf,
    module_src: PathBuf,
    tfvars: BTreeMap<String, String>,
    ssh_user: Option<String>,
    ssh_port: u16,
    ssh_wait: Duration,
    ssh_connect_timeout: Duration,
    host_keys: String,
    load_hosts: u32,
    outputs: Option<LabOutputs>,
    reused: bool,
    apply_time: Option<Duration>,
    conns: HashMap<String, SshConnection>,
    hosts: HashMap<(Role, String), Arc<SshHost>>,
    modules_dir: PathBuf,
    journal: Option<Arc<crate::journal::Journal>>,
    /// Set by [`TerraformDriver::attach`]: cleaning up after another lab, no journal of its own.
    attached: bool,
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

fn parse_secs(key: &str, v: &str) -> Result<Duration> {
    v.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=86_400.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            usage(format!(
                "driver option {key}={v}: expected a number of seconds from 0 to 86400, e.g. 30"
            ))
        })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

impl TerraformDriver {
    /// Resolves the options; nothing is applied until the first host is asked for (or
    /// [`TerraformDriver::up`] is called), so `teardown(true)` of an earlier lab creates nothing.
    ///
    /// Options: `provider` (default `$PERF_TEST_TERRAFORM_PROVIDER`, else `netns`), `lab`
    /// (default `default`; a later invocation with the same lab reuses its machines),
    /// `state-dir`, `modules-dir` (default `$PERFLAB_TERRAFORM_DIR`, else `./terraform`, else the
    /// source tree's `terraform/`), `var.NAME=VALUE` (terraform variables, passed as
    /// `TF_VAR_NAME`), `ssh-user`, `ssh-port`, `ssh-wait` (seconds of connect retries, default
    /// 180), `ssh-connect-timeout` (per attempt, default 10), `host-keys` (`module` — the
    /// module's known_hosts when it has one, else `accept-new` into a lab-owned file — or `no`),
    /// `load_hosts` (load hosts, the worker included, default 1; passed to the module as
    /// [`LOAD_HOST_COUNT_VAR`]).
    pub fn new(options: &DriverOptions, lab_id: &str) -> Result<Self> {
        for k in options.keys() {
            if !k.starts_with("var.") && !OPTIONS.contains(&k.as_str()) {
                return Err(usage(format!(
                    "unknown terraform driver option \"{k}\": expected var.NAME or one of {}",
                    OPTIONS.join(", ")
                )));
            }
        }
        if options.contains_key("cool-down-load") {
            eprintln!(
                "perflab: warning: terraform driver option cool-down-load is ignored: the one \
                 cool-down gate runs before every measured load on every driver (--cooldown-max)"
            );
        }
        let provider = options
            .get("provider")
            .cloned()
            .or_else(|| std::env::var("PERF_TEST_TERRAFORM_PROVIDER").ok())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PROVIDER.to_string());
        if !valid_name(&provider) {
            return Err(usage(format!(
                "terraform provider \"{provider}\": expected a module name like netns or aws-ec2"
            )));
        }
        let lab = options
            .get("lab")
            .cloned()
            .unwrap_or_else(|| "default".into());
        if !valid_name(&lab) {
            return Err(usage(format!(
                "terraform lab name \"{lab}\": use 1-32 characters of a-z, 0-9 and '-'"
            )));
        }
        let modules_dir = match options.get("modules-dir") {
            Some(d) => PathBuf::from(d),
            None => default_modules_dir(),
        };
        let module_src = modules_dir.join(&provider);
        if !module_src.is_dir() {
            return Err(usage(format!(
                "terraform provider \"{provider}\" is not supported: no module at {} (modules there: {})",
                module_src.display(),
                list_modules(&modules_dir)
            )));
        }
        let state_dir = match options.get("state-dir") {
            Some(d) => PathBuf::from(d),
            None => perflab_cache().join("terraform").join(&provider).join(&lab),
        };
        let load_hosts = super::load_hosts_option(options)?;
        let mut tfvars = BTreeMap::new();
        tfvars.insert("lab_id".to_string(), lab.clone());
        tfvars.insert(LOAD_HOST_COUNT_VAR.to_string(), load_hosts.to_string());
        if std::env::var_os("PERF_TEST_SEPERATE_DB_NODE").is_some() {
            tfvars.insert("seperate_db_node".to_string(), "true".to_string());
        }
        for (env, var) in env_tfvars(&provider) {
            if let Ok(v) = std::env::var(env)
                && !v.is_empty()
            {
                tfvars.insert(var.to_string(), v);
            }
        }
        for (k, v) in options {
            if let Some(name) = k.strip_prefix("var.") {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(usage(format!(
                        "driver option {k}: not a terraform variable name"
                    )));
                }
                tfvars.insert(name.to_string(), v.clone());
            }
        }
        let ssh_port = match options.get("ssh-port") {
            Some(p) => p.parse().map_err(|_| {
                usage(format!(
                    "driver option ssh-port={p}: expected a port number"
                ))
            })?,
            None => 22,
        };
        let host_keys = options
            .get("host-keys")
            .cloned()
            .unwrap_or_else(|| "module".into());
        if !["module", "no"].contains(&host_keys.as_str()) {
            return Err(usage(format!(
                "driver option host-keys={host_keys}: expected module or no"
            )));
        }
        Ok(TerraformDriver {
            provider,
            lab,
            lab_id: lab_id.to_string(),
            state_dir,
            module_src,
            tfvars,
            ssh_user: options.get("ssh-user").cloned(),
            ssh_port,
            ssh_wait: match options.get("ssh-wait") {
                Some(v) => parse_secs("ssh-wait", v)?,
                None => Duration::from_secs(180),
            },
            ssh_connect_timeout: match options.get("ssh-connect-timeout") {
                Some(v) => parse_secs("ssh-connect-timeout", v)?,
                None => Duration::from_secs(10),
            },
            host_keys,
            load_hosts,
            outputs: None,
            reused: false,
            apply_time: None,
            conns: HashMap::new(),
            hosts: HashMap::new(),
            modules_dir,
            journal: None,
            attached: false,
        })
    }

    /// Uses the machines an earlier apply left (their outputs), never applying: how `perflab
    /// teardown` reaches the machines of a dead lab whose variables it does not know. Fails when
    /// the state is gone (the machines were destroyed).
    pub fn attach(&mut self) -> Result<()> {
        if self.outputs.is_none() {
            if !self.state_dir.join("terraform.tfstate").is_file() {
                return Err(Error::Lab(format!(
                    "no terraform state in {} (the machines were destroyed)",
                    self.state_dir.display()
                )));
            }
            self.outputs = Some(self.read_outputs()?);
            self.reused = true;
        }
        self.attached = true;
        Ok(())
    }

    /// Stops what a dead lab recorded in `dirs` (its pid files) and removes the dirs and the
    /// lab's root dir, on every machine; returns how many process groups were signalled.
    pub fn clean_dirs(&mut self, dirs: &[crate::journal::RemoteDir]) -> Result<usize> {
        let mut stopped = 0;
        for d in dirs {
            let c = self.connection(&d.machine)?;
            let script = format!(
                "{}\nrm -rf {}",
                crate::host::remote_process::stop_recorded_script(
                    &d.dir.join(".perflab-pids"),
                    Duration::from_secs(5)
                ),
                crate::host::quote::quote(&d.dir.to_string_lossy())
            );
            let out = c.run_script(&script, None, Duration::from_secs(60))?;
            stopped += out
                .stdout_text()
                .trim()
                .parse::<usize>()
                .unwrap_or_default();
        }
        self.remove_remote_root();
        Ok(stopped)
    }

    /// Removes the lab's (empty) root dir on every connected machine.
    fn remove_remote_root(&self) {
        let root = crate::host::quote::quote(&self.remote_root().to_string_lossy());
        for c in self.conns.values() {
            let _ = c.run_script(
                &format!("rmdir {root} 2>/dev/null; true"),
                None,
                Duration::from_secs(30),
            );
        }
    }

    /// The state dir (the copied module, terraform state, the key).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// True when the last [`TerraformDriver::up`] found the infrastructure already applied.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// How long the apply took (None when reused or not yet up).
    pub fn apply_time(&self) -> Option<Duration> {
        self.apply_time
    }

    /// The outputs, once up.
    pub fn outputs(&self) -> Option<&LabOutputs> {
        self.outputs.as_ref()
    }

    /// The terraform variables' names that will be passed (values are never shown).
    pub fn tfvar_names(&self) -> Vec<String> {
        self.tfvars.keys().cloned().collect()
    }

    fn fingerprint(&self) -> Result<String> {
        let mut h = Sha256::new();
        hash_dir(&self.module_src, &self.module_src, &mut h)?;
        for (k, v) in &self.tfvars {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        Ok(format!("{:x}", h.finalize()))
    }

    fn fingerprint_file(&self) -> PathBuf {
        self.state_dir.join("perflab-applied.json")
    }

    /// Brings the lab up: reuses the applied infrastructure when the state dir holds an apply of
    /// the same module and variables with all required outputs, else copies the module, runs
    /// `terraform init` and `apply`, and reads the outputs.
    pub fn up(&mut self) -> Result<&LabOutputs> {
        if let Err(e) = self.bring_up() {
            // Nothing ran on the machines yet: the journal has nothing to undo.
            if let Some(j) = self.journal.take() {
                j.remove();
            }
            return Err(e);
        }
        Ok(self.outputs.as_ref().expect("set by bring_up"))
    }

    /// Starts the lab's journal unless there is one, or the driver only cleans up after a dead
    /// lab ([`TerraformDriver::attach`]).
    fn ensure_journal(&mut self) -> Result<()> {
        if self.journal.is_some() || self.attached {
            return Ok(());
        }
        let journal = crate::journal::Journal::create(&self.lab_id, "terraform")?;
        journal.update(|r| {
            r.terraform = Some(crate::journal::TerraformLab {
                provider: self.provider.clone(),
                lab: self.lab.clone(),
                state_dir: self.state_dir.clone(),
                modules_dir: self.modules_dir.clone(),
            })
        })?;
        self.journal = Some(journal);
        Ok(())
    }

    fn bring_up(&mut self) -> Result<()> {
        // Refused before anything is created: a module without the variable would give one.
        if self.load_hosts > 1 && !declares_variable(&self.module_src, LOAD_HOST_COUNT_VAR) {
            return Err(usage(format!(
                "driver option load_hosts={}: terraform module \"{}\" ({}) takes no \
                 {LOAD_HOST_COUNT_VAR} variable, so it has one load host (see docs/terraform.md)",
                self.load_hosts,
                self.provider,
                self.module_src.display()
            )));
        }
        if self.outputs.is_none() {
            let fp = self.fingerprint()?;
            let applied = std::fs::read_to_string(self.fingerprint_file())
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| {
                    v.get("fingerprint")
                        .and_then(|f| f.as_str())
                        .map(String::from)
                });
            let mut reused = false;
            if applied.as_deref() == Some(fp.as_str())
                && self.state_dir.join("terraform.tfstate").is_file()
                && let Ok(outs) = self.read_outputs()
            {
                self.outputs = Some(outs);
                reused = true;
            }
            // Written before anything runs on the machines (or they are created).
            self.ensure_journal()?;
            if !reused {
                crate::util::fs::private_dir_all(&self.state_dir, Some(&perflab_cache()))
                    .map_err(|e| Error::io(&self.state_dir, e))?;
                copy_module(&self.module_src, &self.state_dir)?;
                let _ = std::fs::remove_file(self.fingerprint_file());
                // Fresh machines have fresh host keys.
                let _ = std::fs::remove_file(self.state_dir.join("known_hosts"));
                let start = Instant::now();
                self.terraform(&["init", "-input=false", "-no-color"])?;
                self.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])?;
                self.apply_time = Some(start.elapsed());
                let outs = self.read_outputs()?;
                let record = serde_json::json!({
                    "fingerprint": fp,
                    "provider": self.provider,
                    "lab": self.lab,
                    "apply_s": start.elapsed().as_secs_f64(),
                });
                crate::util::fs::atomic_write(
                    &self.fingerprint_file(),
                    serde_json::to_string_pretty(&record)
                        .unwrap_or_default()
                        .as_bytes(),
                )
                .map_err(|e| Error::io(self.fingerprint_file(), e))?;
                self.outputs = Some(outs);
            }
            self.reused = reused;
        }
        let outs = self.outputs.as_ref().expect("set above");
        if outs.load_hosts.len() < self.load_hosts as usize {
            return Err(usage(format!(
                "driver option load_hosts={}: terraform module \"{}\" gives {} load host(s) \
                 (output {LOAD_HOSTS_OUTPUT}); a module that takes several declares the variable \
                 {LOAD_HOST_COUNT_VAR} and lists them in {LOAD_HOSTS_OUTPUT} (see docs/terraform.md)",
                self.load_hosts,
                self.provider,
                outs.load_hosts.len()
            )));
        }
        Ok(())
    }

    fn read_outputs(&self) -> Result<LabOutputs> {
        let out = self.terraform(&["output", "-json", "-no-color"])?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
            Error::Lab(format!(
                "terraform output -json in {} is not JSON: {e}",
                self.state_dir.display()
            ))
        })?;
        let get = |name: &str| -> Option<String> {
            match v.get(name)?.get("value")? {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let missing: Vec<&str> = REQUIRED_OUTPUTS
            .iter()
            .copied()
            .filter(|n| get(n).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Lab(format!(
                "terraform module \"{}\" ({}) lacks required output(s) {}: a module must output {} (see docs/terraform.md)",
                self.provider,
                self.module_src.display(),
                missing.join(", "),
                REQUIRED_OUTPUTS.join(", ")
            )));
        }
        let machine = |a: &str, b: &str| Machine {
            ip: get(a).unwrap_or_default(),
            internal_ip: get(b).unwrap_or_default(),
        };
        let db = get("db-ip").map(|ip| Machine {
            internal_ip: get("db-internal-ip").unwrap_or_else(|| ip.clone()),
            ip,
        });
        let worker = machine("worker-ip", "worker-internal-ip");
        let load_hosts = match v.get(LOAD_HOSTS_OUTPUT).and_then(|o| o.get("value")) {
            None | Some(serde_json::Value::Null) => vec![worker.clone()],
            Some(list) => load_hosts_output(list).ok_or_else(|| {
                Error::Lab(format!(
                    "terraform module \"{}\": output {LOAD_HOSTS_OUTPUT} must be a list of \
                     {{ ip, internal_ip }} objects, the worker first (see docs/terraform.md), not {list}",
                    self.provider
                ))
            })?,
        };
        let key = match get("id_rsa") {
            Some(k) if k.starts_with("-----BEGIN") => {
                let p = self.state_dir.join("id_rsa");
                write_private(&p, k.as_bytes())?;
                p
            }
            Some(k) => self.state_dir.join(k),
            None => self.state_dir.join("id_rsa"),
        };
        if !key.is_file() {
            return Err(Error::Lab(format!(
                "terraform module \"{}\" left no SSH key at {} (output id_rsa: a path or the key itself)",
                self.provider,
                key.display()
            )));
        }
        Ok(LabOutputs {
            kong: machine("kong-ip", "kong-internal-ip"),
            worker,
            db,
            load_hosts,
            key,
            ssh_user: self
                .ssh_user
                .clone()
                .or_else(|| get("ssh-user"))
                .unwrap_or_else(|| "root".to_string()),
            known_hosts: get("known_hosts").map(|p| self.state_dir.join(p)),
            toolchain: get("toolchain"),
        })
    }

    /// Runs terraform in the state dir with the lab's environment; returns stdout. Output of each
    /// subcommand is kept in `<state dir>/terraform-<subcommand>.log`.
    fn terraform(&self, args: &[&str]) -> Result<String> {
        crate::util::fs::private_dir_all(&self.state_dir, Some(&perflab_cache()))
            .map_err(|e| Error::io(&self.state_dir, e))?;
        let rc = self.state_dir.join(".terraformrc");
        if !rc.exists() {
            std::fs::write(&rc, b"").map_err(|e| Error::io(&rc, e))?;
        }
        let mut c = Command::new("terraform");
        c.args(args)
            .current_dir(&self.state_dir)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("TF_CLI_CONFIG_FILE", &rc);
        for (k, v) in &self.tfvars {
            c.env(format!("TF_VAR_{k}"), v);
        }
        // Tied to perflab: a killed perflab does not leave an apply running.
        let out = crate::host::process_group::output_tied(c).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingTool {
                    program: "terraform".into(),
                    where_: String::new(),
                    hint: "install terraform >= 1.4 (https://developer.hashicorp.com/terraform/install)"
                        .into(),
                }
            } else {
                Error::Lab(format!("cannot run terraform: {e}"))
            }
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let log = self.state_dir.join(format!("terraform-{}.log", args[0]));
        let _ = std::fs::write(&log, format!("{stdout}\n{stderr}"));
        if out.status.success() {
            return Ok(stdout);
        }
        let missing = missing_variables(&stderr);
        if !missing.is_empty() {
            let hints: Vec<String> = missing
                .iter()
                .map(|v| {
                    let env = ENV_VARS
                        .iter()
                        .find(|(p, _, t)| *p == self.provider && t == v)
                        .map(|(_, e, _)| format!(" or {e}"))
                        .unwrap_or_default();
                    format!("{v} (--driver-opt var.{v}=VALUE, TF_VAR_{v}{env})")
                })
                .collect();
            return Err(usage(format!(
                "terraform module \"{}\" needs variable(s): {}",
                self.provider,
                hints.join("; ")
            )));
        }
        let tail: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
        let tail = tail[tail.len().saturating_sub(40)..].join("\n");
        Err(Error::Lab(format!(
            "terraform {} failed in {} ({}):\n{}",
            args[0],
            self.state_dir.display(),
            out.status,
            tail.trim()
        )))
    }

    /// The SSH connection to `machine` (a name of [`LabOutputs::machine`]), made once.
    fn connection(&mut self, machine: &str) -> Result<SshConnection> {
        if let Some(c) = self.conns.get(machine) {
            return Ok(c.clone());
        }
        let outs = self.up()?.clone();
        let m = outs.machine(machine).ok_or_else(|| {
            Error::Lab(format!(
                "the terraform lab has no machine {machine} (its load hosts: {})",
                outs.load_hosts.len()
            ))
        })?;
        if self.provider == DEFAULT_PROVIDER {
            check_route(&m.ip)?;
        }
        let host_keys = match (&self.host_keys[..], &outs.known_hosts) {
            ("no", _) => HostKeyCheck::Unchecked(self.state_dir.join("known_hosts.unchecked")),
            (_, Some(p)) => HostKeyCheck::Strict(p.clone()),
            (_, None) => HostKeyCheck::AcceptNew(self.state_dir.join("known_hosts")),
        };
        let target = SshTarget {
            name: machine.to_string(),
            address: m.ip.clone(),
            port: self.ssh_port,
            user: outs.ssh_user.clone(),
            key: outs.key.clone(),
            host_keys,
            connect_timeout: self.ssh_connect_timeout,
            connect_wait: self.ssh_wait,
            lab_root: Some(self.remote_root()),
        };
        let c = SshConnection::connect(&target)?;
        if let Some(j) = &self.journal {
            j.update(|r| r.ssh_control_dirs.push(c.control_dir().to_path_buf()))?;
        }
        self.conns.insert(machine.to_string(), c.clone());
        Ok(c)
    }

    fn remote_root(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/perflab-{}", self.lab_id))
    }
}

/// A lab of this machine (the netns provider) must never be reached through a gateway: its
/// addresses are guarded by an unreachable route, and `ip route get ADDR` must show no `via`.
fn check_route(addr: &str) -> Result<()> {
    let Ok(out) = Command::new("ip").args(["route", "get", addr]).output() else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && text.split_whitespace().any(|w| w == "via") {
        return Err(Error::Lab(format!(
            "refusing to connect to {addr}: it is routed through a gateway ({}); a local lab address must be guarded (see docs/terraform.md)",
            text.trim()
        )));
    }
    Ok(())
}

fn missing_variables(stderr: &str) -> Vec<String> {
    let mut v = Vec::new();
    for line in stderr.lines() {
        if let Some(rest) = line.split("input variable \"").nth(1)
            && let Some(name) = rest.split('"').next()
            && line.contains("is not set")
            && !v.iter().any(|n: &String| n == name)
        {
            v.push(name.to_string());
        }
    }
    v
}

/// perflab's own folder in the cache (`<cache>/perflab`), kept 0700.
fn perflab_cache() -> PathBuf {
    cache_dir().join("perflab")
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache"),
        None => std::env::temp_dir(),
    }
}

/// `$PERFLAB_TERRAFORM_DIR`, else `./terraform`, else an installed perflab's
/// `<prefix>/share/perflab/terraform`, else the source tree's `terraform/`.
fn default_modules_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PERFLAB_TERRAFORM_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let cwd = PathBuf::from("terraform");
    if cwd.is_dir() {
        return cwd;
    }
    crate::install::data_dir("terraform")
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform"))
}

fn list_modules(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// True when a `.tf` file of the module in `dir` declares `variable "NAME"`.
fn declares_variable(dir: &Path, name: &str) -> bool {
    let decl = format!("variable \"{name}\"");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                e.path().extension().is_some_and(|x| x == "tf")
                    && std::fs::read_to_string(e.path())
                        .is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with(&decl)))
            })
        })
        .unwrap_or(false)
}

/// Files of a module that are not copied or hashed: terraform's own state and caches.
fn skipped(name: &str) -> bool {
    name == ".terraform"
        || name.starts_with("terraform.tfstate")
        || name == ".terraform.lock.hcl"
        || name.ends_with(".log")
}

fn copy_module(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let name = entry.file_name();
        if skipped(&name.to_string_lossy()) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(&name);
        if from.is_dir() {
            copy_module(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
    }
    Ok(())
}

fn hash_dir(root: &Path, dir: &Path, h: &mut Sha256) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if skipped(&name.to_string_lossy()) {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            hash_dir(root, &p, h)?;
        } else {
            h.update(
                p.strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .as_bytes(),
            );
            h.update(std::fs::read(&p).map_err(|e| Error::io(&p, e))?);
        }
    }
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(data).map_err(|e| Error::io(path, e))
}

impl Driver for TerraformDriver {
    fn name(&self) -> &'static str {
        "terraform"
    }

    /// Cloud and bring-your-own machines, yes; `netns` hosts are namespaces of this machine,
    /// whose packages are the user's.
    fn installs_packages(&self) -> bool {
        self.provider != "netns"
    }

    fn host(&mut self, role: Role, instance: &str) -> Result<Arc<dyn Host>> {
        let key = (role, instance.to_string());
        if let Some(h) = self.hosts.get(&key) {
            return Ok(h.clone());
        }
        let outs = self.up()?.clone();
        let machine = match role {
            Role::Gateway => "kong",
            // Load host `load-N` is its own machine when the lab has one, else the worker.
            Role::Worker if outs.machine(instance).is_some() => instance,
            Role::Worker => "worker",
            Role::Database if outs.db.is_some() => "db",
            Role::Database => "kong",
        };
        let m = outs.machine(machine).expect("a machine of the lab");
        let conn = self.connection(machine)?;
        // The netns machines share one filesystem: every role gets its own dir.
        let dir = self
            .remote_root()
            .join(format!("{}-{instance}", role.as_str()));
        self.ensure_journal()?;
        if let Some(j) = &self.journal {
            j.add_remote_dir(machine, &dir)?;
        }
        let name = if machine.starts_with("load-") {
            machine
        } else {
            role.as_str()
        };
        let host = Arc::new(SshHost::new(conn, name, &m.internal_ip, &dir)?);
        self.hosts.insert(key, host.clone());
        Ok(host)
    }

    fn load_hosts(&self) -> u32 {
        self.load_hosts
    }

    fn teardown(&mut self, full: bool) -> Result<()> {
        let mut errors = Vec::new();
        for host in self.hosts.values() {
            if let Err(e) = host.stop_all(Duration::from_secs(5)) {
                errors.push(e.to_string());
            }
            if let Err(e) = host.remove_dir_all(host.lab_dir()) {
                errors.push(e.to_string());
            }
        }
        self.remove_remote_root();
        self.hosts.clear();
        self.conns.clear();
        if full && self.state_dir.join("terraform.tfstate").is_file() {
            self.terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"])?;
            let _ = std::fs::remove_file(self.fingerprint_file());
            let _ = std::fs::remove_file(self.state_dir.join("known_hosts"));
            self.outputs = None;
        }
        if errors.is_empty() {
            if let Some(j) = self.journal.take() {
                j.remove();
            }
            Ok(())
        } else {
            Err(Error::Lab(format!(
                "terraform lab teardown: {}",
                errors.join("; ")
            )))
        }
    }

    fn describe(&self) -> serde_json::Value {
        let outs = self.outputs.as_ref();
        serde_json::json!({
            "driver": "terraform",
            "provider": self.provider,
            "lab": self.lab,
            "state_dir": self.state_dir,
            "machines": outs.map(|o| serde_json::json!({
                "kong": o.kong, "worker": o.worker, "db": o.db,
                "load": o.load_hosts.get(1..).unwrap_or_default(),
            })),
            "load_hosts": self.load_hosts,
            "ssh_user": outs.map(|o| o.ssh_user.clone()),
            "toolchain": outs.and_then(|o| o.toolchain.clone()).unwrap_or_else(|| "installed over SSH".into()),
            "infrastructure": match (outs, self.reused) {
                (None, _) => "not up",
                (Some(_), true) => "reused",
                (Some(_), false) => "applied",
            },
            "apply_s": self.apply_time.map(|d| d.as_secs_f64()),
            "tfvars": self.tfvar_names(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variables_are_named() {
        let stderr = "Error: No value for required variable\n\nThe root module input variable \"kong_ip\" is not set, and has no default\nvalue.\nThe root module input variable \"worker_ip\" is not set, and has no default\n";
        assert_eq!(missing_variables(stderr), vec!["kong_ip", "worker_ip"]);
    }

    #[test]
    fn kong_env_vars_map_to_tfvars() {
        let m = env_tfvars("equinix-metal");
        assert!(m.contains(&("PERF_TEST_METAL_AUTH_TOKEN", "metal_auth_token")));
        assert_eq!(env_tfvars("digitalocean").len(), 5);
        assert!(env_tfvars("netns").is_empty());
    }

    #[test]
    fn load_hosts_output_lists_machines_worker_first() {
        let v = serde_json::json!([
            { "ip": "10.0.0.6", "internal_ip": "10.1.0.2" },
            { "ip": "10.0.0.10" }
        ]);
        let hosts = load_hosts_output(&v).unwrap();
        assert_eq!(
            hosts[1].internal_ip, "10.0.0.10",
            "internal_ip defaults to ip"
        );
        let outs = LabOutputs {
            kong: Machine {
                ip: "k".into(),
                internal_ip: "ki".into(),
            },
            worker: hosts[0].clone(),
            db: None,
            load_hosts: hosts,
            key: PathBuf::new(),
            ssh_user: "root".into(),
            known_hosts: None,
            toolchain: None,
        };
        assert_eq!(outs.machine("load-2").unwrap().ip, "10.0.0.10");
        assert_eq!(outs.machine("load-1"), Some(&outs.worker));
        assert_eq!(outs.machine("db"), Some(&outs.kong));
        assert!(outs.machine("load-3").is_none() && outs.machine("load-0").is_none());
        for bad in [
            serde_json::json!([]),
            serde_json::json!("10.0.0.6"),
            serde_json::json!([{ "internal_ip": "10.1.0.2" }]),
        ] {
            assert!(load_hosts_output(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_module_takes_a_load_host_count() {
        let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform");
        for e in std::fs::read_dir(&modules).unwrap().flatten() {
            assert!(
                declares_variable(&e.path(), LOAD_HOST_COUNT_VAR),
                "{}",
                e.path().display()
            );
            let tf = std::fs::read_to_string(e.path().join("main.tf")).unwrap();
            assert!(
                tf.contains(&format!("output \"{LOAD_HOSTS_OUTPUT}\"")),
                "{}",
                e.path().display()
            );
        }
    }

    #[test]
    fn unknown_options_and_bad_names_are_refused() {
        let mut o = DriverOptions::new();
        o.insert("provder".into(), "netns".into());
        assert!(matches!(
            TerraformDriver::new(&o, "x"),
            Err(Error::Usage(_))
        ));
        let mut o = DriverOptions::new();
        o.insert("provider".into(), "../etc".into());
        assert!(matches!(
            TerraformDriver::new(&o, "x"),
            Err(Error::Usage(_))
        ));
        let mut o = DriverOptions::new();
        o.insert("provider".into(), "no-such-cloud".into());
        let e = TerraformDriver::new(&o, "x").err().unwrap().to_string();
        assert!(e.contains("not supported") && e.contains("netns"), "{e}");
    }
}
