//! The local host: child processes on this machine.

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::proc_stat::Snapshot;
use super::process_group::{self, GroupGuard};
use super::{Cmd, CmdOutput, Host, HostError, Proc};
use crate::journal::Journal;

/// This machine as a lab host. Services listen on loopback.
#[derive(Debug)]
pub struct LocalHost {
    name: String,
    lab_dir: PathBuf,
    journal: Option<Arc<Journal>>,
}

impl LocalHost {
    /// A local host named `name` whose private directory is `lab_dir` (created here).
    pub fn new(name: &str, lab_dir: &Path) -> Result<Self, HostError> {
        fs::create_dir_all(lab_dir).map_err(|e| HostError::File {
            host: name.to_string(),
            op: "creating",
            path: lab_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(LocalHost {
            name: name.to_string(),
            lab_dir: lab_dir.to_path_buf(),
            journal: None,
        })
    }

    /// Records every background process group in the lab's `journal`, so `perflab teardown`
    /// can stop it should perflab die.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    fn command(&self, cmd: &Cmd) -> Command {
        let argv = cmd.argv();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        if let Some(d) = &cmd.cwd {
            c.current_dir(d);
        }
        c.process_group(0);
        c
    }

    fn spawn_error(&self, cmd: &Cmd, e: std::io::Error) -> HostError {
        let reason = if e.kind() == std::io::ErrorKind::NotFound {
            format!("`{}` {}", cmd.argv()[0], super::NOT_INSTALLED)
        } else {
            e.to_string()
        };
        HostError::Spawn {
            host: self.name.clone(),
            program: cmd.program.clone(),
            reason,
        }
    }

    fn file_error(&self, op: &'static str, path: &Path, e: std::io::Error) -> HostError {
        HostError::File {
            host: self.name.clone(),
            op,
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

impl Host for LocalHost {
    fn shares_local_files(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn address(&self) -> String {
        "127.0.0.1".to_string()
    }

    fn lab_dir(&self) -> &Path {
        &self.lab_dir
    }

    fn run(&self, cmd: &Cmd, timeout: Duration) -> Result<CmdOutput, HostError> {
        let mut c = self.command(cmd);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process_group::spawn_tied(c).map_err(|e| self.spawn_error(cmd, e))?;
        let mut guard = GroupGuard::new(child.id() as i32);
        let mut out_pipe = child.stdout.take().expect("piped");
        let mut err_pipe = child.stderr.take().expect("piped");
        let out_thread = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out_pipe.read_to_end(&mut b);
            b
        });
        let err_thread = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err_pipe.read_to_end(&mut b);
            b
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if start.elapsed() >= timeout => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    return Err(HostError::Other {
                        host: self.name.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        };
        let Some(status) = status else {
            drop(guard); // kills the group
            let _ = child.wait();
            return Err(HostError::Timeout {
                host: self.name.clone(),
                command: cmd.display(),
                timeout,
            });
        };
        // Background grandchildren may hold the pipes open; they belong to this run: kill them.
        if process_group::group_alive(child.id() as i32) {
            drop(guard);
        } else {
            guard.disarm();
        }
        let stdout = out_thread.join().unwrap_or_default();
        let stderr = err_thread.join().unwrap_or_default();
        Ok(CmdOutput {
            code: status.code(),
            stdout,
            stderr,
        })
    }

    fn spawn(&self, cmd: &Cmd, log: &Path) -> Result<Box<dyn Proc>, HostError> {
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent).map_err(|e| self.file_error("creating", parent, e))?;
        }
        let file = fs::File::create(log).map_err(|e| self.file_error("creating", log, e))?;
        let file2 = file
            .try_clone()
            .map_err(|e| self.file_error("opening", log, e))?;
        let mut c = self.command(cmd);
        c.stdin(Stdio::null()).stdout(file).stderr(file2);
        let child = process_group::spawn_tied(c).map_err(|e| self.spawn_error(cmd, e))?;
        let guard = match &self.journal {
            Some(j) => GroupGuard::journaled(child.id() as i32, &cmd.program, j.clone()),
            None => GroupGuard::new(child.id() as i32),
        };
        Ok(Box::new(LocalProc {
            child,
            guard,
            exit: None,
        }))
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> Result<(), HostError> {
        crate::util::fs::atomic_write(path, data).map_err(|e| self.file_error("writing", path, e))
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>, HostError> {
        fs::read(path).map_err(|e| self.file_error("reading", path, e))
    }

    fn remove_dir_all(&self, path: &Path) -> Result<(), HostError> {
        match fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(self.file_error("removing", path, e))
            }
            _ => Ok(()),
        }
    }

    fn proc_snapshot(&self) -> Result<Snapshot, HostError> {
        let stat = fs::read_to_string("/proc/stat")
            .map_err(|e| self.file_error("reading", Path::new("/proc/stat"), e))?;
        let mut lines = Vec::new();
        if let Ok(dir) = fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().bytes().all(|b| b.is_ascii_digit())
                    && let Ok(s) = fs::read_to_string(entry.path().join("stat"))
                {
                    lines.push(s);
                }
            }
        }
        Ok(Snapshot::from_parts(
            &stat,
            lines.iter().map(|s| s.as_str()),
        ))
    }

    fn which(&self, program: &str) -> Option<String> {
        which::which(program).ok().map(|p| p.display().to_string())
    }

    /// The controller is this host: the request goes out in-process (no curl needed).
    fn http_request(
        &self,
        call: &super::HttpCall,
        timeout: Duration,
    ) -> Result<super::HttpReply, HostError> {
        let start = std::time::Instant::now();
        let body = call.body.as_ref().map(|(t, b)| (t.as_str(), b.as_slice()));
        let r = crate::http::request(&call.method, &call.url, body, timeout).map_err(|reason| {
            HostError::Other {
                host: self.name.clone(),
                reason,
            }
        })?;
        Ok(super::HttpReply::new(
            r.status,
            r.body,
            call.max_body,
            start.elapsed().as_secs_f64(),
        ))
    }
}

/// A local background process; its whole group is killed when this is dropped.
#[derive(Debug)]
pub struct LocalProc {
    child: Child,
    guard: GroupGuard,
    exit: Option<i32>,
}

impl LocalProc {
    fn reap(&mut self) -> Option<i32> {
        if self.exit.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            use std::os::unix::process::ExitStatusExt;
            self.exit = Some(s.code().unwrap_or_else(|| -s.signal().unwrap_or(0)));
        }
        self.exit
    }
}

impl Proc for LocalProc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn is_running(&mut self) -> bool {
        self.reap().is_none()
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<i32>, HostError> {
        let start = Instant::now();
        loop {
            if let Some(code) = self.reap() {
                return Ok(Some(code));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self, grace: Duration) -> Result<(), HostError> {
        let pgid = self.child.id() as i32;
        let child = &mut self.child;
        super::terminate::locally(pgid, Signal::SIGTERM, grace, || {
            let _ = child.try_wait();
        });
        let _ = self.child.try_wait();
        self.guard.disarm();
        Ok(())
    }
}
