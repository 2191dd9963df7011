//! The protocol of perflab's long-lived remote shells, shared by SSH and container hosts.
//!
//! Starting a command on another machine or in a container is slow: a new SSH channel costs
//! ~0.2 s (sshd starts a session and a login shell), a Docker exec 0.1–0.3 s. A run needs a few
//! dozen small commands (read a file, check a port, write a config, poll a pid), so those costs
//! add up to seconds per run. Instead, a host starts one shell running [`shell_loop`] and sends
//! it every command:
//!
//! - down its stdin: `<seq> <script bytes> <stdin bytes>\n`, then the script, then its stdin;
//! - the loop runs the script as `sh FILE` with files for stdin, stdout and stderr (so a
//!   background program a script leaves behind holds a file, never the shell's pipe);
//! - back on its stdout: `<seq> <exit status> <stdout bytes> <stderr bytes>\n`, then stdout, then
//!   stderr.
//!
//! `dd iflag=fullblock` reads exactly the announced bytes and never more from the pipe, and the
//! shell's `read` takes the header a byte at a time, so the framing cannot drift. A command then
//! costs a few forks (~5–10 ms). The loop needs `dd` with `iflag=fullblock`, `mktemp`, `wc`,
//! `cat` and `rm` (coreutils; busybox too); without them it exits at once and the host falls
//! back to one channel or exec per command.
//!
//! When given a lab root, the loop stops every group recorded under it when it ends (the lab's
//! one stop routine, [`STOP_GROUPS`]), so a controller that dies (its SSH connection drops, the
//! loop's stdin closes) leaves nothing running. Starting, watching and stopping background
//! programs through such a shell is [`super::remote_process`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::CmdOutput;
use super::terminate::STOP_GROUPS;

/// The first line the loop prints once it is ready.
pub const READY: &str = "perflab-shell-ready";

/// Grace period, in milliseconds, the loop gives a lab's programs when its connection drops.
const DISCONNECT_GRACE_MS: u32 = 2000;

/// The remote side (after [`STOP_GROUPS`]), run as `sh -c SCRIPT sh [LAB_ROOT]`. Its temp dir is
/// removed when the loop ends (its stdin closes); with a `LAB_ROOT`, the groups recorded in
/// `LAB_ROOT/*/.perflab-pids` are stopped then too.
const SHELL_LOOP_BODY: &str = r#"dd if=/dev/null of=/dev/null bs=1 count=1 iflag=fullblock 2>/dev/null || exit 3
d=$(mktemp -d /tmp/perflab-sh.XXXXXX) || exit 3
root=${1:-}
on_exit() {
  rm -rf "$d"
  if [ -n "$root" ]; then
    for pd in "$root"/*/.perflab-pids; do
      [ -d "$pd" ] && stop_groups TERM GRACE $(recorded_groups "$pd")
    done
  fi
}
trap on_exit EXIT
trap 'exit 1' HUP TERM
echo perflab-shell-ready
take() { if [ "$1" -gt 0 ]; then dd bs="$1" count=1 iflag=fullblock of="$2" 2>/dev/null; else : > "$2"; fi; }
while IFS=' ' read -r n s i; do
  take "$s" "$d/$n.sh"; take "$i" "$d/$n.in"
  sh "$d/$n.sh" < "$d/$n.in" > "$d/$n.out" 2> "$d/$n.err"
  r=$?
  printf '%s %s %s %s\n' "$n" "$r" $(wc -c < "$d/$n.out") $(wc -c < "$d/$n.err")
  cat "$d/$n.out" "$d/$n.err"
  rm -f "$d/$n.sh" "$d/$n.in" "$d/$n.out" "$d/$n.err"
done"#;

/// The whole loop script.
pub fn shell_loop() -> String {
    format!(
        "{STOP_GROUPS}{}",
        SHELL_LOOP_BODY.replace("GRACE", &DISCONNECT_GRACE_MS.to_string())
    )
}

/// A host's long-lived shell, started on first use and shared by its threads one command at a
/// time. SSH and container hosts keep one each; only how a shell is started differs. `K` is
/// what must live as long as the shell (the SSH channel's child handle).
pub struct ShellSlot<W, R, K> {
    shell: tokio::sync::Mutex<Option<LiveShell<W, R, K>>>,
    /// Set when the shell could not start: every command then goes its own way.
    unavailable: AtomicBool,
}

/// A started shell: its pipes and what keeps it alive.
pub struct LiveShell<W, R, K> {
    /// The shell's stdin and stdout.
    pub pipes: ShellPipes<W, R>,
    /// Kept as long as the shell runs.
    pub keep: K,
}

/// How a command sent to a [`ShellSlot`] ended.
pub enum ShellRun {
    /// It ran; its status and output.
    Done(CmdOutput),
    /// The shell failed (it ended, or answered out of step); the next command starts a new one.
    Failed(std::io::Error),
    /// No answer within the time allowed; the next command starts a new shell.
    TimedOut,
}

impl<W: AsyncWrite + Unpin, R: AsyncRead + Unpin, K> Default for ShellSlot<W, R, K> {
    fn default() -> Self {
        ShellSlot {
            shell: tokio::sync::Mutex::new(None),
            unavailable: AtomicBool::new(false),
        }
    }
}

impl<W: AsyncWrite + Unpin, R: AsyncRead + Unpin, K> ShellSlot<W, R, K> {
    /// Runs `script` with `input` in the shell, starting it with `start` first if needed.
    /// `None` when the shell cannot be used now: another thread's command holds it, or it could
    /// not start (then it is not tried again; `host` names it in the debug event).
    pub async fn run<F>(
        &self,
        host: &str,
        start: impl FnOnce() -> F,
        script: &[u8],
        input: &[u8],
        timeout: Duration,
    ) -> Option<ShellRun>
    where
        F: Future<Output = Result<LiveShell<W, R, K>, String>>,
    {
        if self.unavailable.load(Ordering::Relaxed) {
            return None;
        }
        let mut guard = self.shell.try_lock().ok()?;
        if guard.is_none() {
            match start().await {
                Ok(sh) => *guard = Some(sh),
                Err(error) => {
                    tracing::debug!(
                        host,
                        error,
                        "no long-lived shell; one channel or exec per command"
                    );
                    self.unavailable.store(true, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let sh = guard.as_mut()?;
        let ran = tokio::time::timeout(timeout, sh.pipes.run(script, input)).await;
        Some(match ran {
            Ok(Ok(out)) => ShellRun::Done(out),
            Ok(Err(e)) => {
                *guard = None;
                ShellRun::Failed(e)
            }
            Err(_) => {
                *guard = None;
                ShellRun::TimedOut
            }
        })
    }

    /// Takes the shell out (to close it).
    pub fn take(&mut self) -> Option<LiveShell<W, R, K>> {
        self.shell.get_mut().take()
    }
}

/// The controller's side of one shell: its stdin and stdout, one command at a time.
pub struct ShellPipes<W, R> {
    stdin: W,
    stdout: R,
    buf: Vec<u8>,
    seq: u64,
}

fn eof() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the remote shell ended")
}

impl<W: AsyncWrite + Unpin, R: AsyncRead + Unpin> ShellPipes<W, R> {
    /// Waits for the loop's [`READY`] line; an error says what came instead.
    pub async fn connect(stdin: W, stdout: R) -> Result<Self, String> {
        let mut p = ShellPipes {
            stdin,
            stdout,
            buf: Vec::new(),
            seq: 0,
        };
        match p.read_line().await {
            Ok(line) if line.trim() == READY => Ok(p),
            Ok(line) => Err(format!(
                "the remote shell did not start (it needs dd with iflag=fullblock, mktemp, wc): {}",
                line.trim()
            )),
            Err(e) => Err(format!("the remote shell did not start: {e}")),
        }
    }

    /// Runs `script` with `input` as its stdin and returns its status and output.
    pub async fn run(&mut self, script: &[u8], input: &[u8]) -> std::io::Result<CmdOutput> {
        self.seq += 1;
        let mut msg = format!("{} {} {}\n", self.seq, script.len(), input.len()).into_bytes();
        msg.extend_from_slice(script);
        msg.extend_from_slice(input);
        self.stdin.write_all(&msg).await?;
        self.stdin.flush().await?;
        let header = self.read_line().await?;
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected answer from the remote shell: {header:?}"),
            )
        };
        let fields: Vec<u64> = header
            .split_whitespace()
            .map(|f| f.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let [seq, code, out_len, err_len] = fields[..] else {
            return Err(bad());
        };
        if seq != self.seq {
            return Err(bad());
        }
        let stdout = self.read_exact(out_len as usize).await?;
        let stderr = self.read_exact(err_len as usize).await?;
        Ok(CmdOutput {
            code: i32::try_from(code).ok(),
            stdout,
            stderr,
        })
    }

    /// Gives the pipes back (to close them).
    pub fn into_inner(self) -> (W, R) {
        (self.stdin, self.stdout)
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stdout.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            self.fill().await?;
        }
    }

    async fn read_exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }
}
