//! The profiler verbs: perf, the Lua sampler and stapxx attached to the measured server for
//! one load, and flame graphs of the last profile.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

use super::Session;

impl Session {
    /// Attaches a profiler to the measured server (the first gateway instance, or the upstream
    /// in baseline mode) until the next [`Session::wait_result`]. Call it before
    /// [`Session::start_load`]; the run is then flagged `profiled`. `opts.tool` picks perf or
    /// the Lua sampler ([`Session::start_lua_sampler`]).
    pub fn start_profiler(&mut self, opts: crate::role::profiler::ProfilerOptions) -> Result<()> {
        use crate::role::profiler::{ProfilerTool, RunningSampler};
        if self.profiler.is_some() {
            return Err(Error::Usage("a profiler is already attached".into()));
        }
        if opts.tool == ProfilerTool::Lua {
            return self.start_lua_sampler(opts.frequency_hz);
        }
        let (host, pgid, pid_file) = match self.gateways.values().next() {
            Some(g) => (g.host.clone(), g.proc.pid(), g.server_pid_file.clone()),
            None => {
                let u = self.upstream.as_ref().ok_or_else(|| {
                    Error::Usage("nothing to profile: start a gateway or an upstream first".into())
                })?;
                (u.host.clone(), u.proc.pid(), None)
            }
        };
        let dir = host.lab_dir().join(format!("profile-{}", pgid));
        self.profiler = Some(RunningSampler::Perf(match pid_file {
            Some(f) => {
                let pids = crate::role::profiler::nginx_server_pids(host.as_ref(), &f)?;
                let what = format!("the server of {}", f.display());
                crate::role::profiler::start_profiler_on(host, pids, &what, &dir, opts)?
            }
            None => crate::role::profiler::start_profiler(host, pgid, &dir, opts)?,
        }));
        Ok(())
    }

    /// Starts perflab's Lua sampler in the workers of the first gateway instance (Kong only:
    /// [`crate::role::lua_profiler`]) until the next [`Session::wait_result`], at
    /// `frequency_hz` samples per second per worker.
    pub fn start_lua_sampler(&mut self, frequency_hz: u32) -> Result<()> {
        if self.profiler.is_some() {
            return Err(Error::Usage("a profiler is already attached".into()));
        }
        let g = self.gateways.values().next().ok_or_else(|| {
            Error::Usage("the Lua profiler needs a gateway: start Kong first".into())
        })?;
        let dir = g.lua_profiler_dir.clone().ok_or_else(|| {
            Error::Usage(format!(
                "the Lua profiler works with Kong only, not with {}: use the perf profiler",
                g.kind
            ))
        })?;
        let p = crate::role::lua_profiler::start_lua_profiler(
            g.host.clone(),
            g.proc.pid(),
            &dir,
            frequency_hz,
        )?;
        self.profiler = Some(crate::role::profiler::RunningSampler::Lua(p));
        Ok(())
    }

    /// Kong's `start_stapxx`: runs a stapxx sample against the gateway where SystemTap works;
    /// elsewhere fails with the reason and points to [`Session::start_profiler`].
    pub fn start_stapxx(
        &mut self,
        sample: &str,
        args: &[String],
    ) -> Result<crate::role::profiler::RunningStapxx> {
        let g = self
            .gateways
            .values()
            .next()
            .ok_or_else(|| Error::Usage("start a gateway before start_stapxx".into()))?;
        let dir = g.host.lab_dir().join("stapxx");
        // Kong's framework attached stap++ to the first nginx worker; a launcher's group leader
        // (`kong start`) runs no request code.
        let pid = match &g.server_pid_file {
            Some(f) => {
                let pids = crate::role::profiler::nginx_server_pids(g.host.as_ref(), f)?;
                pids.get(1)
                    .or(pids.first())
                    .copied()
                    .unwrap_or(g.proc.pid())
            }
            None => g.proc.pid(),
        };
        let mut opts = crate::role::profiler::StapxxOptions::new(pid, &dir);
        opts.args = args.to_vec();
        crate::role::profiler::start_stapxx(g.host.clone(), sample, &opts)
    }

    /// Kong's `generate_flamegraph`: writes the last profile as an SVG flame graph (`.svg` is
    /// appended when missing) and its folded stacks beside it.
    pub fn generate_flamegraph(&self, path: &Path, title: &str) -> Result<PathBuf> {
        let p = self.last_profile.as_ref().ok_or_else(|| {
            Error::Usage(
                "no profile yet: call start_profiler before start_load, then wait_result".into(),
            )
        })?;
        let mut out = path.to_path_buf();
        if !out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
        {
            out = PathBuf::from(format!("{}.svg", path.display()));
        }
        crate::flamegraph::render_flamegraph(&p.folded, title, &out)?;
        crate::util::fs::atomic_write(&out.with_extension("folded"), p.folded.as_bytes())
            .map_err(|e| Error::io(&out, e))?;
        Ok(out)
    }
}
