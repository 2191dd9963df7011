//! Running `kong` commands for one instance, and the processes of a started Kong lab.

use std::sync::Arc;
use std::time::Duration;

use super::binary::KongBinary;
use super::conf;
use crate::host::{Cmd, Host, HostError, Proc};

/// The processes of one Kong lab: the Kong instances (traffic instance first). Stopping it quits
/// every Kong (`kong quit`, then TERM/KILL to its group). The lab's PostgreSQL outlives it: the
/// session stops it at teardown.
pub(crate) struct KongProcs {
    pub(crate) host: Arc<dyn Host>,
    pub(crate) kongs: Vec<(Box<dyn Proc>, Cmd)>,
}

impl Proc for KongProcs {
    fn pid(&self) -> u32 {
        self.kongs.first().map(|(p, _)| p.pid()).unwrap_or(0)
    }
    fn is_running(&mut self) -> bool {
        self.kongs.iter_mut().all(|(p, _)| p.is_running())
    }
    fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<i32>, HostError> {
        match self.kongs.first_mut() {
            Some((p, _)) => p.wait_timeout(timeout),
            None => Ok(Some(0)),
        }
    }
    fn stop(&mut self, grace: Duration) -> Result<(), HostError> {
        // Data planes before the control plane (reverse start order is kept in `kongs`).
        for (p, quit) in self.kongs.iter_mut() {
            if p.is_running() {
                let _ = self.host.run(quit, grace + Duration::from_secs(10));
                let _ = p.wait_timeout(grace)?;
            }
            p.stop(grace)?;
        }
        Ok(())
    }
}

/// `kong ARGS` for the instance configured by `conf`: the binary's environment, then the
/// instance's pinned properties ([`conf::pinned_env`]), so `KONG_*` variables perflab inherited
/// cannot move the instance's prefix or listeners.
pub(crate) fn instance_cmd(bin: &KongBinary, conf: &conf::KongConf, args: &[&str]) -> Cmd {
    let mut c = bin
        .env
        .iter()
        .chain(conf::pinned_env(conf).iter())
        .fold(Cmd::new(&bin.program), |c, (k, v)| c.env(k, v))
        .args(args.iter().copied());
    if let Some(d) = &bin.cwd {
        c = c.cwd(d);
    }
    c
}

/// The open-file limit Kong is started with where the hard limit allows: Kong sizes
/// `worker_rlimit_nofile` and `worker_connections` from `ulimit -n` (between 1024 and 16384,
/// kong/cmd/utils/prefix_handler.lua) and warns below 4096; Kong's framework started it after
/// `ulimit -n 655360` (spec/helpers/perf/drivers/terraform.lua).
pub const OPEN_FILES: u32 = 65536;

/// `cmd` run with its soft open-file limit raised to [`OPEN_FILES`] (or the hard limit when
/// that is lower), through `sh`, which then execs it (same pid, same process group).
pub(crate) fn with_open_files(cmd: Cmd) -> Cmd {
    let script = format!(
        "ulimit -n {OPEN_FILES} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$@\""
    );
    let inner = cmd.argv();
    let mut wrapped = Cmd::new("sh").arg("-c").arg(script).arg("sh").args(inner);
    wrapped.env = cmd.env;
    wrapped.cwd = cmd.cwd;
    wrapped
}
