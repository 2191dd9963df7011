//! The Lua profiler: Lua-level CPU profiles of Kong, as folded stacks with function names and
//! `file:line`.
//!
//! Why not perf: OpenResty is built without frame pointers and LuaJIT's JIT-compiled traces have
//! no symbols, so a perf profile of Kong is a tower of `[unknown]` frames above the kernel's
//! network stack — it cannot answer "which Lua code costs?", the question Kong's stapxx flame
//! graphs answered. Rebuilding OpenResty with frame pointers and LuaJIT's perf map would need a
//! build recipe for Kong; instead perflab uses what every LuaJIT has: its sampling profiler
//! (`jit.profile`, <https://luajit.org/ext_profiler.html>), whose callback sees the Lua stack.
//!
//! How: a small Kong plugin written for perflab (`lua/kong/plugins/perflab-luaprof/`, embedded
//! here and written next to the lab's Kong prefix by [`install_kong_plugin`]) is loaded into
//! every Kong perflab starts ([`add_to_kong_conf`]). Kong runs `init_worker` of every loaded
//! plugin, so each nginx worker polls a control file; perflab writes `start GEN INTERVAL_MS`
//! there ([`start_lua_profiler`]), each worker starts `jit.profile` and counts stacks
//! (`profile.dumpstack(thread, "pf\tlZ;", -64)`: root first, function name and current
//! `file:line` per frame), and on `stop GEN` ([`RunningLuaProfiler::stop_and_collect`]) dumps its
//! counts to a file, which perflab reads through the [`Host`] — so it works on every driver —
//! and folds ([`fold_dumps`]) for [`crate::flamegraph`].
//!
//! What the samples mean: `jit.profile` samples on `ITIMER_PROF` (CPU time of the worker
//! process) and runs its callback at the next Lua instruction. Time in Lua code is attributed
//! exactly; a sample taken while the worker ran C (nginx itself, the kernel, or a C function
//! called from Lua) is counted on the Lua stack that runs next and marked with a `[C]` leaf, so
//! read `[C]` frames as "C time near this Lua code", not as its cost. `[interpreted]`,
//! `[GC]` and `[JIT compiler]` leaves mark samples in those VM states; samples in compiled
//! (JIT) code have no extra leaf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::host::{Cmd, Host, poll_until};
use crate::role::gateway::kong::conf::KongConf;
use crate::role::profiler::{Profile, ProfileMode};
use crate::{Error, Result};

/// The plugin's name in Kong's `plugins` property.
pub const KONG_PLUGIN: &str = "perflab-luaprof";
/// The control directory's name inside a Kong prefix (the plugin uses the same name).
pub const CONTROL_DIR: &str = "perflab-luaprof";
/// The root frame of every Lua stack.
pub const ROOT_FRAME: &str = "nginx worker (Lua)";
/// The sampled event, as recorded in a [`Profile`].
pub const EVENT: &str = "itimer-prof";
/// [`ProfileMode::Lua`]'s sampler name.
pub const SAMPLER: &str = "jit.profile";

const HANDLER_LUA: &str = include_str!("../../lua/kong/plugins/perflab-luaprof/handler.lua");
const SCHEMA_LUA: &str = include_str!("../../lua/kong/plugins/perflab-luaprof/schema.lua");

/// How long the workers may take to answer a start or a stop (they poll every 0.1 s).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Writes the plugin's Lua files under `lua_dir` on the host (`lua_dir/kong/plugins/…`), the
/// directory [`add_to_kong_conf`] puts first on Kong's `lua_package_path`.
pub fn install_kong_plugin(host: &dyn Host, lua_dir: &Path) -> Result<()> {
    let dir = lua_dir.join("kong/plugins").join(KONG_PLUGIN);
    host.write_file(&dir.join("handler.lua"), HANDLER_LUA.as_bytes())?;
    host.write_file(&dir.join("schema.lua"), SCHEMA_LUA.as_bytes())?;
    Ok(())
}

/// Loads the plugin in a Kong configuration: appends it to `plugins` (default `bundled`) and
/// puts `lua_dir` first on `lua_package_path` (default Kong's `./?.lua;./?/init.lua;`).
/// `plugins = off` stays off: that Kong cannot be Lua-profiled. A `KONG_LUA_PACKAGE_PATH` in
/// the environment of the `kong` commands wins over `kong.conf`: pass it through
/// [`with_plugin_path`] too.
pub fn add_to_kong_conf(conf: &mut KongConf, lua_dir: &Path) {
    let plugins = conf
        .entry("plugins".into())
        .or_insert_with(|| "bundled".into());
    let listed = plugins.split(',').any(|p| p.trim() == KONG_PLUGIN);
    if plugins.trim() == "off" || listed {
        return;
    }
    plugins.push(',');
    plugins.push_str(KONG_PLUGIN);
    let path = with_plugin_path(
        conf.get("lua_package_path")
            .map_or("./?.lua;./?/init.lua;", String::as_str),
        lua_dir,
    );
    conf.insert("lua_package_path".into(), path);
}

/// A Lua package path with `lua_dir` (where [`install_kong_plugin`] writes) first, once.
pub fn with_plugin_path(path: &str, lua_dir: &Path) -> String {
    let ours = format!("{}/?.lua;", lua_dir.display());
    if path.starts_with(&ours) {
        path.to_string()
    } else {
        format!("{ours}{path}")
    }
}

/// Creates the control directory of a Kong prefix before Kong starts, writable by nginx's
/// workers (they may run as another user than perflab).
pub fn prepare_control_dir(host: &dyn Host, prefix: &Path) -> Result<PathBuf> {
    let dir = prefix.join(CONTROL_DIR);
    // `mkdir -m` (in every lab image, unlike chmod) sets the mode regardless of the umask.
    let out = host.run(
        &Cmd::new("mkdir")
            .args(["-p", "-m", "0777"])
            .arg(dir.display().to_string()),
        Duration::from_secs(30),
    )?;
    if !out.success() {
        return Err(Error::Lab(format!(
            "creating {} on host {}: {}",
            dir.display(),
            host.name(),
            out.combined_text()
        )));
    }
    host.write_file(&dir.join("control"), b"idle\n")?;
    Ok(dir)
}

/// A Lua profile being recorded in the workers of one gateway.
pub struct RunningLuaProfiler {
    host: Arc<dyn Host>,
    dir: PathBuf,
    generation: String,
    workers: Vec<u32>,
    frequency_hz: u32,
}

impl std::fmt::Debug for RunningLuaProfiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningLuaProfiler")
            .field("host", &self.host.name())
            .field("dir", &self.dir)
            .field("generation", &self.generation)
            .field("workers", &self.workers)
            .finish()
    }
}

/// The sampling interval `jit.profile` takes, in whole milliseconds, for a frequency.
pub fn interval_ms(frequency_hz: u32) -> u32 {
    (1000 / frequency_hz.max(1)).max(1)
}

/// The live workers that run the sampler: a `PID.state` file in `dir` whose process is a
/// member of process group `pgid`.
fn sampler_workers(host: &dyn Host, dir: &Path, pgid: u32) -> Result<Vec<u32>> {
    let out = host.run(
        &Cmd::new("ls").arg(dir.display().to_string()),
        Duration::from_secs(30),
    )?;
    let snapshot = host.proc_snapshot()?;
    let mut pids: Vec<u32> = out
        .stdout_text()
        .lines()
        .filter_map(|name| name.strip_suffix(".state")?.parse().ok())
        .filter(|pid| snapshot.procs.get(pid).is_some_and(|p| p.pgrp == pgid))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

fn worker_state(host: &dyn Host, dir: &Path, pid: u32) -> String {
    host.read_file(&dir.join(format!("{pid}.state")))
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default()
}

/// Starts the Lua sampler in every worker of the gateway whose process group is `pgid` and
/// whose control directory is `dir` (see [`prepare_control_dir`]); returns once every worker
/// has started. Fails when no worker answers (the plugin is not loaded: `plugins = off`, or an
/// error in the gateway's error log).
pub fn start_lua_profiler(
    host: Arc<dyn Host>,
    pgid: u32,
    dir: &Path,
    frequency_hz: u32,
) -> Result<RunningLuaProfiler> {
    if frequency_hz == 0 {
        return Err(Error::Usage(
            "profiler frequency must be > 0 Hz".to_string(),
        ));
    }
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        .to_string();
    let control = format!("start {generation} {}\n", interval_ms(frequency_hz));
    host.write_file(&dir.join("control"), control.as_bytes())?;
    let want = format!("started {generation}");
    let mut workers = Vec::new();
    let started = poll_until(ANSWER_TIMEOUT, Duration::from_millis(100), || {
        workers = sampler_workers(host.as_ref(), dir, pgid).ok()?;
        let all = !workers.is_empty()
            && workers
                .iter()
                .all(|&pid| worker_state(host.as_ref(), dir, pid) == want);
        all.then_some(())
    });
    if started.is_none() {
        crate::signals::check()?;
        let _ = host.write_file(&dir.join("control"), b"idle\n");
        return Err(Error::Lab(format!(
            "the Lua profiler did not start in the gateway's workers on host {} within {:?} \
             (workers that answered in {}: {:?}): is the {KONG_PLUGIN} plugin loaded (Kong's \
             `plugins` must not be `off`)? See the gateway's error log",
            host.name(),
            ANSWER_TIMEOUT,
            dir.display(),
            workers
        )));
    }
    Ok(RunningLuaProfiler {
        host,
        dir: dir.to_path_buf(),
        generation,
        workers,
        frequency_hz,
    })
}

impl RunningLuaProfiler {
    /// The sampled worker processes.
    pub fn pids(&self) -> &[u32] {
        &self.workers
    }

    /// Stops the sampler in every worker, reads their dumps and folds them into a profile.
    /// A worker that died meanwhile is left out (with a warning); none answering is an error.
    pub fn stop_and_collect(self) -> Result<Profile> {
        let host = self.host.as_ref();
        let generation = &self.generation;
        host.write_file(
            &self.dir.join("control"),
            format!("stop {generation}\n").as_bytes(),
        )?;
        let want = format!("stopped {generation}");
        let snapshot_alive = |pid: u32| {
            host.proc_snapshot()
                .map(|s| s.procs.contains_key(&pid))
                .unwrap_or(true)
        };
        let done = poll_until(ANSWER_TIMEOUT, Duration::from_millis(100), || {
            self.workers
                .iter()
                .all(|&pid| worker_state(host, &self.dir, pid) == want || !snapshot_alive(pid))
                .then_some(())
        });
        let mut dumps = Vec::new();
        let mut answered = Vec::new();
        for &pid in &self.workers {
            match host.read_file(&self.dir.join(format!("{pid}-{generation}.folded"))) {
                Ok(bytes) => {
                    dumps.push(String::from_utf8_lossy(&bytes).into_owned());
                    answered.push(pid);
                }
                Err(e) => tracing::warn!(pid, "no Lua profile from worker: {e}"),
            }
        }
        if answered.is_empty() {
            crate::signals::check()?;
            return Err(Error::Lab(format!(
                "no worker wrote its Lua profile in {} on host {} (waited {:?}{})",
                self.dir.display(),
                host.name(),
                ANSWER_TIMEOUT,
                if done.is_none() { ", timed out" } else { "" }
            )));
        }
        let folded = fold_dumps(&dumps);
        Ok(Profile {
            samples: crate::flamegraph::total_count(&folded),
            folded,
            mode: ProfileMode::Lua(SAMPLER.to_string()),
            event: EVENT.to_string(),
            frequency: self.frequency_hz,
            pids: answered,
        })
    }
}

/// Folds the workers' dumps (`COUNT VMSTATE STACK` lines, see the plugin) into folded stacks:
/// root [`ROOT_FRAME`], one frame per Lua frame ([`lua_frame`]), a leaf for the VM state
/// (`I` `[interpreted]`, `C` `[C]`, `G` `[GC]`, `J` `[JIT compiler]`; none for compiled code),
/// equal stacks of all workers summed, sorted by stack.
pub fn fold_dumps(dumps: &[String]) -> String {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in dumps.iter().flat_map(|d| d.lines()) {
        let mut parts = line.splitn(3, ' ');
        let (Some(count), Some(vmstate)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        let mut frames = vec![ROOT_FRAME.to_string()];
        frames.extend(
            parts
                .next()
                .unwrap_or("")
                .split(';')
                .filter(|f| !f.is_empty())
                .map(lua_frame),
        );
        let leaf = match vmstate {
            "I" => Some("[interpreted]"),
            "C" => Some("[C]"),
            "G" => Some("[GC]"),
            "J" => Some("[JIT compiler]"),
            _ => None,
        };
        frames.extend(leaf.map(str::to_string));
        *counts.entry(frames.join(";")).or_default() += count;
    }
    counts
        .into_iter()
        .map(|(stack, n)| format!("{stack} {n}\n"))
        .collect()
}

/// One frame of a dump (`FUNCTION<TAB>FILE:LINE`, as `dumpstack`'s `pf\tl` prints it) as a
/// flame-graph frame, `FUNCTION (FILE:LINE)` with FILE shortened to its Lua module path
/// ([`short_path`]). LuaJIT prints `FILE:FIRSTLINE` where it cannot name a function: that
/// becomes `anonymous:FIRSTLINE` (`main chunk` for line 0: an nginx `*_by_lua` block). Builtins (`[builtin#N]`) and C functions (`@0x…`) keep
/// LuaJIT's text after their name.
pub fn lua_frame(raw: &str) -> String {
    let (name, place) = raw.split_once('\t').unwrap_or((raw, ""));
    let place = short_path(place);
    let name = match name.rsplit_once(':') {
        Some((_, "0")) => "main chunk".to_string(),
        Some((file, line)) if !file.is_empty() && line.chars().all(|c| c.is_ascii_digit()) => {
            format!("anonymous:{line}")
        }
        _ => name.to_string(),
    };
    if place.is_empty() || place == name {
        name
    } else {
        format!("{name} ({place})")
    }
}

/// Shortens a Lua chunk path to its module path: what follows `/share/lua/5.1/` or `/lualib/`
/// (installed rocks and OpenResty's libraries), else from the last `/kong/` on (a Kong source
/// tree, e.g. a `git:` worktree). `/opt/kong/share/lua/5.1/kong/runloop/handler.lua:1160` →
/// `kong/runloop/handler.lua:1160`.
pub fn short_path(path: &str) -> String {
    for marker in ["/share/lua/5.1/", "/lualib/"] {
        if let Some(i) = path.rfind(marker) {
            return path[i + marker.len()..].to_string();
        }
    }
    if let Some(i) = path.rfind("/kong/") {
        return path[i + 1..].to_string();
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_paths() {
        assert_eq!(
            lua_frame("before\t/opt/kong/share/lua/5.1/kong/runloop/handler.lua:1160"),
            "before (kong/runloop/handler.lua:1160)"
        );
        assert_eq!(
            lua_frame("/x/lualib/resty/core/base.lua:10\t/x/lualib/resty/core/base.lua:12"),
            "anonymous:10 (resty/core/base.lua:12)"
        );
        assert_eq!(lua_frame("pcall\t[builtin#20]"), "pcall ([builtin#20])");
        assert_eq!(
            lua_frame("rewrite_by_lua(nginx-kong.conf:97):0\trewrite_by_lua(nginx-kong.conf:97):2"),
            "main chunk (rewrite_by_lua(nginx-kong.conf:97):2)"
        );
        assert_eq!(lua_frame("[builtin#20]\t[builtin#20]"), "[builtin#20]");
        assert_eq!(short_path("/wt/kong/kong/init.lua:5"), "kong/init.lua:5");
        assert_eq!(short_path("=[C]"), "=[C]");
        assert_eq!(interval_ms(99), 10);
        assert_eq!(interval_ms(5000), 1);
    }

    #[test]
    fn folds_and_sums_the_workers() {
        let a = "3 N f\t/p/share/lua/5.1/kong/init.lua:1;g\t/p/share/lua/5.1/kong/x.lua:2\n\
                 1 G f\t/p/share/lua/5.1/kong/init.lua:1";
        let b = "2 N f\t/p/share/lua/5.1/kong/init.lua:1;g\t/p/share/lua/5.1/kong/x.lua:2\nbad";
        let folded = fold_dumps(&[a.to_string(), b.to_string()]);
        assert_eq!(
            folded,
            "nginx worker (Lua);f (kong/init.lua:1);[GC] 1\n\
             nginx worker (Lua);f (kong/init.lua:1);g (kong/x.lua:2) 5\n"
        );
    }

    #[test]
    fn conf_loads_the_plugin_once() {
        let mut c = KongConf::new();
        add_to_kong_conf(&mut c, Path::new("/lab/lua"));
        assert_eq!(c["plugins"], "bundled,perflab-luaprof");
        assert_eq!(
            c["lua_package_path"],
            "/lab/lua/?.lua;./?.lua;./?/init.lua;"
        );
        let again = c.clone();
        add_to_kong_conf(&mut c, Path::new("/lab/lua"));
        assert_eq!(c, again);
        let mut off = KongConf::new();
        off.insert("plugins".into(), "off".into());
        add_to_kong_conf(&mut off, Path::new("/lab/lua"));
        assert!(!off.contains_key("lua_package_path"));
    }
}
