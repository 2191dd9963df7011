//! Where perflab keeps its files: an installed perflab's data, `<prefix>/share/perflab` beside
//! `<prefix>/bin`, and the per-user cache ([`cache_dir`]).
//!
//! Why: a packaged perflab (the Nix flake's `perflab`, `cargo install` plus a copy, a distro
//! package) runs far from its source tree, so the suites and terraform modules that a checkout
//! finds in `./suites` and `./terraform` must be found next to the binary. Packagers install
//! `suites/` and `terraform/` into `<prefix>/share/perflab/` (the flake does); lookups try it
//! after the user's own folders and before the source tree perflab was built from.

use std::path::{Path, PathBuf};

/// `<prefix>/share/perflab` for the binary at `exe` (`<prefix>/bin/perflab`).
pub fn data_dir_of(exe: &Path) -> Option<PathBuf> {
    let prefix = exe.parent()?.parent()?;
    Some(prefix.join("share").join("perflab"))
}

/// `<prefix>/share/perflab/<sub>` of the running binary, when that folder exists.
pub fn data_dir(sub: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    data_dir_of(&exe)
        .map(|d| d.join(sub))
        .filter(|d| d.is_dir())
}

/// The cache directory for perflab (`$XDG_CACHE_HOME/perflab` or `~/.cache/perflab`).
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("PERFLAB_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache")
        });
    base.join("perflab")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_dir_is_beside_bin() {
        assert_eq!(
            data_dir_of(Path::new("/nix/store/abc-perflab-0.1.0/bin/perflab")).unwrap(),
            Path::new("/nix/store/abc-perflab-0.1.0/share/perflab")
        );
        assert!(data_dir_of(Path::new("perflab")).is_none());
    }
}
