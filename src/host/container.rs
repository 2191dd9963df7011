//! Hosts that are containers: every command is a Docker exec into a long-lived container.
//!
//! The docker driver starts one container per role (`sleep infinity` under Docker's init) and
//! hands out a [`ContainerHost`] for it; roles then use the same [`Host`] calls as on the local
//! machine. Execs are used rather than one container per program because a role starts,
//! inspects and stops several programs over a run, and CPU accounting needs them all in one PID
//! namespace whose `/proc` shows exactly the role's processes.
//!
//! Process groups work as on the local host: each command runs under `setsid`. For `run`, a
//! tiny wrapper script records the group id in a pid file inside the container, so a timeout can
//! kill the whole group; it receives the lab's values through environment variables (removed
//! again before the program starts). Background programs (`spawn`, their polling and stop) are
//! the remote-process core shared with SSH hosts ([`super::remote_process`]).
//!
//! A Docker exec costs 0.1–0.3 s, so short commands (`run`, and the helpers that read, move and
//! remove files or poll pids) go through one long-lived shell per container instead
//! ([`super::remote_shell`], the same protocol as SSH hosts): one exec that stays attached,
//! running a script per command. There, values reach the script as exported variables and
//! arguments quoted by [`super::quote`], the one quoting function. When the shell is busy (a
//! long command on another thread) or cannot start (an image without `dd`/`mktemp`/`wc`), a
//! command gets its own exec, as before.
//!
//! The [`Host`] trait is synchronous; Docker's API is async. The host blocks on a shared Tokio
//! runtime ([`crate::engine::runtime`]); it must not be called from inside a runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use nix::sys::signal::Signal;

use super::quote::{join, quote};
use super::remote_process::{self, ScriptHost, pids_dir, stop_recorded};
use super::remote_shell::{LiveShell, ShellPipes, ShellRun, ShellSlot, shell_loop};
use super::terminate;
use super::{Cmd, CmdOutput, Host, HostError, Proc};
use crate::engine::runtime;

/// Runs the program in the group `setsid` made, after checking it exists, and records the
/// group id so a timeout can kill the group. `$0 "$@"` is the program's argv. Background
/// leftovers of the program get TERM at the end (as on the local host); otherwise the engine
/// keeps the output stream open for them.
const RUN_SCRIPT: &str = r#"f=$PERFLAB_PIDFILE; p=$PERFLAB_PROG; unset PERFLAB_PIDFILE PERFLAB_PROG
for x in "$0" "$p"; do
  command -v "$x" >/dev/null 2>&1 || { echo "perflab: $x: not found in this container" >&2; exit 127; }
done
echo $$ >"$f"
"$0" "$@"
rc=$?
rm -f "$f"
trap '' TERM
kill -TERM -$$ 2>/dev/null
exit $rc"#;

/// Reads a pid file and removes it; prints nothing while it does not exist.
const TAKE_PIDFILE: &str = r#"cat "$1" 2>/dev/null && rm -f "$1""#;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique pid-file path inside a container's `/tmp`.
fn pidfile(kind: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("/tmp/.perflab-{kind}-{}-{n}-{nanos}", std::process::id())
}

/// The output of an attached exec as bytes of its stdout.
type ExecStdout = tokio_util::io::StreamReader<
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>,
    bytes::Bytes,
>;

/// The stdin of an attached exec.
type ExecStdin = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// The container's long-lived shell: one attached exec of [`shell_loop`].
type ContainerShell = LiveShell<ExecStdin, ExecStdout, ()>;

/// What a container host and its processes share: the engine, the container, names for messages.
struct Inner {
    name: String,
    docker: Docker,
    container_id: String,
    image: String,
    /// The long-lived shell short commands run in (started on first use).
    shell: ShellSlot<ExecStdin, ExecStdout, ()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("name", &self.name)
            .field("container_id", &self.container_id)
            .field("image", &self.image)
            .finish()
    }
}

impl Inner {
    fn other(&self, reason: impl std::fmt::Display) -> HostError {
        HostError::Other {
            host: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    async fn create_exec(
        &self,
        argv: Vec<String>,
        env: Vec<String>,
        cwd: Option<String>,
        attach: bool,
    ) -> Result<String, HostError> {
        let created = self
            .docker
            .create_exec(
                &self.container_id,
                CreateExecOptions {
                    cmd: Some(argv),
                    env: Some(env),
                    working_dir: cwd,
                    attach_stdout: Some(attach),
                    attach_stderr: Some(attach),
                    attach_stdin: Some(false),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.other(format!("docker exec in {}: {e}", self.short_id())))?;
        Ok(created.id)
    }

    fn short_id(&self) -> &str {
        &self.container_id[..self.container_id.len().min(12)]
    }

    /// Runs argv attached and collects its output; `None` on timeout.
    async fn exec_collect(
        &self,
        argv: Vec<String>,
        env: Vec<String>,
        cwd: Option<String>,
        timeout: Duration,
    ) -> Result<Option<CmdOutput>, HostError> {
        let id = self.create_exec(argv, env, cwd, true).await?;
        let started = self
            .docker
            .start_exec(&id, None::<StartExecOptions>)
            .await
            .map_err(|e| self.other(format!("starting docker exec: {e}")))?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(self.other("docker exec did not attach"));
        };
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let collect = async {
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        stdout.extend_from_slice(&message)
                    }
                    Ok(LogOutput::StdErr { message }) => stderr.extend_from_slice(&message),
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(e) => return Err(self.other(format!("reading docker exec output: {e}"))),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, collect).await {
            Err(_) => return Ok(None),
            Ok(r) => r?,
        }
        // The stream ends when the process exits; the engine records the code a moment later.
        let mut code = None;
        for _ in 0..200 {
            let info = self
                .docker
                .inspect_exec(&id)
                .await
                .map_err(|e| self.other(format!("inspecting docker exec: {e}")))?;
            if info.running != Some(true) {
                code = info.exit_code.map(|c| c as i32);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Some(CmdOutput {
            code,
            stdout,
            stderr,
        }))
    }

    /// Starts the long-lived shell: an exec attached to its stdin and stdout.
    async fn start_shell(&self) -> Result<ContainerShell, String> {
        let created = self
            .docker
            .create_exec(
                &self.container_id,
                CreateExecOptions {
                    cmd: Some(vec!["sh".to_string(), "-c".to_string(), shell_loop()]),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(false),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let started = self
            .docker
            .start_exec(&created.id, None::<StartExecOptions>)
            .await
            .map_err(|e| e.to_string())?;
        let StartExecResults::Attached { output, input } = started else {
            return Err("the exec did not attach".into());
        };
        let bytes = output.filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(message))
                }
                Ok(_) => None,
                Err(e) => Some(Err(std::io::Error::other(e))),
            }
        });
        let stdout: ExecStdout = tokio_util::io::StreamReader::new(Box::pin(bytes));
        let pipes =
            tokio::time::timeout(Duration::from_secs(30), ShellPipes::connect(input, stdout))
                .await
                .map_err(|_| "the shell did not start within 30 s".to_string())??;
        Ok(LiveShell { pipes, keep: () })
    }

    /// Runs `script` in the long-lived shell: `None` when the shell cannot be used now (busy
    /// with another thread's command, or unable to start), `Some(Ok(None))` on timeout.
    async fn shell_run(
        &self,
        script: &str,
        timeout: Duration,
    ) -> Option<Result<Option<CmdOutput>, HostError>> {
        let ran = self
            .shell
            .run(
                &self.name,
                || self.start_shell(),
                script.as_bytes(),
                &[],
                timeout,
            )
            .await?;
        Some(match ran {
            ShellRun::Done(out) => Ok(Some(out)),
            ShellRun::Failed(e) => Err(self.other(format!("the container's shell failed: {e}"))),
            ShellRun::TimedOut => Ok(None),
        })
    }

    /// Runs a script in the long-lived shell, or in an exec of its own when the shell cannot
    /// be used now.
    async fn script(&self, script: &str, timeout: Duration) -> Result<CmdOutput, HostError> {
        let ran = match self.shell_run(script, timeout).await {
            Some(r) => r?,
            None => {
                let argv = ["sh", "-c", script].map(String::from).to_vec();
                self.exec_collect(argv, Vec::new(), None, timeout).await?
            }
        };
        ran.ok_or_else(|| HostError::Timeout {
            host: self.name.clone(),
            command: script.lines().next().unwrap_or("").to_string(),
            timeout,
        })
    }

    /// A small helper command (sh script with arguments), 30 s limit.
    fn sh_blocking(&self, script: &str, args: &[&str]) -> Result<CmdOutput, HostError> {
        let text = format!("set -- {}\n{script}", join(args));
        runtime().block_on(self.script(&text, Duration::from_secs(30)))
    }
}

impl ScriptHost for Inner {
    fn name(&self) -> &str {
        &self.name
    }

    fn run_script(&self, script: &str, timeout: Duration) -> Result<CmdOutput, HostError> {
        runtime().block_on(self.script(script, timeout))
    }

    fn missing_program(&self, program: &str) -> HostError {
        HostError::Spawn {
            host: self.name.clone(),
            program: program.to_string(),
            reason: format!(
                "`{program}` is not in the container image {} (rebuild it with `perflab image build` \
                 on a machine where {program} is installed, or pass --driver-opt image=IMAGE)",
                self.image
            ),
        }
    }
}

/// A Docker container as a lab host. Services listen on the container's network: loopback of
/// the machine with host networking, the container's own address on a lab network.
#[derive(Debug)]
pub struct ContainerHost {
    inner: Arc<Inner>,
    address: String,
    lab_dir: PathBuf,
}

impl ContainerHost {
    /// A host for the running container `container_id` (made from `image`, named in messages),
    /// reached by other hosts at `address`; `lab_dir` is created inside the container.
    pub fn new(
        name: &str,
        docker: Docker,
        container_id: &str,
        image: &str,
        address: &str,
        lab_dir: &Path,
    ) -> Result<Self, HostError> {
        let host = ContainerHost {
            inner: Arc::new(Inner {
                name: name.to_string(),
                docker,
                container_id: container_id.to_string(),
                image: image.to_string(),
                shell: ShellSlot::default(),
            }),
            address: address.to_string(),
            lab_dir: lab_dir.to_path_buf(),
        };
        let dir = lab_dir.display().to_string();
        let out = host.inner.sh_blocking(r#"mkdir -p "$1""#, &[&dir])?;
        if !out.success() {
            return Err(HostError::File {
                host: name.to_string(),
                op: "creating",
                path: dir,
                reason: out.combined_text(),
            });
        }
        Ok(host)
    }

    /// The container's id.
    pub fn container_id(&self) -> &str {
        &self.inner.container_id
    }

    /// Stops every program this host started and that still runs (TERM, `grace`, KILL).
    pub fn stop_all(&self, grace: Duration) -> Result<(), HostError> {
        stop_recorded(self.inner.as_ref(), &pids_dir(&self.lab_dir), grace).map(|_| ())
    }

    fn missing(&self, program: &str) -> HostError {
        self.inner.missing_program(program)
    }

    fn file_error(&self, op: &'static str, path: &Path, reason: impl ToString) -> HostError {
        HostError::File {
            host: self.inner.name.clone(),
            op,
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn exec_env(cmd: &Cmd, extra: &[(&str, &str)]) -> Vec<String> {
        cmd.env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(extra.iter().map(|(k, v)| format!("{k}={v}")))
            .collect()
    }
}

impl Host for ContainerHost {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn address(&self) -> String {
        self.address.clone()
    }

    fn lab_dir(&self) -> &Path {
        &self.lab_dir
    }

    fn run(&self, cmd: &Cmd, timeout: Duration) -> Result<CmdOutput, HostError> {
        let pidfile = pidfile("run");
        let mut argv: Vec<String> = ["setsid", "-w", "sh", "-c", RUN_SCRIPT]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(cmd.argv());
        let env = Self::exec_env(
            cmd,
            &[
                ("PERFLAB_PIDFILE", &pidfile),
                ("PERFLAB_PROG", &cmd.program),
            ],
        );
        let cwd = cmd.cwd.as_ref().map(|d| d.display().to_string());
        let inner = &self.inner;
        // In the shell: the same wrapper, its values exported, every word quoted.
        let valid_names = env.iter().all(|kv| {
            kv.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty()
                    && !k.starts_with(|c: char| c.is_ascii_digit())
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        });
        let mut script = String::new();
        for kv in &env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            script.push_str(&format!("export {k}={}\n", quote(v)));
        }
        if let Some(d) = &cwd {
            script.push_str(&format!("cd {} || exit 126\n", quote(d)));
        }
        script.push_str(&format!("exec {}\n", join(&argv)));
        let result = runtime().block_on(async {
            match valid_names {
                true => match inner.shell_run(&script, timeout).await {
                    Some(r) => r,
                    None => inner.exec_collect(argv, env, cwd, timeout).await,
                },
                false => inner.exec_collect(argv, env, cwd, timeout).await,
            }
        })?;
        let Some(out) = result else {
            // Kill the group the wrapper recorded (it may still be writing the pid file).
            for _ in 0..50 {
                let taken = inner.sh_blocking(TAKE_PIDFILE, &[&pidfile])?;
                if let Ok(pgid) = taken.stdout_text().trim().parse::<u32>() {
                    let kill =
                        terminate::script(Signal::SIGKILL, Duration::ZERO, &pgid.to_string(), "");
                    inner.sh_blocking(&kill, &[])?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            return Err(HostError::Timeout {
                host: inner.name.clone(),
                command: cmd.display(),
                timeout,
            });
        };
        if out.code == Some(127) {
            let err = out.stderr_text();
            if let Some(rest) = err.strip_prefix("perflab: ")
                && let Some((prog, _)) = rest.split_once(": not found in this container")
            {
                return Err(self.missing(prog));
            }
        }
        if out.code == Some(126) || (out.code == Some(127) && out.stdout.is_empty()) {
            // setsid or sh themselves could not start: the image lacks the basics.
            let text = out.stderr_text();
            if text.contains("executable file not found")
                || text.contains("no such file")
                || text.contains("setsid: not found")
            {
                return Err(self.missing("setsid"));
            }
        }
        Ok(out)
    }

    fn spawn(&self, cmd: &Cmd, log: &Path) -> Result<Box<dyn Proc>, HostError> {
        let proc = remote_process::spawn(self.inner.clone(), &pids_dir(&self.lab_dir), cmd, log)?;
        Ok(Box::new(proc))
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> Result<(), HostError> {
        let err = |r: String| self.file_error("writing", path, r);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(err("not a file path".into()));
        };
        let dir_s = dir.display().to_string();
        // Upload under a temporary name, then rename: readers never see half a file.
        let tmp_name = format!(".{}.perflab-tmp", name.to_string_lossy());
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        b.append_data(&mut h, &tmp_name, data)
            .map_err(|e| err(e.to_string()))?;
        let tar = b.into_inner().map_err(|e| err(e.to_string()))?;
        let inner = &self.inner;
        let out = inner.sh_blocking(r#"mkdir -p "$1""#, &[&dir_s])?;
        if !out.success() {
            return Err(err(out.combined_text()));
        }
        runtime()
            .block_on(
                inner.docker.upload_to_container(
                    &inner.container_id,
                    Some(
                        UploadToContainerOptionsBuilder::default()
                            .path(&dir_s)
                            .build(),
                    ),
                    bollard::body_full(tar.into()),
                ),
            )
            .map_err(|e| err(e.to_string()))?;
        let tmp = dir.join(&tmp_name).display().to_string();
        let out = inner.sh_blocking(r#"mv -f "$1" "$2""#, &[&tmp, &path.display().to_string()])?;
        if !out.success() {
            return Err(err(out.combined_text()));
        }
        Ok(())
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>, HostError> {
        let err = |r: String| self.file_error("reading", path, r);
        let inner = &self.inner;
        let path_s = path.display().to_string();
        if path.starts_with("/proc") || path.starts_with("/sys") {
            // The archive API reads the container's root filesystem, where these kernel
            // filesystems are not (and their files report size 0): read them from inside.
            let out = inner.sh_blocking(r#"cat -- "$1""#, &[&path_s])?;
            if !out.success() {
                return Err(err(out.stderr_text().trim().to_string()));
            }
            return Ok(out.stdout);
        }
        let tar = runtime()
            .block_on(
                inner
                    .docker
                    .download_from_container(
                        &inner.container_id,
                        Some(
                            DownloadFromContainerOptionsBuilder::default()
                                .path(&path_s)
                                .build(),
                        ),
                    )
                    .map_ok(|b| b.to_vec())
                    .try_concat(),
            )
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => err("no such file".into()),
                e => err(e.to_string()),
            })?;
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut entries = ar.entries().map_err(|e| err(e.to_string()))?;
        let Some(entry) = entries.next() else {
            return Err(err("the engine sent an empty archive".into()));
        };
        let mut entry = entry.map_err(|e| err(e.to_string()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(err(format!(
                "not a regular file ({:?})",
                entry.header().entry_type()
            )));
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| err(e.to_string()))?;
        Ok(data)
    }

    fn remove_dir_all(&self, path: &Path) -> Result<(), HostError> {
        let path_s = path.display().to_string();
        let out = self.inner.sh_blocking(r#"rm -rf -- "$1""#, &[&path_s])?;
        if !out.success() {
            return Err(self.file_error("removing", path, out.combined_text()));
        }
        Ok(())
    }
}
