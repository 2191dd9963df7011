//! File-system helpers: atomic writes, private directories, safe path components.

use std::io::Write;
use std::path::Path;

/// Writes a file atomically: a temporary file in the same directory, fsync, rename.
/// Parent directories are created.
pub fn atomic_write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    // Temporary files are created 0600; results and lab files are meant to be readable by
    // others (nginx workers run as an unprivileged user).
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates `path` (and missing parents) readable by its owner only (0700), and makes `path`
/// itself and `root` (an ancestor such as the perflab cache, when given) 0700 if they existed
/// with wider modes: caches and terraform state hold keys, state files and checkouts that are
/// nobody else's business.
pub fn private_dir_all(path: &Path, root: Option<&Path>) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    for d in std::iter::once(path).chain(root.filter(|r| path.starts_with(r))) {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes a string safe as one path component.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("perflab");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = root.join("terraform/netns/lab");
        private_dir_all(&dir, Some(&root)).unwrap();
        for d in [&root, &dir, &root.join("terraform")] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }
}
