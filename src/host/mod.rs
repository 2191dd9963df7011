//! The `Host` interface: the only thing drivers provide.
//!
//! Every role (upstream, gateway, load generator, profiler, database) is written once against
//! this trait, so a fix lands on the local, docker and terraform drivers at once. A host can run
//! a command and wait, spawn a background process in its own process group and stop it later,
//! read and write files, say which address other hosts use to reach it, give a private work dir,
//! and report CPU time from `/proc`.
//!
//! The trait is synchronous on purpose: the lab's control flow is sequential (start, measure,
//! stop), and blocking code is simpler to follow. Hosts that talk async protocols (Docker, SSH)
//! drive their own runtime inside.

pub mod container;
pub mod http_call;
pub mod local;
pub mod proc_stat;
pub mod process_group;
pub mod quote;
pub mod remote_process;
pub mod remote_shell;
pub mod ssh;
pub mod terminate;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use http_call::{HttpCall, HttpReply};
pub use local::LocalHost;

/// A command to run on a host: an argv vector, never a shell string built from user data.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    /// The program (a name looked up in the host's PATH, or a path).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory on the host.
    pub cwd: Option<PathBuf>,
    /// CPUs to pin the process to (`taskset -c`), if any.
    pub cpus: Option<Vec<usize>>,
}

impl Cmd {
    /// A command with a program and no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            ..Default::default()
        }
    }
    /// Adds one argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    /// Adds arguments.
    pub fn args<I, S>(mut self, it: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }
    /// Adds an environment variable.
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    /// Pins to CPUs.
    pub fn cpus(mut self, cpus: Option<Vec<usize>>) -> Self {
        self.cpus = cpus;
        self
    }
    /// The argv with a `taskset -c LIST` prefix when CPUs are set.
    pub fn argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(cpus) = self.cpus.as_ref().filter(|c| !c.is_empty()) {
            let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
            v.push("taskset".to_string());
            v.push("-c".to_string());
            v.push(list.join(","));
        }
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v
    }
    /// A readable one-line form for logs and results (quoted for a POSIX shell).
    pub fn display(&self) -> String {
        quote::join(&self.argv())
    }
}

/// What a finished command returned.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Standard error as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// Both streams, for error messages.
    pub fn combined_text(&self) -> String {
        let mut s = self.stdout_text();
        let e = self.stderr_text();
        if !s.is_empty() && !e.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&e);
        s.trim_end().to_string()
    }
}

/// Errors from a host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The program could not be started.
    #[error("cannot start `{program}` on {host}: {reason}")]
    Spawn {
        /// Host name.
        host: String,
        /// Program.
        program: String,
        /// Why.
        reason: String,
    },
    /// The command ran too long and was killed.
    #[error("`{command}` on {host} did not finish within {timeout:?}")]
    Timeout {
        /// Host name.
        host: String,
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// A file operation failed.
    #[error("{op} {path} on {host}: {reason}")]
    File {
        /// Host name.
        host: String,
        /// "reading" / "writing".
        op: &'static str,
        /// The path on the host.
        path: String,
        /// Why.
        reason: String,
    },
    /// A transport or other failure (SSH, Docker API).
    #[error("{host}: {reason}")]
    Other {
        /// Host name.
        host: String,
        /// Why.
        reason: String,
    },
}

/// The words every host uses when a program to start does not exist (see
/// [`HostError::is_missing_program`]).
pub const NOT_INSTALLED: &str = "is not installed or not on PATH";

impl HostError {
    /// True when a program could not be started because it does not exist on the host: a
    /// missing tool (exit status 3), not a lab failure.
    pub fn is_missing_program(&self) -> bool {
        matches!(self, HostError::Spawn { reason, .. } if reason.contains(NOT_INSTALLED))
    }
}

/// A background process on a host, in its own process group.
///
/// The same on every host: [`Proc::stop`] is the lab's one stop routine ([`terminate`]: TERM,
/// up to `grace` for the group to go, then KILL), and a handle dropped without a stop KILLs
/// what still runs of its group at once (the last resort; an orderly lab stops what it
/// started). Local processes: [`local`]; SSH and container hosts share one core:
/// [`remote_process`].
pub trait Proc: Send {
    /// The process id on its host (also its process group id).
    fn pid(&self) -> u32;
    /// True while it runs.
    fn is_running(&mut self) -> bool;
    /// Waits up to `timeout` for it to exit; `Some(code)` when it did (`-signal` when killed).
    fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<i32>, HostError>;
    /// Stops the whole process group with [`terminate`]: TERM, up to `grace` to exit, then
    /// KILL.
    fn stop(&mut self, grace: Duration) -> Result<(), HostError>;
}

/// Busy and total CPU time of a whole machine, from `/proc/stat`, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineCpu {
    /// Seconds spent not idle, summed over all CPUs.
    pub busy_s: f64,
    /// Seconds summed over all CPUs (busy + idle).
    pub total_s: f64,
}

/// A machine (or container, or namespace) the lab uses for one or more roles.
pub trait Host: Send + Sync {
    /// A short name for messages ("local", "gateway", "worker").
    fn name(&self) -> &str;
    /// The address other hosts of the lab use to reach services on this host.
    fn address(&self) -> String;
    /// A private directory for this lab on the host (created by the driver).
    fn lab_dir(&self) -> &Path;
    /// Runs a command and waits for it, killing it after `timeout`.
    fn run(&self, cmd: &Cmd, timeout: Duration) -> Result<CmdOutput, HostError>;
    /// Starts a background process in its own process group; its stdout and stderr go to `log`
    /// (a path on the host).
    fn spawn(&self, cmd: &Cmd, log: &Path) -> Result<Box<dyn Proc>, HostError>;
    /// Writes a file on the host (parents created), atomically where the host allows.
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<(), HostError>;
    /// Reads a file from the host.
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, HostError>;
    /// Removes a directory tree on the host (missing is fine).
    fn remove_dir_all(&self, path: &Path) -> Result<(), HostError>;
    /// Whether this host sees this machine's files at the same paths (the local host), so a
    /// local directory needs no copy.
    fn shares_local_files(&self) -> bool {
        false
    }
    /// Copies the local directory `local` to `remote` on the host, replacing what was there
    /// (a `git:` version's tree for a gateway on a container or remote machine). It sends one
    /// tar archive through [`Host::write_file`] and unpacks it with the host's `tar`.
    fn upload_tree(&self, local: &Path, remote: &Path) -> Result<(), HostError> {
        let file_err = |reason: String| HostError::File {
            host: self.name().to_string(),
            op: "copying",
            path: local.display().to_string(),
            reason,
        };
        let mut archive = tar::Builder::new(Vec::new());
        archive.follow_symlinks(false);
        archive
            .append_dir_all(".", local)
            .map_err(|e| file_err(e.to_string()))?;
        let bytes = archive.into_inner().map_err(|e| file_err(e.to_string()))?;
        if self.which("tar").is_none() {
            return Err(HostError::Other {
                host: self.name().to_string(),
                reason: format!(
                    "`tar` is not on the host; it is needed to copy {} there",
                    local.display()
                ),
            });
        }
        let staged = PathBuf::from(format!("{}.upload.tar", remote.display()));
        self.write_file(&staged, &bytes)?;
        let out = self.run(
            &Cmd::new("sh")
                .arg("-c")
                .arg(r#"rm -rf "$1" && mkdir -p "$1" && tar -xf "$2" -C "$1" && rm -f "$2""#)
                .arg("sh")
                .arg(remote.display().to_string())
                .arg(staged.display().to_string()),
            Duration::from_secs(300),
        )?;
        if !out.success() {
            return Err(HostError::Other {
                host: self.name().to_string(),
                reason: format!(
                    "unpacking {} into {} failed: {}",
                    local.display(),
                    remote.display(),
                    out.combined_text()
                ),
            });
        }
        Ok(())
    }
    /// The `/proc/stat` text and the stat lines of every process, for CPU accounting.
    fn proc_snapshot(&self) -> Result<proc_stat::Snapshot, HostError> {
        let out = self.run(
            &Cmd::new("sh").arg("-c").arg(proc_stat::SNAPSHOT_SCRIPT),
            Duration::from_secs(10),
        )?;
        Ok(proc_stat::Snapshot::from_script_output(&out.stdout_text()))
    }
    /// Finds a program on the host's PATH.
    fn which(&self, program: &str) -> Option<String> {
        find_on_path(self, program)
    }
    /// Performs an HTTP GET from this host, returning the status code. Used for readiness checks,
    /// so it runs where the load generator runs (the gateway's address may only be reachable there).
    fn http_status(&self, url: &str, timeout: Duration) -> Result<u16, HostError> {
        self.http_request(&HttpCall::get(url), timeout)
            .map(|r| r.status)
    }
    /// Sends one HTTP request *from this host* and returns its status, its body (at most
    /// [`HttpCall::max_body`] bytes kept) and how long it took as the host measured it.
    ///
    /// Lab addresses (a terraform lab's internal plane, a container network) are often reachable
    /// only from inside the lab, so admin API calls and actions during load go through a host of
    /// the lab. The default runs `curl` on the host: curl is in every lab image and on every
    /// terraform host (the readiness checks already need it), the perflab binary is not, and
    /// curl times the request where it happens, without the exec or SSH round trip. A request
    /// that gets no HTTP answer (refused, timed out) is an error carrying curl's message.
    fn http_request(&self, call: &HttpCall, timeout: Duration) -> Result<HttpReply, HostError> {
        http_call::http_via_curl(self, call, timeout)
    }
}

/// `command -v PROGRAM` on the host: the path of a program on its PATH. [`Host::which`] by
/// default; hosts that cache answers call it for what they have not seen.
pub fn find_on_path<H: Host + ?Sized>(host: &H, program: &str) -> Option<String> {
    let out = host
        .run(
            &Cmd::new("sh")
                .arg("-c")
                .arg("command -v \"$1\"")
                .arg("sh")
                .arg(program),
            Duration::from_secs(10),
        )
        .ok()?;
    let p = out.stdout_text().trim().to_string();
    (out.success() && !p.is_empty()).then_some(p)
}

/// Polls `f` every `interval` until it returns `Some`, or `deadline` passes; also stops early when
/// the lab is interrupted.
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout || crate::signals::interrupted() {
            return None;
        }
        std::thread::sleep(interval);
    }
}
