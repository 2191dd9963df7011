//! Hosts reached over SSH: the machines of a terraform lab.
//!
//! Why this shape:
//! - One multiplexed connection per machine (the openssh crate's `native-mux`, speaking
//!   OpenSSH's mux protocol over a control socket), shared by every role placed on that machine.
//! - A new SSH channel costs ~0.2 s (sshd starts a session and a login shell each time), and a
//!   run needs ~20 remote commands. So commands go through one long-lived remote shell per
//!   connection ([`Shell`]): the script and its stdin are sent length-prefixed on the shell's
//!   stdin, run as `sh FILE` with files for stdin/stdout/stderr, and the exit status and output
//!   come back length-prefixed. A command costs a few forks instead of a channel. When the shell
//!   is busy (another thread) or cannot start, a command uses a channel of its own, as before.
//!   Polling loops still run remotely in one command instead of once per poll.
//! - The [`Host`] trait is synchronous; an [`SshConnection`] owns a small tokio runtime and
//!   blocks on it.
//! - Remote commands are shell strings, unavoidably: every word goes through
//!   [`crate::host::quote`], the one quoting function.
//! - A background program must not keep the SSH channel open (`cd x && nohup prog &` hangs it):
//!   it is started by a wrapper with every fd redirected, in its own session (so its pid is its
//!   process group id and stopping signals the whole group), and the wrapper records the pid and,
//!   later, the exit status in files under the host's lab dir. Those pid files also let a
//!   teardown stop what the lab started, by pid, never by name.
//! - Host keys change on every apply: the known_hosts file is the lab's own (from the terraform
//!   module, or a lab-owned file filled on first contact), never the user's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::quote::{join, quote};
use super::remote_shell::{STOP_GROUPS, ShellPipes, grace_ticks, shell_loop, stop_group_script};
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
    shell: Mutex<Option<Shell>>,
    /// Set when the remote shell could not start: every command then uses its own channel.
    no_shell: std::sync::atomic::AtomicBool,
    lab_root: Option<PathBuf>,
    rt: tokio::runtime::Runtime,
    ctl_dir: tempfile::TempDir,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The shell holds a reference to the session: end it first (EOF ends its loop).
        if let Some(shell) = self.shell.lock().map(|mut g| g.take()).unwrap_or(None) {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), shell.close()).await
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
                shell: Mutex::new(None),
                no_shell: std::sync::atomic::AtomicBool::new(false),
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
        let mut via = "channel";
        let result = match c.shell.try_lock() {
            Ok(mut guard) if fits && !c.no_shell.load(Ordering::Relaxed) => {
                match self.shell_run(&mut guard, script, stdin, timeout) {
                    Some(r) => {
                        via = "shell";
                        r
                    }
                    None => self.channel_run(script, stdin, timeout),
                }
            }
            _ => self.channel_run(script, stdin, timeout),
        };
        if trace_enabled() {
            eprintln!(
                "perflab: ssh {} {:.3}s ({via}): {}",
                c.name,
                started.elapsed().as_secs_f64(),
                script
                    .lines()
                    .find(|l| !l.starts_with("umask 022")
                        && !l.contains("creating empty files failed"))
                    .unwrap_or("")
                    .chars()
                    .take(100)
                    .collect::<String>()
            );
        }
        result
    }

    /// Runs a script in the connection's long-lived shell, starting it first if needed.
    /// `None`: the shell cannot be used (it did not start; the caller uses a channel).
    fn shell_run(
        &self,
        guard: &mut Option<Shell>,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Option<Result<CmdOutput, HostError>> {
        let c = &self.conn;
        if guard.is_none() {
            let session = c.session.clone().expect("open until dropped");
            match c.rt.block_on(Shell::start(session, c.lab_root.as_deref())) {
                Ok(sh) => *guard = Some(sh),
                Err(e) => {
                    tracing::debug!(
                        "ssh {}: no long-lived shell ({e}); one channel per command",
                        c.name
                    );
                    c.no_shell.store(true, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let sh = guard.as_mut().expect("started above");
        let result = c.rt.block_on(async {
            tokio::time::timeout(timeout, sh.run(script.as_bytes(), stdin.unwrap_or(&[]))).await
        });
        match result {
            Ok(Ok(out)) => Some(Ok(out)),
            Ok(Err(e)) => {
                // The shell is in an unknown state: a new one starts with the next command.
                *guard = None;
                Some(Err(other(
                    &c.name,
                    format!("SSH to {}: the remote shell failed: {e}", c.target),
                )))
            }
            Err(_) => {
                *guard = None;
                Some(Err(HostError::Timeout {
                    host: c.name.clone(),
                    command: script.to_string(),
                    timeout,
                }))
            }
        }
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

/// A long-lived remote shell ([`super::remote_shell`]) on one SSH channel.
struct Shell {
    child: openssh::Child<Arc<Session>>,
    pipes: ShellPipes<openssh::ChildStdin, openssh::ChildStdout>,
}

impl Shell {
    /// Starts the loop; with `lab_root`, it stops the lab's programs there when it ends.
    async fn start(session: Arc<Session>, lab_root: Option<&Path>) -> Result<Shell, String> {
        let root = lab_root.map(|r| quote(&path_str(r))).unwrap_or_default();
        let mut cmd = session.arc_raw_command(format!("sh -c {} sh {root}", quote(&shell_loop())));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().await.map_err(|e| error_chain(&e))?;
        let stdin = child.stdin().take().ok_or("no stdin")?;
        let stdout = child.stdout().take().ok_or("no stdout")?;
        let pipes =
            tokio::time::timeout(Duration::from_secs(30), ShellPipes::connect(stdin, stdout))
                .await
                .map_err(|_| "the remote shell did not start within 30 s".to_string())??;
        Ok(Shell { child, pipes })
    }

    async fn run(&mut self, script: &[u8], input: &[u8]) -> std::io::Result<CmdOutput> {
        self.pipes.run(script, input).await
    }

    /// Ends the shell: closing its stdin ends the loop, which removes its temp dir.
    async fn close(self) {
        drop(self.pipes.into_inner());
        let _ = self.child.wait().await;
    }
}

/// `PERFLAB_SSH_TRACE=1` prints every remote command's first line and duration on stderr (for
/// counting round trips; see bench/terraform.sh).
fn trace_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("PERFLAB_SSH_TRACE").is_some_and(|v| !v.is_empty() && v != "0")
    })
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

/// Extra seconds the transport may take beyond a remote command's own limit.
const SLACK: Duration = Duration::from_secs(15);

/// One role's view of a machine reached over SSH.
#[derive(Debug)]
pub struct SshHost {
    conn: SshConnection,
    name: String,
    address: String,
    lab_dir: PathBuf,
    seq: AtomicU64,
    /// Programs found on the machine (`which` is asked for the same programs every run).
    found: Mutex<HashMap<String, Option<String>>>,
    /// Empty files (and their parents) still to be created: see [`SshHost::write_file`].
    pending: Mutex<Vec<String>>,
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
            conn,
            name: name.to_string(),
            address: address.to_string(),
            lab_dir: lab_dir.to_path_buf(),
            seq: AtomicU64::new(0),
            found: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
        };
        let out = h.script(
            &format!("mkdir -p {}", quote(&path_str(&h.pids_dir()))),
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
        &self.conn
    }

    fn pids_dir(&self) -> PathBuf {
        self.lab_dir.join(".perflab-pids")
    }

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

    fn file_err(&self, op: &'static str, path: &Path, reason: String) -> HostError {
        HostError::File {
            host: self.name.clone(),
            op,
            path: path.display().to_string(),
            reason,
        }
    }

    /// Stops every process this host's lab dir records as started and still running (TERM to
    /// its group, up to `grace`, then KILL), by pid. Returns how many were signalled.
    pub fn stop_all(&self, grace: Duration) -> Result<usize, HostError> {
        let out = self.script(
            &stop_recorded_script(&self.pids_dir(), grace),
            None,
            grace + SLACK,
        )?;
        Ok(out.stdout_text().trim().parse().unwrap_or(0))
    }
}

/// A script that stops every group recorded in `pids_dir` and still running (TERM, `grace`,
/// KILL) and prints how many it signalled.
pub fn stop_recorded_script(pids_dir: &Path, grace: Duration) -> String {
    format!(
        "{STOP_GROUPS}stop_groups {} $(recorded_groups {})\necho $stopped",
        grace_ticks(grace),
        quote(&path_str(pids_dir))
    )
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `cd DIR && exec env K=V … argv` for a command, every word quoted.
fn command_line(cmd: &Cmd, wrapper: &[String]) -> String {
    let mut words: Vec<String> = wrapper.to_vec();
    if !cmd.env.is_empty() {
        words.push("env".to_string());
        words.extend(cmd.env.iter().map(|(k, v)| format!("{k}={v}")));
    }
    words.extend(cmd.argv());
    let line = join(&words);
    match &cmd.cwd {
        Some(d) => format!("cd {} && exec {line}", quote(&path_str(d))),
        None => format!("exec {line}"),
    }
}

/// The wrapper that runs a background program: it becomes a session leader (pid = process
/// group id) and records its pid, then the program replaces it; the wrapper's parent waits and
/// records the exit status ($1 pid file, $2 exit file, the rest argv).
const SPAWN_WRAPPER: &str = r#"p=$1; e=$2; shift 2
setsid sh -c 'echo $$ > "$0"; exec "$@"' "$p" "$@"
echo $? > "$e.tmp"; mv -f "$e.tmp" "$e""#;

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.name
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
        let out = self.script(&command_line(cmd, &wrapper), None, timeout + SLACK)?;
        if matches!(out.code, Some(124) | Some(137)) && start.elapsed() >= timeout {
            return Err(HostError::Timeout {
                host: self.name.clone(),
                command: cmd.display(),
                timeout,
            });
        }
        if out.code == Some(127) && out.stdout.is_empty() {
            let err = out.stderr_text();
            if err.contains("No such file") || err.contains("not found") {
                return Err(HostError::Spawn {
                    host: self.name.clone(),
                    program: cmd.program.clone(),
                    reason: format!("`{}` {}", cmd.argv()[0], super::NOT_INSTALLED),
                });
            }
        }
        Ok(out)
    }

    fn spawn(&self, cmd: &Cmd, log: &Path) -> Result<Box<dyn Proc>, HostError> {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let prog: String = Path::new(&cmd.program)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(24)
            .collect();
        let base = self.pids_dir().join(format!("{n}-{prog}"));
        let pidf = path_str(&base.with_extension("pid"));
        let exitf = path_str(&base.with_extension("exit"));
        let wrapper = vec![
            "sh".to_string(),
            "-c".to_string(),
            SPAWN_WRAPPER.to_string(),
            "sh".to_string(),
            pidf.clone(),
            exitf.clone(),
        ];
        let log_s = path_str(log);
        let log_parent = log
            .parent()
            .map(path_str)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".to_string());
        let script = format!(
            r#"set -e
mkdir -p {piddir} {logdir}
{cd}command -v {prog} >/dev/null 2>&1 || {{ echo "{prog_msg}: not installed or not on PATH" >&2; exit 127; }}
rm -f {pidf} {exitf}
( {line} ) > {log} 2>&1 < /dev/null &
i=0
while [ ! -s {pidf} ]; do
  i=$((i+1)); [ $i -lt 200 ] || {{ echo "the program did not start (see {log_msg})" >&2; exit 1; }}
  sleep 0.05
done
cat {pidf}"#,
            piddir = quote(&path_str(&self.pids_dir())),
            cd = cmd
                .cwd
                .as_ref()
                .map(|d| format!("cd {}\n", quote(&path_str(d))))
                .unwrap_or_default(),
            logdir = quote(&log_parent),
            prog = quote(&cmd.program),
            prog_msg = cmd.program.replace(['"', '\\', '$', '`'], "_"),
            pidf = quote(&pidf),
            exitf = quote(&exitf),
            line = command_line(cmd, &wrapper),
            log = quote(&log_s),
            log_msg = log_s.replace(['"', '\\', '$', '`'], "_"),
        );
        let out = self.script(&script, None, Duration::from_secs(30))?;
        let pid = out.stdout_text().trim().parse::<u32>().ok();
        match pid {
            Some(pid) if out.success() => Ok(Box::new(SshProc {
                conn: self.conn.clone(),
                host: self.name.clone(),
                pid,
                exit_file: exitf,
                exit: None,
            })),
            _ => Err(HostError::Spawn {
                host: self.name.clone(),
                program: cmd.program.clone(),
                reason: out.combined_text(),
            }),
        }
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
            self.pending.lock().expect("not poisoned").push(p);
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
        let out = self.script(&script, Some(data), timeout)?;
        if out.success() {
            Ok(())
        } else {
            Err(self.file_err("writing", path, out.combined_text()))
        }
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>, HostError> {
        let out = self.script(
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
        let out = self.script(
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

/// A background process on an SSH host, in its own session and process group.
///
/// Unlike a local child, dropping it does not stop it (the lab's teardown does, from the pid
/// files): a dropped connection must not leave a benchmark half-stopped.
#[derive(Debug)]
pub struct SshProc {
    conn: SshConnection,
    host: String,
    pid: u32,
    exit_file: String,
    exit: Option<i32>,
}

/// Exit status as the [`Proc`] trait reports it: a shell's 128+N becomes -N.
fn decode_status(code: i32) -> i32 {
    if (129..=128 + 64).contains(&code) {
        -(code - 128)
    } else {
        code
    }
}

impl SshProc {
    /// Polls remotely for up to `ticks` × 50 ms; returns the exit status when it ended.
    fn poll(&mut self, ticks: u128) -> Result<Option<i32>, HostError> {
        if self.exit.is_some() {
            return Ok(self.exit);
        }
        let script = format!(
            r#"e={e}; i=0
while [ ! -e "$e" ] && kill -0 {pid} 2>/dev/null && [ $i -lt {ticks} ]; do sleep 0.05; i=$((i+1)); done
if [ ! -e "$e" ] && ! kill -0 {pid} 2>/dev/null; then sleep 0.2; fi
if [ -e "$e" ]; then cat "$e"; elif kill -0 {pid} 2>/dev/null; then echo running; else echo gone; fi"#,
            e = quote(&self.exit_file),
            pid = self.pid,
        );
        let limit = Duration::from_millis((ticks * 50) as u64) + SLACK;
        let out = self
            .conn
            .run_script(&script, None, limit)
            .map_err(|e| match e {
                HostError::Other { reason, .. } => other(&self.host, reason),
                e => e,
            })?;
        let text = out.stdout_text();
        let t = text.trim();
        self.exit = match t {
            "running" => None,
            // The wrapper itself was killed: the status is unknown; report SIGKILL.
            "gone" => Some(-9),
            n => match n.parse::<i32>() {
                Ok(c) => Some(decode_status(c)),
                Err(_) => {
                    return Err(other(
                        &self.host,
                        format!(
                            "cannot tell whether pid {} runs: {}",
                            self.pid,
                            out.combined_text()
                        ),
                    ));
                }
            },
        };
        Ok(self.exit)
    }
}

impl Proc for SshProc {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn is_running(&mut self) -> bool {
        matches!(self.poll(0), Ok(None))
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<i32>, HostError> {
        self.poll(timeout.as_millis().div_ceil(50))
    }

    fn stop(&mut self, grace: Duration) -> Result<(), HostError> {
        if self.exit.is_some() {
            return Ok(());
        }
        // Stop the group, then read the exit status the wrapper records, in one round trip.
        let wait_exit = format!(
            r#"e={e}; i=0
while [ ! -e "$e" ] && [ $i -lt 20 ]; do sleep 0.05; i=$((i+1)); done
if [ -e "$e" ]; then cat "$e"; else echo gone; fi"#,
            e = quote(&self.exit_file),
        );
        let script = stop_group_script(self.pid, grace, &wait_exit);
        let out = self
            .conn
            .run_script(&script, None, grace + SLACK)
            .map_err(|e| match e {
                HostError::Other { reason, .. } => other(&self.host, reason),
                e => e,
            })?;
        if !out.success() {
            return Err(other(
                &self.host,
                format!("stopping pid {}: {}", self.pid, out.combined_text()),
            ));
        }
        self.exit = Some(match out.stdout_text().trim().parse::<i32>() {
            Ok(c) => decode_status(c),
            Err(_) => -9,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_every_word() {
        let cmd = Cmd::new("printf")
            .args(["%s\\n", "a b", "it's"])
            .env("X", "1 2")
            .cwd("/tmp/a dir");
        let line = command_line(&cmd, &["timeout".to_string(), "1s".to_string()]);
        assert_eq!(
            line,
            "cd '/tmp/a dir' && exec timeout 1s env 'X=1 2' printf '%s\\n' 'a b' 'it'\\''s'"
        );
    }

    #[test]
    fn spawn_wrapper_records_pid_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let pidf = dir.path().join("p.pid");
        let exitf = dir.path().join("p.exit");
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(SPAWN_WRAPPER)
            .arg("sh")
            .arg(&pidf)
            .arg(&exitf)
            .args(["sh", "-c", "exit 3"])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(
            std::fs::read_to_string(&pidf)
                .unwrap()
                .trim()
                .parse::<u32>()
                .is_ok()
        );
        assert_eq!(std::fs::read_to_string(&exitf).unwrap().trim(), "3");
    }

    #[test]
    fn signal_statuses_become_negative() {
        assert_eq!(decode_status(0), 0);
        assert_eq!(decode_status(3), 3);
        assert_eq!(decode_status(143), -15);
        assert_eq!(decode_status(137), -9);
    }
}
