//! The root filesystem of a lab image: this machine's binaries, their shared-library closure
//! and the few files the programs need, as a deterministic tarball (see [`super`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::IMAGE_REPO;
use crate::{Error, Result};

/// Programs every lab image must have: the shell and the tools the container host uses
/// (`setsid` for process groups, `cat`/`rm`/`mkdir`/`mv` for files, `kill` to stop processes),
/// and those the shared session runs on every host (`getconf` counts CPUs, `readlink` tells
/// PID namespaces apart, `tar` unpacks a `git:` version's tree; `dd`, `mktemp` and `wc` run the
/// long-lived shell of [`crate::host::remote_shell`]).
pub const REQUIRED_BINARIES: &[&str] = &[
    "sh", "cat", "mkdir", "kill", "sleep", "rm", "ls", "env", "mv", "setsid", "readlink",
    "getconf", "tar", "dd", "mktemp", "wc",
];

/// Programs the roles use; `image build` includes those found on this machine. `setpriv`,
/// `chown`, `id` and `test` let the PostgreSQL role drop root, as on the local driver; `chmod`
/// restricts its password file to its owner.
pub const ROLE_BINARIES: &[&str] = &[
    "nginx", "wrk", "haproxy", "curl", "taskset", "setpriv", "chown", "chmod", "id", "test",
];

/// The PostgreSQL server programs the PostgreSQL role runs (from the server's own `bin`
/// directory: Debian puts only wrappers for some of them on PATH).
pub const POSTGRES_PROGRAMS: &[&str] = &[
    "initdb",
    "pg_ctl",
    "postgres",
    "pg_isready",
    "psql",
    "pg_dump",
];

/// The newest PostgreSQL server installed here (`/usr/lib/postgresql/<major>/bin`), if any.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

/// One binary in an image and the hash of the file that went in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BinaryInfo {
    /// The program's name as asked for (`nginx`).
    pub name: String,
    /// Where it lives, here and in the image (`/usr/sbin/nginx`).
    pub path: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// A root filesystem tarball and what went into it.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// The tar archive (paths relative to `/`).
    pub tar: Vec<u8>,
    /// SHA-256 of `tar`, hex.
    pub sha256: String,
    /// The binaries asked for.
    pub binaries: Vec<BinaryInfo>,
}

impl Rootfs {
    /// The content-addressed image name, `perflab/lab:<first 16 hex digits of the hash>`.
    pub fn tag(&self) -> String {
        format!("{IMAGE_REPO}:{}", &self.sha256[..16])
    }
}

/// One entry of the filesystem being assembled.
#[derive(Debug, Clone)]
enum Entry {
    Dir(u32),
    Symlink(PathBuf),
    HostFile(PathBuf, u32),
    Data(Vec<u8>, u32),
}

/// Entries keyed by absolute path; `BTreeMap` order puts every directory before its contents.
#[derive(Debug, Default)]
struct Tree {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Tree {
    fn dir(&mut self, path: &Path, mode: u32) {
        let mut cur = PathBuf::from("/");
        for c in path.components().skip(1) {
            cur.push(c);
            self.entries.entry(cur.clone()).or_insert(Entry::Dir(0o755));
        }
        self.entries.insert(path.to_path_buf(), Entry::Dir(mode));
    }

    fn data(&mut self, path: &Path, data: &[u8], mode: u32) {
        if let Some(p) = path.parent() {
            self.dir_if_absent(p);
        }
        self.entries
            .insert(path.to_path_buf(), Entry::Data(data.to_vec(), mode));
    }

    /// Copies a directory of this machine with everything under it (symlinks kept as links),
    /// except entries whose file name `skip` accepts. Returns the regular files copied.
    fn host_tree(&mut self, dir: &Path, skip: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
        let real = self.host_path(dir)?;
        let mut files = Vec::new();
        let mut pending = vec![real];
        while let Some(d) = pending.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&d)
                .map_err(|e| Error::io(&d, e))?
                .flatten()
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let path = e.path();
                if skip(&e.file_name().to_string_lossy()) {
                    continue;
                }
                let md = std::fs::symlink_metadata(&path).map_err(|err| Error::io(&path, err))?;
                let mode = md.permissions().mode() & 0o7777;
                if md.file_type().is_symlink() {
                    let target = std::fs::read_link(&path).map_err(|err| Error::io(&path, err))?;
                    self.entries.insert(path, Entry::Symlink(target));
                } else if md.is_dir() {
                    self.entries.insert(path.clone(), Entry::Dir(mode));
                    pending.push(path);
                } else if md.is_file() {
                    self.entries
                        .insert(path.clone(), Entry::HostFile(path.clone(), mode));
                    files.push(path);
                }
            }
        }
        Ok(files)
    }

    fn dir_if_absent(&mut self, path: &Path) {
        let mut cur = PathBuf::from("/");
        for c in path.components().skip(1) {
            cur.push(c);
            self.entries.entry(cur.clone()).or_insert(Entry::Dir(0o755));
        }
    }

    /// Copies a path of this machine into the tree, recreating every symlink met on the way
    /// (`/lib -> usr/lib`, `libz.so.1 -> libz.so.1.2.13`) so that the same path resolves the same
    /// way inside the image. Returns the real file's path.
    fn host_path(&mut self, path: &Path) -> Result<PathBuf> {
        let io = |e| Error::io(path, e);
        let mut pending: VecDeque<PathBuf> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(PathBuf::from(n)),
                Component::ParentDir => Some(PathBuf::from("..")),
                _ => None,
            })
            .collect();
        let mut cur = PathBuf::from("/");
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            if c == Path::new("..") {
                cur.pop();
                continue;
            }
            let next = cur.join(&c);
            let md = std::fs::symlink_metadata(&next).map_err(io)?;
            if md.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return Err(Error::Lab(format!(
                        "too many symlinks resolving {}",
                        path.display()
                    )));
                }
                let target = std::fs::read_link(&next).map_err(io)?;
                self.entries
                    .insert(next.clone(), Entry::Symlink(target.clone()));
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                for t in target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(PathBuf::from(n)),
                        Component::ParentDir => Some(PathBuf::from("..")),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    pending.push_front(t);
                }
            } else if md.is_dir() {
                self.entries
                    .entry(next.clone())
                    .or_insert(Entry::Dir(md.permissions().mode() & 0o7777));
                cur = next;
            } else {
                if !pending.is_empty() {
                    return Err(Error::Lab(format!(
                        "{}: {} is not a directory",
                        path.display(),
                        next.display()
                    )));
                }
                self.entries.insert(
                    next.clone(),
                    Entry::HostFile(next.clone(), md.permissions().mode() & 0o7777),
                );
                cur = next;
            }
        }
        Ok(cur)
    }

    /// Writes a deterministic tar: sorted paths, owner root, time zero.
    fn to_tar(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let rel = path.strip_prefix("/").unwrap_or(path);
            if rel.as_os_str().is_empty() {
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            let tar_err = |e: std::io::Error| Error::io(path, e);
            match entry {
                Entry::Dir(mode) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, rel, std::io::empty())
                        .map_err(tar_err)?;
                }
                Entry::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, rel, target).map_err(tar_err)?;
                }
                Entry::HostFile(src, mode) => {
                    let data = std::fs::read(src).map_err(|e| Error::io(src, e))?;
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, rel, data.as_slice())
                        .map_err(tar_err)?;
                }
                Entry::Data(data, mode) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, rel, data.as_slice())
                        .map_err(tar_err)?;
                }
            }
        }
        b.into_inner().map_err(|e| Error::io("rootfs tar", e))
    }
}

/// The shared libraries `ldd` lists for a binary (including the dynamic loader); empty for a
/// static binary. A library `ldd` cannot find is an error naming it.
pub fn parse_ldd(binary: &str, text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.ends_with(':') {
            continue;
        }
        if let Some((name, rest)) = line.split_once("=>") {
            let rest = rest.trim();
            if rest.starts_with("not found") {
                return Err(Error::Lab(format!(
                    "{binary} needs {} which ldd cannot find on this machine",
                    name.trim()
                )));
            }
            if let Some(p) = rest
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                libs.push(PathBuf::from(p));
            }
        } else if let Some(p) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            // The dynamic loader: "/lib64/ld-linux-x86-64.so.2 (0x…)".
            libs.push(PathBuf::from(p));
        }
        // Anything else: linux-vdso (no file), "statically linked".
    }
    Ok(libs)
}

fn ldd(binary: &Path) -> Result<Vec<PathBuf>> {
    ldd_with(binary, None)
}

/// `ldd` with `LD_LIBRARY_PATH` set (a Kong prefix's own library directories).
fn ldd_with(binary: &Path, library_path: Option<&str>) -> Result<Vec<PathBuf>> {
    let mut cmd = std::process::Command::new("ldd");
    cmd.arg(binary);
    if let Some(p) = library_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    let out = crate::host::process_group::output_tied(cmd).map_err(|e| Error::MissingTool {
        program: "ldd".into(),
        where_: String::new(),
        hint: format!("needed to find the shared libraries of binaries ({e})"),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Static binaries and scripts: "not a dynamic executable".
        if stdout.contains("not a dynamic executable") || stderr.contains("not a dynamic") {
            return Ok(Vec::new());
        }
        return Err(Error::Lab(format!(
            "ldd {} failed: {}{}",
            binary.display(),
            stdout.trim(),
            stderr.trim()
        )));
    }
    parse_ldd(&binary.display().to_string(), &stdout)
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
postgres:x:5432:5432:PostgreSQL:/var/lib/postgresql:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

const GROUP: &str =
    "root:x:0:\nwww-data:x:33:\npostgres:x:5432:\nnogroup:x:65534:\nnobody:x:65534:\n";

const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";

/// Builds a root filesystem tarball from binaries of this machine.
///
/// Each name is looked up on PATH (a path is taken as is); the file, every symlink leading to
/// it, and its `ldd` closure go in at the same paths. Added as well: `/bin/sh`, `/etc/passwd` and
/// `/etc/group` (root, www-data, nobody, nogroup), `/etc/nsswitch.conf`, `/tmp` (mode 1777),
/// `/root`, `/run`, `/var/tmp`, `/perflab` (the lab's work dirs), and for nginx its
/// `mime.types` and the log and temp directories it opens before reading its config.
pub fn build_rootfs_tar(binaries: &[&str]) -> Result<Rootfs> {
    let mut tree = Tree::default();
    let mut infos = Vec::new();
    let mut seen_libs: HashSet<PathBuf> = HashSet::new();
    let mut postgres_done = false;
    for name in binaries {
        let found = if name.contains('/') {
            PathBuf::from(name)
        } else {
            which::which(name).map_err(|_| Error::MissingTool {
                program: name.to_string(),
                where_: " on this machine's PATH".into(),
                hint: "install it (e.g. apt-get install) before building the lab image".into(),
            })?
        };
        let real = tree.host_path(&found)?;
        let data = std::fs::read(&real).map_err(|e| Error::io(&real, e))?;
        infos.push(BinaryInfo {
            name: name.to_string(),
            path: found.display().to_string(),
            sha256: crate::util::hash::sha256_hex(&data),
        });
        add_libs(&mut tree, &mut seen_libs, ldd(&real)?)?;
        // A PostgreSQL server program: the server's data files, modules and time zones too.
        if let Some(version_dir) = real
            .strip_prefix("/usr/lib/postgresql")
            .ok()
            .and_then(|rest| rest.components().next())
            .map(|major| Path::new("/usr/lib/postgresql").join(major))
            && !postgres_done
        {
            postgres_done = true;
            let major = version_dir.file_name().unwrap_or_default().to_owned();
            let share = Path::new("/usr/share/postgresql").join(&major);
            if share.is_dir() {
                tree.host_tree(&share, &|_| false)?;
            }
            // Without the JIT (LLVM is large; the server runs without it).
            let modules = tree.host_tree(&version_dir.join("lib"), &|n| {
                n == "bitcode" || n.starts_with("llvmjit")
            })?;
            add_module_libs(&mut tree, &mut seen_libs, &modules)?;
            if Path::new("/usr/share/zoneinfo").is_dir() {
                tree.host_tree(Path::new("/usr/share/zoneinfo"), &|_| false)?;
            }
            tree.dir(Path::new("/var/lib/postgresql"), 0o755);
            tree.dir(Path::new("/var/run/postgresql"), 0o1777);
        }
        // A Kong built from source into a prefix (`PREFIX/bin/kong`): the whole prefix.
        if let Some(prefix) = kong_prefix_of(&found) {
            add_kong_prefix(&mut tree, &prefix, &mut seen_libs)?;
        }
        if *name == "nginx" || found.ends_with("nginx") {
            for f in ["/etc/nginx/mime.types"] {
                if Path::new(f).exists() {
                    tree.host_path(Path::new(f))?;
                }
            }
            tree.dir(Path::new("/var/log/nginx"), 0o755);
            tree.dir(Path::new("/var/lib/nginx"), 0o755);
            tree.dir(Path::new("/run/nginx"), 0o755);
        }
    }
    if Path::new("/bin/sh").exists() && !binaries.contains(&"/bin/sh") {
        let sh = tree.host_path(Path::new("/bin/sh"))?;
        add_libs(&mut tree, &mut seen_libs, ldd(&sh)?)?;
    }
    tree.data(Path::new("/etc/passwd"), PASSWD.as_bytes(), 0o644);
    tree.data(Path::new("/etc/group"), GROUP.as_bytes(), 0o644);
    tree.data(Path::new("/etc/nsswitch.conf"), NSSWITCH.as_bytes(), 0o644);
    tree.dir(Path::new("/tmp"), 0o1777);
    tree.dir(Path::new("/var/tmp"), 0o1777);
    tree.dir(Path::new("/root"), 0o700);
    tree.dir(Path::new("/run"), 0o755);
    tree.dir(Path::new("/perflab"), 0o755);
    for d in ["/proc", "/sys", "/dev", "/etc"] {
        tree.dir(Path::new(d), 0o755);
    }
    let tar = tree.to_tar()?;
    let sha256 = crate::util::hash::sha256_hex(&tar);
    Ok(Rootfs {
        tar,
        sha256,
        binaries: infos,
    })
}

/// The prefix of a Kong built from source whose `bin/kong` is `kong`: the directory above `bin`
/// when it holds `openresty/` (docs/kong-from-source.md's layout).
fn kong_prefix_of(kong: &Path) -> Option<PathBuf> {
    if kong.file_name()? != "kong" {
        return None;
    }
    let prefix = kong.parent()?.parent()?;
    prefix
        .join("openresty")
        .is_dir()
        .then(|| prefix.to_path_buf())
}

/// Puts a Kong prefix into the image at its own path, so `PERFLAB_KONG_PREFIX` means the same
/// in the containers: every file of the prefix, the shared libraries its programs and Lua C
/// modules need from the system (`ldd` with the prefix's library dirs on `LD_LIBRARY_PATH`, as
/// the prefix's environment has them), and Perl with its module directories, since `bin/kong`
/// runs on OpenResty's `resty`, a Perl script.
fn add_kong_prefix(tree: &mut Tree, prefix: &Path, seen_libs: &mut HashSet<PathBuf>) -> Result<()> {
    let library_path = [
        prefix.join("lib/lua/5.1"),
        prefix.join("openresty/luajit/lib"),
        prefix.join("lib"),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(":");
    let files = tree.host_tree(prefix, &|_| false)?;
    for f in files.iter().filter(|f| is_elf(f)) {
        add_libs(tree, seen_libs, ldd_with(f, Some(&library_path))?)?;
    }
    let perl = which::which("perl").map_err(|_| Error::MissingTool {
        program: "perl".into(),
        where_: " on this machine's PATH".into(),
        hint: "Kong's CLI runs on OpenResty's `resty`, a Perl script: apt-get install perl".into(),
    })?;
    let perl = tree.host_path(&perl)?;
    add_libs(tree, seen_libs, ldd(&perl)?)?;
    for dir in perl_module_dirs()? {
        let modules = tree.host_tree(&dir, &|_| false)?;
        add_module_libs(tree, seen_libs, &modules)?;
    }
    Ok(())
}

/// Adds the shared libraries `libs` to the tree, each once (`seen` holds those already in).
fn add_libs(tree: &mut Tree, seen: &mut HashSet<PathBuf>, libs: Vec<PathBuf>) -> Result<()> {
    for lib in libs {
        if seen.insert(lib.clone()) {
            tree.host_path(&lib)?;
        }
    }
    Ok(())
}

/// Adds the shared libraries that the loadable modules (`.so`) among `files` need.
fn add_module_libs(tree: &mut Tree, seen: &mut HashSet<PathBuf>, files: &[PathBuf]) -> Result<()> {
    for m in files
        .iter()
        .filter(|m| m.extension().is_some_and(|e| e == "so"))
    {
        add_libs(tree, seen, ldd(m)?)?;
    }
    Ok(())
}

/// Perl's module directories on this machine (`@INC`) that exist.
fn perl_module_dirs() -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("perl")
        .args(["-e", "print join(qq{\n}, @INC)"])
        .output()
        .map_err(|e| Error::Lab(format!("running perl to list its module directories: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .collect())
}

/// True for an ELF file (a program or a shared library).
fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The binaries `image build` puts in: every required one, the role binaries found here and the
/// PostgreSQL server programs when a server is installed
/// (a missing role binary is left out with a warning: the role that needs it fails with a clear
/// message when it runs).
pub fn default_binaries() -> Result<Vec<String>> {
    let mut v: Vec<String> = Vec::new();
    for b in REQUIRED_BINARIES {
        if which::which(b).is_err() {
            return Err(Error::MissingTool {
                program: b.to_string(),
                where_: " on this machine's PATH".into(),
                hint: "every lab image needs it; install coreutils/util-linux/procps".into(),
            });
        }
        v.push(b.to_string());
    }
    for b in ROLE_BINARIES {
        if which::which(b).is_ok() {
            v.push(b.to_string());
        } else {
            tracing::warn!("{b} is not installed here; the lab image will not have it");
        }
    }
    // A Kong built from source (docs/kong-from-source.md), when PERFLAB_KONG_PREFIX names one:
    // its whole prefix goes in at the same path.
    if let Some(p) = std::env::var_os("PERFLAB_KONG_PREFIX").filter(|p| !p.is_empty()) {
        let kong = Path::new(&p).join("bin/kong");
        if kong_prefix_of(&kong).is_some() && kong.is_file() {
            v.push(kong.display().to_string());
        } else {
            tracing::warn!(
                "PERFLAB_KONG_PREFIX={} has no bin/kong and openresty/: the lab image will not \
                 have Kong",
                kong.display()
            );
        }
    }
    // PostgreSQL (Kong's traditional and hybrid modes, `start_postgres`), when installed here.
    match postgres_bin_dir() {
        Some(dir) => {
            for p in POSTGRES_PROGRAMS {
                v.push(dir.join(p).display().to_string());
            }
        }
        None => tracing::warn!(
            "no PostgreSQL server here (/usr/lib/postgresql/*/bin); the lab image will not have one"
        ),
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded on Debian 12 (`ldd /usr/sbin/nginx`).
    const LDD_NGINX: &str = "\tlinux-vdso.so.1 (0x00007fb77b27c000)
\tlibcrypt.so.1 => /lib/x86_64-linux-gnu/libcrypt.so.1 (0x00007fb77b0db000)
\tlibpcre2-8.so.0 => /lib/x86_64-linux-gnu/libpcre2-8.so.0 (0x00007fb77b041000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007fb77af79000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fb77a81e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007fb77b27e000)
";

    #[test]
    fn parses_ldd_with_loader_and_without_vdso() {
        let libs = parse_ldd("nginx", LDD_NGINX).unwrap();
        assert_eq!(libs.len(), 5);
        assert_eq!(libs[0], Path::new("/lib/x86_64-linux-gnu/libcrypt.so.1"));
        assert_eq!(libs[4], Path::new("/lib64/ld-linux-x86-64.so.2"));
    }

    #[test]
    fn missing_library_is_named() {
        let e = parse_ldd("wrk", "\tlibluajit-5.1.so.2 => not found\n").unwrap_err();
        assert!(e.to_string().contains("libluajit-5.1.so.2"), "{e}");
    }

    #[test]
    fn rootfs_is_deterministic_and_keeps_symlinks() {
        let a = build_rootfs_tar(&["sh", "cat"]).unwrap();
        let b = build_rootfs_tar(&["sh", "cat"]).unwrap();
        assert_eq!(a.sha256, b.sha256);
        assert!(a.tag().starts_with("perflab/lab:"));
        let mut ar = tar::Archive::new(a.tar.as_slice());
        let mut kinds = BTreeMap::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            kinds.insert(
                e.path().unwrap().display().to_string(),
                (e.header().entry_type(), e.header().mode().unwrap()),
            );
        }
        assert_eq!(kinds["tmp"], (tar::EntryType::Directory, 0o1777));
        assert!(kinds.contains_key("etc/passwd"));
        let sh = std::fs::canonicalize(which::which("sh").unwrap()).unwrap();
        let sh_rel = sh.strip_prefix("/").unwrap().display().to_string();
        assert_eq!(kinds[&sh_rel].0, tar::EntryType::Regular);
        // A merged-/usr system links /lib64; a Nix build sandbox has no /lib64 at all.
        if std::fs::symlink_metadata("/lib64").is_ok_and(|m| m.file_type().is_symlink()) {
            assert_eq!(kinds["lib64"].0, tar::EntryType::Symlink);
        }
    }
}
