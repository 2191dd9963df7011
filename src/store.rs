//! The results store: one folder per invocation, one folder per run, written as runs finish.
//!
//! Layout (documented in `docs/results.md`):
//! ```text
//! output/<YYYYmmdd-HHMMSS>-<suite>/
//!   manifest.json                 what was asked, the environment, status
//!   runs/<seq>-<case>-<version>-r<repeat>/
//!     wrk.txt  result.json  warmup.txt  gateway-error.log  upstream-error.log  config/…
//!   summary.md  summary.json  compare.*  charts/
//! ```
//! Every file is written atomically (temporary file, fsync, rename), and `result.json` is written
//! last, so a run folder with a `result.json` is complete even if perflab was killed right after.

use std::path::{Path, PathBuf};

use crate::result::RunRecord;
use crate::util::fs::{atomic_write, sanitize};
use crate::util::time::{now_unix, timestamp};
use crate::{Error, Result};

pub use crate::manifest::{MANIFEST_SCHEMA, Manifest};

/// The name of the link in a results root that points at the newest results folder.
pub const LATEST: &str = "latest";

/// Points `output/latest` at the folder `name` (a relative symbolic link, replaced atomically).
/// Best effort: a `latest` that is not a link (the user's own file or folder) is left alone,
/// and a failure never fails the run.
fn link_latest(output: &Path, name: &str) {
    let link = output.join(LATEST);
    if link.exists() && !link.is_symlink() {
        return;
    }
    let tmp = output.join(format!(".{LATEST}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::os::unix::fs::symlink(name, &tmp).is_ok() && std::fs::rename(&tmp, &link).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Whether a directory entry is a results folder of its own, not the [`LATEST`] link to one.
pub fn is_results_folder(path: &Path) -> bool {
    !path.is_symlink() && path.is_dir()
}

/// A results folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The results folder of the execution in progress, so that a panic can still mark it `failed`
/// (see [`mark_active_failed`]).
static ACTIVE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Records (or clears) the results folder of the execution in progress.
pub fn set_active(root: Option<&Path>) {
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = root.map(Path::to_path_buf);
    crate::journal::set_results_dir(root);
}

/// Sets the status of the results folder `root` when its manifest still says `running` (a
/// teardown after the process that wrote it was killed). Returns whether it changed it.
pub fn mark_stale(root: &Path, status: &str) -> bool {
    let store = Store {
        root: root.to_path_buf(),
    };
    if let Ok(mut m) = store.manifest()
        && m.status == "running"
    {
        m.status = status.to_string();
        m.finished_unix_s = Some(now_unix());
        return store.write_manifest(&m).is_ok();
    }
    false
}

/// After a panic: sets the status of the execution in progress to `failed: <reason>` (when its
/// manifest still says `running`) and returns its folder. Never panics itself.
pub fn mark_active_failed(reason: &str) -> Option<PathBuf> {
    mark_active(&format!("failed: {reason}"))
}

/// Sets the status of the execution in progress (when its manifest still says `running`), for
/// the paths that end the process without returning to the runner (a panic, a second Ctrl-C),
/// and returns its folder. Never panics itself.
pub fn mark_active(status: &str) -> Option<PathBuf> {
    let root = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take()?;
    mark_stale(&root, status);
    Some(root)
}

impl Store {
    /// Creates a new, unique results folder under `output`.
    pub fn create(output: &Path, suite: &str) -> Result<Store> {
        if output.exists() && !output.is_dir() {
            return Err(Error::Usage(format!(
                "--output {} is a file, not a folder: give a folder (it is created when missing); \
                 each invocation makes its own results folder inside it",
                output.display()
            )));
        }
        std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
        let base = format!("{}-{}", timestamp(now_unix()), sanitize(suite));
        for i in 0..1000 {
            let name = if i == 0 {
                base.clone()
            } else {
                format!("{base}-{i}")
            };
            let root = output.join(&name);
            match std::fs::create_dir(&root) {
                Ok(()) => {
                    link_latest(output, &name);
                    return Ok(Store { root });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&root, e)),
            }
        }
        Err(Error::Lab(format!(
            "cannot create a results folder in {}",
            output.display()
        )))
    }

    /// Uses exactly `dir` as the results folder (`--output-dir`), creating it. A folder that
    /// already holds files is refused: results are never mixed or overwritten.
    pub fn create_exact(dir: &Path) -> Result<Store> {
        if dir.exists() {
            let empty = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .next()
                .is_none();
            if !dir.is_dir() || !empty {
                return Err(Error::Usage(format!(
                    "--output-dir {} already exists and is not an empty folder: give a new (or \
                     empty) folder; results are never written over other files",
                    dir.display()
                )));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Store {
            root: dir.to_path_buf(),
        })
    }

    /// Opens an existing results folder.
    pub fn open(dir: &Path) -> Result<Store> {
        if !dir.join("runs").is_dir() && !dir.join("manifest.json").is_file() {
            return Err(Error::Usage(format!(
                "{} is not a perflab results folder (no manifest.json or runs/)",
                dir.display()
            )));
        }
        Ok(Store {
            root: dir.to_path_buf(),
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one run.
    pub fn run_dir(&self, sequence: u32, case: &str, version: &str, repeat: u32) -> PathBuf {
        self.root.join("runs").join(format!(
            "{sequence:04}-{}-{}-r{repeat}",
            sanitize(case),
            sanitize(version)
        ))
    }

    /// Writes a file inside the store (registered secrets scrubbed, see [`crate::redact`]).
    pub fn write(&self, rel: impl AsRef<Path>, data: &[u8]) -> Result<PathBuf> {
        let p = self.root.join(rel);
        atomic_write(&p, &crate::redact::scrub(data)).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }

    /// Writes the manifest, with secret driver options redacted (`var.*` values, tokens,
    /// passwords: see [`crate::redact`]).
    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let mut m = m.clone();
        m.driver_options = crate::redact::driver_options(&m.driver_options);
        m.command = crate::redact::argv(&m.command);
        let mut v = serde_json::to_value(&m).map_err(|e| Error::Lab(e.to_string()))?;
        for free_text in ["options", "driver_info", "fingerprint"] {
            if let Some(x) = v.get_mut(free_text) {
                redact_json(x);
            }
        }
        let text = serde_json::to_vec_pretty(&v).map_err(|e| Error::Lab(e.to_string()))?;
        self.write("manifest.json", &text)?;
        Ok(())
    }

    /// Reads the manifest.
    pub fn manifest(&self) -> Result<Manifest> {
        let p = self.root.join("manifest.json");
        let text = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_slice(&text).map_err(|e| {
            Error::Usage(format!(
                "{} is damaged ({e}): restore it, or remove it to render the runs in {} alone",
                p.display(),
                self.root.join("runs").display()
            ))
        })
    }

    /// Writes one finished run: the attached files first, `result.json` last.
    pub fn write_run(
        &self,
        dir: &Path,
        record: &RunRecord,
        files: &[(String, Vec<u8>)],
    ) -> Result<()> {
        for (name, data) in files {
            let p = dir.join(name);
            atomic_write(&p, &crate::redact::scrub(data)).map_err(|e| Error::io(&p, e))?;
        }
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Lab(e.to_string()))?;
        let p = dir.join("result.json");
        atomic_write(&p, &crate::redact::scrub(&json)).map_err(|e| Error::io(&p, e))
    }

    /// Loads every complete run, in run order.
    pub fn load_runs(&self) -> Result<Vec<RunRecord>> {
        let runs = self.root.join("runs");
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&runs) {
            Ok(d) => d
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("result.json").is_file())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&runs, e)),
        };
        dirs.sort();
        let mut out = Vec::new();
        for d in dirs {
            let p = d.join("result.json");
            let text = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            let rec: RunRecord = serde_json::from_slice(&text)
                .map_err(|e| Error::Lab(format!("{}: {e}", p.display())))?;
            out.push(rec);
        }
        out.sort_by_key(|r| r.sequence);
        Ok(out)
    }
}

/// Redacts, in place, every string option `KEY=VALUE` or object member `KEY: VALUE` whose key
/// looks like a secret, and scrubs registered secret values from every string.
fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            *s = match s.split_once('=') {
                Some((k, _)) if crate::redact::is_secret_key(k) && !k.contains(' ') => {
                    crate::redact::option_string(s)
                }
                _ => crate::redact::scrub_str(s),
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_json),
        serde_json::Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if crate::redact::is_secret_key(k) && (x.is_string() || x.is_number()) {
                    *x = serde_json::Value::String(crate::redact::REDACTED.into());
                } else {
                    redact_json(x);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_incomplete_runs_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::create(tmp.path(), "rps").unwrap();
        let rec = RunRecord {
            schema: crate::result::RUN_SCHEMA.into(),
            case: "a@nginx".into(),
            version: "git:v1/x".into(),
            sequence: 2,
            ..Default::default()
        };
        let dir = store.run_dir(2, &rec.case, &rec.version, 1);
        store
            .write_run(&dir, &rec, &[("wrk.txt".into(), b"raw".to_vec())])
            .unwrap();
        std::fs::create_dir_all(store.run_dir(3, "b", "current", 1)).unwrap();
        let back = Store::open(store.root()).unwrap().load_runs().unwrap();
        assert_eq!(back, vec![rec]);
        assert_eq!(std::fs::read(dir.join("wrk.txt")).unwrap(), b"raw");
        assert!(
            dir.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("git_v1_x")
        );
    }

    #[test]
    fn latest_points_at_the_newest_folder_and_exact_folders_are_fresh() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Store::create(tmp.path(), "rps").unwrap();
        let b = Store::create(tmp.path(), "rps").unwrap();
        let latest = tmp.path().join(LATEST);
        assert_eq!(
            std::fs::read_link(&latest).unwrap(),
            Path::new(b.root().file_name().unwrap())
        );
        assert_ne!(a.root(), b.root());
        assert!(!is_results_folder(&latest) && is_results_folder(b.root()));
        // A user's own `latest` folder is left alone.
        let mine = tempfile::tempdir().unwrap();
        std::fs::create_dir(mine.path().join(LATEST)).unwrap();
        Store::create(mine.path(), "rps").unwrap();
        assert!(is_results_folder(&mine.path().join(LATEST)));

        let exact = tmp.path().join("ci/run-1");
        let s = Store::create_exact(&exact).unwrap();
        assert_eq!(s.root(), exact);
        std::fs::write(exact.join("x"), "").unwrap();
        let e = Store::create_exact(&exact).unwrap_err().to_string();
        assert!(e.contains("not an empty folder"), "{e}");
    }

    #[test]
    fn open_refuses_other_folders() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            Store::open(tmp.path())
                .unwrap_err()
                .to_string()
                .contains("not a perflab results folder")
        );
    }
}
