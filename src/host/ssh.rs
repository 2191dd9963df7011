//! Hosts reached over SSH: the machines of a terraform lab.
//!
//! Why this shape:
//! - One multiplexed connection per machine (the openssh crate's `native-mux`, speaking
//!   OpenSSH's mux protocol over a control socket), shared by every role placed on that machine.
//! - A new SSH channel costs ~0.2 s (sshd starts a session and a login shell each time), and a
//!   run needs ~20 remote commands. So commands go through one long-lived remote shell per
//!   connection ([`ShellSlot`]): the script and its stdin are sent length-prefixed on the shell's
//!   stdin, run as `sh FILE` with files for stdin/stdout/stderr, and the exit status and output
//!   come back length-prefixed. A command costs a few forks instead of a channel. When the shell
//!   is busy (another thread) or cannot start, a command uses a channel of its own, as before.
//!   Polling loops still run remotely in one command instead of once per poll.
//! - The [`Host`] trait is synchronous; an [`SshConnection`] owns a small tokio runtime and
//!   blocks on it.
//! - Remote commands are shell strings, unavoidably: every word goes through
//!   [`crate::host::quote`], the one quoting function.
//! - Background programs are started, watched and stopped by the remote-process core that
//!   container hosts share ([`super::remote_process`]): a wrapper with every fd redirected (`cd x
//!   && nohup prog &` would hang the channel), each program in its own session and group, pid
//!   and exit files under the host's lab dir. Those pid files also let a teardown stop what the
//!   lab started, by pid, never by name.
//! - Every remote command is a `tracing` debug event (host, seconds, shell or channel, its first
//!   line): `PERFLAB_LOG=perflab::host::ssh=debug` shows them, for counting round trips.
//! - Host keys change on every apply: the known_hosts file is the lab's own (from the terraform
//!   module, or a lab-owned file filled on first contact), never the user's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::quote::{join, quote};
use super::remote_process::{
    self, ScriptHost, TRANSPORT_SLACK, command_line, pids_dir, stop_recorded,
};
use super::remote_shell::{LiveShell, ShellPipes, ShellRun, ShellSlot, shell_loop};
use super::{Cmd, CmdOutput, Host, HostError, Proc};

/// How the remote host's key is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// The key must already be in this known_hosts file (the netns module writes one).
    Strict(PathBuf),
    /// Keys of new hosts are added to this lab-owned file on first contact; a changed key is
    /// refused.
    AcceptNew(PathBuf),
    /// Not checked at all (explicit opt-in; keys are recorded in this throw-away file).
    Unchecked(PathBuf),
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// A name for messages ("kong", "worker").
    pub name: String,
    /// The address to connect to (the machine's public address).
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Remote user (`root`, or one with passwordless sudo).
    pub user: String,
    /// Private key file (mode 0600 is enforced before connecting).
    pub key: PathBuf,
    /// Host key policy.
    pub host_keys: HostKeyCheck,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Total time to keep retrying (fresh cloud machines take a while to accept SSH).
    pub connect_wait: Duration,
    /// The lab's root dir on the machine: when the connection's remote shell ends (perflab
    /// closed it, died, or lost the network), it stops the programs recorded under it.
    pub lab_root: Option<PathBuf>,
}

impl SshTarget {
    /// A target with the usual defaults: port 22, user `root`, 5 s per attempt, 60 s in all,
    /// host keys added to `<key>.known_hosts` on first contact.
    pub fn new(name: &str, address: &str, key: &Path) -> Self {
        SshTarget {
            name: name.to_string(),
            address: address.to_string(),
            port: 22,
            user: "root".to_string(),
            key: key.to_path_buf(),
            host_keys: HostKeyCheck::AcceptNew(key.with_extension("known_hosts")),
            connect_timeout: Duration::from_secs(5),
            connect_wait: Duration::from_secs(60),
            lab_root: None,
        }
    }
}

struct Conn {
    name: String,
    target: String,
    // Dropped in `Drop` before the runtime (closing the mux master needs the runtime).
    session: Option<Arc<Session>>,
    /// The long-lived remote shell commands run in (started on first use).
    shell: ShellSlot<openssh::ChildStdin, openssh::ChildStdout, RemoteChild>,
    lab_root: Option<PathBuf>,
    rt: tokio::runtime::Runtime,
    ctl_dir: tempfile::TempDir,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The shell holds a reference to the session: end it first (EOF ends its loop).
        if let Some(shell) = self.shell.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), close_shell(shell)).await
            });
        }
        if let Some(s) = self.session.take().and_then(|s| Arc::try_unwrap(s).ok()) {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), s.close()).await });
        }
    }
}

/// One multiplexed SSH connection to a machine; cheap to clone, shared by the [`SshHost`]s of
/// every role placed on the machine.
#[derive(Clone)]
pub struct SshConnection {
    conn: Arc<Conn>,
}

impl std::fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnection")
            .field("name", &self.conn.name)
            .field("target", &self.conn.target)
            .finish()
    }
}

fn other(host: &str, reason: impl Into<String>) -> HostError {
    HostError::Other {
        host: host.to_string(),
        reason: reason.into(),
    }
}

impl SshConnection {
    /// Connects, retrying with backoff (0.25 s doubling to 5 s) until `target.connect_wait`
    /// has passed; the error names the address and carries ssh's last message.
    pub fn connect(target: &SshTarget) -> Result<Self, HostError> {
        let name = target.name.as_str();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("perflab-ssh")
            .enable_all()
            .build()
            .map_err(|e| other(name, format!("cannot start an async runtime: {e}")))?;
        // Unix socket paths are limited to 108 bytes: keep the control dir short.
        let ctl_dir = tempfile::Builder::new()
            .prefix("plssh")
            .tempdir_in("/tmp")
            .map_err(|e| {
                other(
                    name,
                    format!("cannot create an SSH control dir in /tmp: {e}"),
                )
            })?;
        restrict_key(&target.key)
            .map_err(|e| other(name, format!("SSH key {}: {e}", target.key.display())))?;
        let (check, kh) = match &target.host_keys {
            HostKeyCheck::Strict(p) => (KnownHosts::Strict, p),
            HostKeyCheck::AcceptNew(p) => (KnownHosts::Add, p),
            HostKeyCheck::Unchecked(p) => (KnownHosts::Accept, p),
        };
        let mut b = SessionBuilder::default();
        b.user(target.user.clone())
            .port(target.port)
            .keyfile(&target.key)
            .known_hosts_check(check)
            .user_known_hosts_file(kh)
            .control_directory(ctl_dir.path())
            .connect_timeout(target.connect_timeout)
            .server_alive_interval(Duration::from_secs(15));
        let dest = format!("{}@{}", target.user, target.address);
        let start = Instant::now();
        let mut delay = Duration::from_millis(250);
        let mut attempts = 0;
        let session = loop {
            attempts += 1;
            match rt.block_on(b.connect_mux(&target.address)) {
                Ok(s) => break s,
                Err(e) => {
                    let waited = start.elapsed();
                    if waited + delay > target.connect_wait || crate::signals::interrupted() {
                        return Err(other(
                            name,
                            format!(
                                "cannot connect over SSH to {dest} port {} after {attempts} attempt(s) in {:.1}s: {}",
                                target.port,
                                waited.as_secs_f64(),
                                error_chain(&e)
                            ),
                        ));
                    }
                    tracing::debug!("ssh {dest}: {}; retrying in {delay:?}", error_chain(&e));
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        Ok(SshConnection {
            conn: Arc::new(Conn {
                name: target.name.clone(),
                target: dest,
                session: Some(Arc::new(session)),
                shell: ShellSlot::default(),
                lab_root: target.lab_root.clone(),
                rt,
                ctl_dir,
            }),
        })
    }

    /// The local dir holding the connection's control socket (`*/master`): `ssh -S SOCKET -O
    /// exit` ends the connection's master process should perflab die (see [`crate::journal`]).
    pub fn control_dir(&self) -> &Path {
        self.conn.ctl_dir.path()
    }

    /// `user@address` of the machine.
    pub fn target(&self) -> &str {
        &self.conn.target
    }

    /// Runs a POSIX shell script on the machine (through the login shell of the remote user),
    /// feeding `stdin`, and waits up to `timeout` for the transport (the script should bound its
    /// own run time).
    pub fn run_script(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CmdOutput, HostError> {
        let c = &self.conn;
        let started = Instant::now();
        let fits = stdin.is_none_or(|d| d.len() <= SHELL_MAX_STDIN);
        let in_shell = match fits {
            true => c.rt.block_on(c.shell.run(
                &c.name,
                || {
                    start_shell(
                        c.session.clone().expect("open until dropped"),
                        c.lab_root.as_deref(),
                    )
                },
                script.as_bytes(),
                stdin.unwrap_or(&[]),
                timeout,
            )),
            false => None,
        };
        let via = if in_shell.is_some() {
            "shell"
        } else {
            "channel"
        };
        let result = match in_shell {
            Some(ShellRun::Done(out)) => Ok(out),
            Some(ShellRun::Failed(e)) => Err(other(
                &c.name,
                format!("SSH to {}: the remote shell failed: {e}", c.target),
            )),
            Some(ShellRun::TimedOut) => Err(HostError::Timeout {
                host: c.name.clone(),
                command: script.to_string(),
                timeout,
            }),
            None => self.channel_run(script, stdin, timeout),
        };
        if tracing::enabled!(tracing::Level::DEBUG) {
            let command: String = script
                .lines()
                .find(|l| !l.starts_with("umask 022") && !l.contains("creating empty files failed"))
                .unwrap_or("")
                .chars()
                .take(100)
                .collect();
            tracing::debug!(
                host = %c.name,
                seconds = started.elapsed().as_secs_f64(),
                via,
                command,
                "ssh command"
            );
        }
        result
    }

    /// Runs a script on a channel of its own (the login shell of the remote user).
    fn channel_run(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CmdOutput, HostError> {
        let c = &self.conn;
        let session = c.session.as_ref().expect("open until dropped");
        // The openssh crate turns exit status 127 into an error and drops the output: carry 127
        // as a marker on stderr instead.
        let wrapped = format!(
            "sh -c {}; r=$?; if [ $r -eq 127 ]; then printf '\\n%s\\n' {EXIT_127} >&2; exit 1; fi; exit $r",
            quote(script)
        );
        let fut = async {
            let mut cmd = session.raw_command(&wrapped);
            cmd.stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            let mut child = cmd.spawn().await?;
            if let Some(data) = stdin {
                let mut w = child.stdin().take().expect("piped stdin");
                w.write_all(data).await.map_err(openssh::Error::ChildIo)?;
                w.shutdown().await.map_err(openssh::Error::ChildIo)?;
                drop(w);
            }
            child.wait_with_output().await
        };
        let result =
            c.rt.block_on(async { tokio::time::timeout(timeout, fut).await });
        match result {
            Err(_) => Err(HostError::Timeout {
                host: c.name.clone(),
                command: script.to_string(),
                timeout,
            }),
            Ok(Err(openssh::Error::RemoteProcessTerminated)) => Ok(CmdOutput {
                code: None,
                stdout: Vec::new(),
                stderr: b"killed by a signal (or the connection dropped)".to_vec(),
            }),
            Ok(Err(e)) => Err(other(
                &c.name,
                format!("SSH to {}: {}", c.target, error_chain(&e)),
            )),
            Ok(Ok(out)) => {
                let marker = format!("\n{EXIT_127}\n");
                let mut stderr = out.stderr;
                let mut code = out.status.code();
                if stderr.ends_with(marker.as_bytes()) {
                    stderr.truncate(stderr.len() - marker.len());
                    code = Some(127);
                }
                Ok(CmdOutput {
                    code,
                    stdout: out.stdout,
                    stderr,
                })
            }
        }
    }
}

/// Standard input larger than this goes over a channel of its own rather than the shell.
const SHELL_MAX_STDIN: usize = 64 << 20;

/// The SSH channel a long-lived remote shell ([`super::remote_shell`]) runs on.
type RemoteChild = openssh::Child<Arc<Session>>;

/// Starts the loop on a channel of its own; with `lab_root`, it stops the lab's programs there
/// when it ends.
async fn start_shell(
    session: Arc<Session>,
    lab_root: Option<&Path>,
) -> Result<LiveShell<openssh::ChildStdin, openssh::ChildStdout, RemoteChild>, String> {
    let root = lab_root.map(|r| quote(&path_str(r))).unwrap_or_default();
    let mut cmd = session.arc_raw_command(format!("sh -c {} sh {root}", quote(&shell_loop())));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().await.map_err(|e| error_chain(&e))?;
    let stdin = child.stdin().take().ok_or("no stdin")?;
    let stdout = child.stdout().take().ok_or("no stdout")?;
    let pipes = tokio::time::timeout(Duration::from_secs(30), ShellPipes::connect(stdin, stdout))
        .await
        .map_err(|_| "the remote shell did not start within 30 s".to_string())??;
    Ok(LiveShell { pipes, keep: child })
}

/// Ends a shell: closing its stdin ends the loop, which removes its temp dir.
async fn close_shell(shell: LiveShell<openssh::ChildStdin, openssh::ChildStdout, RemoteChild>) {
    drop(shell.pipes.into_inner());
    let _ = shell.keep.wait().await;
}

/// Stands for exit status 127 on stderr (see [`SshConnection::run_script`]).
const EXIT_127: &str = "__perflab_exit_status_127__";

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s.trim().to_string()
}

fn restrict_key(key: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(key)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// What runs one role's scripts on its machine: the connection, the role's name for messages,
/// and the empty files still to create (see [`SshHost::write_file`]). Shared with the role's
/// background programs ([`RemoteProc`]), which outlive no connection they need.
#[derive(Debug)]
struct RoleScripts {
    conn: SshConnection,
    name: String,
    pending: Mutex<Vec<String>>,
}

impl RoleScripts {
    /// Runs a script on the machine with umask 022 (nginx workers run as an unprivileged user
    /// and must traverse the lab's dirs and read its files), after creating any pending empty
    /// files.
    fn script(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CmdOutput, HostError> {
        let pending: Vec<String> = std::mem::take(&mut *self.pending.lock().expect("not poisoned"));
        let mut full = String::from("umask 022\n");
        if !pending.is_empty() {
            let dirs: Vec<String> = pending
                .iter()
                .map(|f| {
                    Path::new(f)
                        .parent()
                        .map(path_str)
                        .unwrap_or_else(|| ".".into())
                })
                .collect();
            full.push_str(&format!(
                "mkdir -p {} && : | tee {} >/dev/null || {{ echo 'creating empty files failed' >&2; exit 1; }}\n",
                join(&dirs),
                join(&pending)
            ));
        }
        full.push_str(script);
        self.conn
            .run_script(&full, stdin, timeout)
            .map_err(|e| match e {
                HostError::Other { reason, .. } => other(&self.name, reason),
                HostError::Timeout {
                    command, timeout, ..
                } => HostError::Timeout {
                    host: self.name.clone(),
                    command,
                    timeout,
                },
                e => e,
            })
    }
}

impl ScriptHost for RoleScripts {
    fn name(&self) -> &str {
        &self.name
    }

    fn run_script(&self, script: &str, timeout: Duration) -> Result<CmdOutput, HostError> {
        self.script(script, None, timeout)
    }
}

/// One role's view of a machine reached over SSH.
#[derive(Debug)]
pub struct SshHost {
    scripts: Arc<RoleScripts>,
    address: String,
    lab_dir: PathBuf,
    /// Programs found on the machine (`which` is asked for the same programs every run).
    found: Mutex<HashMap<String, Option<String>>>,
}

impl SshHost {
    /// A host named `name` on `conn`: other lab hosts reach it at `address` (its internal
    /// address); its private directory `lab_dir` is created here.
    pub fn new(
        conn: SshConnection,
        name: &str,
        address: &str,
        lab_dir: &Path,
    ) -> Result<Self, HostError> {
        let h = SshHost {
            scripts: Arc::new(RoleScripts {
                conn,
                name: name.to_string(),
                pending: Mutex::new(Vec::new()),
            }),
            address: address.to_string(),
            lab_dir: lab_dir.to_path_buf(),
            found: Mutex::new(HashMap::new()),
        };
        let out = h.scripts.script(
            &format!("mkdir -p {}", quote(&path_str(&pids_dir(lab_dir)))),
            None,
            Duration::from_secs(30),
        )?;
        if !out.success() {
            return Err(h.file_err("creating", lab_dir, out.combined_text()));
        }
        Ok(h)
    }

    /// The connection this host uses.
    pub fn connection(&self) -> &SshConnection {
        &self.scripts.conn
    }

    fn file_err(&self, op: &'static str, path: &Path, reason: String) -> HostError {
        HostError::File {
            host: self.scripts.name.clone(),
            op,
            path: path.display().to_string(),
            reason,
        }
    }

    /// Stops every process this host's lab dir records as started and still running (TERM to
    /// its group, up to `grace`, then KILL), by pid. Returns how many were signalled.
    pub fn stop_all(&self, grace: Duration) -> Result<usize, HostError> {
        stop_recorded(self.scripts.as_ref(), &pids_dir(&self.lab_dir), grace)
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.scripts.name
    }

    fn address(&self) -> String {
        self.address.clone()
    }

    fn lab_dir(&self) -> &Path {
        &self.lab_dir
    }

    fn run(&self, cmd: &Cmd, timeout: Duration) -> Result<CmdOutput, HostError> {
        // `timeout` kills the command's whole process group remotely; the local limit only
        // guards against a stuck transport.
        let secs = format!("{:.3}s", timeout.as_secs_f64().max(0.001));
        let wrapper: Vec<String> = ["timeout", "-k", "5s", secs.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let start = Instant::now();
        let out = self.scripts.script(
            &command_line(cmd, &wrapper),
            None,
            timeout + TRANSPORT_SLACK,
        )?;
        if matches!(out.code, Some(124) | Some(137)) && start.elapsed() >= timeout {
            return Err(HostError::Timeout {
                host: self.scripts.name.clone(),
                command: cmd.display(),
                timeout,
            });
        }
        if out.code == Some(127) && out.stdout.is_empty() {
            let err = out.stderr_text();
            if err.contains("No such file") || err.contains("not found") {
                return Err(HostError::Spawn {
                    host: self.scripts.name.clone(),
                    program: cmd.program.clone(),
                    reason: format!("`{}` {}", cmd.argv()[0], super::NOT_INSTALLED),
                });
            }
        }
        Ok(out)
    }

    fn spawn(&self, cmd: &Cmd, log: &Path) -> Result<Box<dyn Proc>, HostError> {
        let proc = remote_process::spawn(self.scripts.clone(), &pids_dir(&self.lab_dir), cmd, log)?;
        Ok(Box::new(proc))
    }

    fn which(&self, program: &str) -> Option<String> {
        if let Some(found) = self.found.lock().expect("not poisoned").get(program) {
            return found.clone();
        }
        let found = super::find_on_path(self, program);
        // Only successful answers are kept: a program may be installed later in the session.
        if found.is_some() {
            self.found
                .lock()
                .expect("not poisoned")
                .insert(program.to_string(), found.clone());
        }
        found
    }

    /// Writes a file over SSH. Empty files (the roles' `.keep` markers that create a directory)
    /// are created with the host's next remote command instead of a round trip of their own:
    /// every command of this host sees them, and a failure to create them fails that command.
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<(), HostError> {
        let p = path_str(path);
        if data.is_empty() && !p.trim_end_matches('/').is_empty() {
            self.scripts.pending.lock().expect("not poisoned").push(p);
            return Ok(());
        }
        let parent = path
            .parent()
            .map(path_str)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| ".".to_string());
        let tmp = format!("{p}.perflab-tmp");
        let script = format!(
            "mkdir -p {parent} && cat > {tmp} && mv -f {tmp} {p}",
            parent = quote(&parent),
            tmp = quote(&tmp),
            p = quote(&p)
        );
        let timeout = Duration::from_secs(60) + Duration::from_millis(data.len() as u64 / 1000);
        let out = self.scripts.script(&script, Some(data), timeout)?;
        if out.success() {
            Ok(())
        } else {
            Err(self.file_err("writing", path, out.combined_text()))
        }
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>, HostError> {
        let out = self.scripts.script(
            &format!("cat {}", quote(&path_str(path))),
            None,
            Duration::from_secs(300),
        )?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.file_err("reading", path, out.stderr_text().trim().to_string()))
        }
    }

    fn remove_dir_all(&self, path: &Path) -> Result<(), HostError> {
        let p = path_str(path);
        if p.trim_end_matches('/').is_empty() {
            return Err(self.file_err("removing", path, "refusing to remove /".to_string()));
        }
        let out = self.scripts.script(
            &format!("rm -rf {}", quote(&p)),
            None,
            Duration::from_secs(120),
        )?;
        if out.success() {
            Ok(())
        } else {
            Err(self.file_err("removing", path, out.combined_text()))
        }
    }
}
