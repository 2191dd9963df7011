//! A Kong built from source into a prefix (`PERFLAB_KONG_PREFIX`), as docs/kong-from-source.md
//! describes: Kong has no Debian package and no reachable image here, so it is built into a
//! directory of its own and run from there without being installed system-wide.
//!
//! Such a prefix holds `bin/kong` (Kong's CLI, run by OpenResty's `resty`), `openresty/`
//! (OpenResty with Kong's patches and nginx modules), and the Lua trees `share/lua/5.1` and
//! `lib/lua/5.1` (the rocks, Kong's own Lua code, `libatc_router.so`, `libada.so`). Its
//! `env.sh` sets the environment Kong needs; [`KongPrefix::env`] is the same environment, built
//! here rather than by sourcing a shell file, so that commands stay argv vectors on every kind
//! of host.

use std::path::{Path, PathBuf};

/// The environment variable naming a Kong prefix.
pub const PREFIX_VAR: &str = "PERFLAB_KONG_PREFIX";

/// The `PATH` a prefix's directories are put in front of when the caller's `PATH` is unknown
/// (a remote host's default).
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A Kong installed into a prefix of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KongPrefix {
    /// The prefix directory (on the Kong host).
    pub root: PathBuf,
}

impl KongPrefix {
    /// The prefix named by `PERFLAB_KONG_PREFIX` in `env`, if set and not empty.
    pub fn from_env(env: &[(String, String)]) -> Option<KongPrefix> {
        env.iter()
            .find(|(k, v)| k == PREFIX_VAR && !v.trim().is_empty())
            .map(|(_, v)| KongPrefix {
                root: PathBuf::from(v.trim()),
            })
    }

    /// `PREFIX/bin/kong`.
    pub fn program(&self) -> String {
        self.root.join("bin/kong").display().to_string()
    }

    fn dir(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    /// The Lua module search path of the prefix (`LUA_PATH` without the trailing `;;`).
    pub fn lua_path(&self) -> String {
        let or = |rel: &str| self.dir(&format!("openresty/{rel}"));
        [
            format!("{}/?.lua", self.dir("share/lua/5.1")),
            format!("{}/?/init.lua", self.dir("share/lua/5.1")),
            format!("{}/?.lua", or("site/lualib")),
            format!("{}/?/init.lua", or("site/lualib")),
            format!("{}/?.lua", or("lualib")),
            format!("{}/?/init.lua", or("lualib")),
        ]
        .join(";")
    }

    /// The C module search path of the prefix (`LUA_CPATH` without the trailing `;;`). atc-router
    /// and lua-resty-ada look for their shared libraries along it.
    pub fn lua_cpath(&self) -> String {
        [
            format!("{}/?.so", self.dir("lib/lua/5.1")),
            format!("{}/?.so", self.dir("openresty/site/lualib")),
            format!("{}/?.so", self.dir("openresty/lualib")),
        ]
        .join(";")
    }

    /// The environment `PREFIX/env.sh` sets: `PATH` (Kong's `bin`, OpenResty's `bin` with
    /// `resty`, nginx's `sbin`, LuaJIT's `bin`) in front of `base_path` (or the usual system
    /// directories), `LUA_PATH`/`LUA_CPATH` (read by `resty` and by the nginx Kong starts),
    /// `KONG_LUA_PACKAGE_PATH`/`KONG_LUA_PACKAGE_CPATH` (Kong's `lua_package_path` and
    /// `lua_package_cpath` properties), and `LD_LIBRARY_PATH`.
    pub fn env(&self, base_path: Option<&str>) -> Vec<(String, String)> {
        let path = [
            self.dir("bin"),
            self.dir("openresty/bin"),
            self.dir("openresty/nginx/sbin"),
            self.dir("openresty/luajit/bin"),
            base_path.unwrap_or(SYSTEM_PATH).to_string(),
        ]
        .join(":");
        vec![
            ("PATH".into(), path),
            ("LUA_PATH".into(), format!("{};;", self.lua_path())),
            ("LUA_CPATH".into(), format!("{};;", self.lua_cpath())),
            ("KONG_LUA_PACKAGE_PATH".into(), self.lua_path()),
            ("KONG_LUA_PACKAGE_CPATH".into(), self.lua_cpath()),
            (
                "LD_LIBRARY_PATH".into(),
                format!(
                    "{}:{}",
                    self.dir("lib/lua/5.1"),
                    self.dir("openresty/luajit/lib")
                ),
            ),
        ]
    }

    /// The `env.sh` file of the prefix.
    pub fn env_file(&self) -> PathBuf {
        self.root.join("env.sh")
    }
}

/// Whether `path` looks like a Kong prefix on this machine (has `bin/kong`).
pub fn looks_like_prefix(path: &Path) -> bool {
    path.join("bin/kong").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_the_prefix_dirs() {
        let env = vec![(PREFIX_VAR.to_string(), "/opt/kong-3.9.3".to_string())];
        let p = KongPrefix::from_env(&env).unwrap();
        assert_eq!(p.program(), "/opt/kong-3.9.3/bin/kong");
        let e = p.env(Some("/usr/bin"));
        let get = |k: &str| e.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert!(get("PATH").starts_with("/opt/kong-3.9.3/bin:/opt/kong-3.9.3/openresty/bin:"));
        assert!(get("PATH").ends_with(":/usr/bin"));
        assert!(get("LUA_PATH").starts_with("/opt/kong-3.9.3/share/lua/5.1/?.lua;"));
        assert!(get("LUA_PATH").ends_with(";;"));
        assert!(!get("KONG_LUA_PACKAGE_PATH").ends_with(";;"));
        assert!(get("LUA_CPATH").starts_with("/opt/kong-3.9.3/lib/lua/5.1/?.so;"));
        assert!(KongPrefix::from_env(&[(PREFIX_VAR.into(), " ".into())]).is_none());
        assert!(KongPrefix::from_env(&[]).is_none());
    }
}
