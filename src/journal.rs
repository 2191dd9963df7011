//! Lab journals: what a lab started, written down before it starts it.
//!
//! Why: a lab whose perflab process dies (`kill -9`, the OOM killer, a closed terminal with
//! SIGKILL) cannot tear itself down, and guessing its processes from command lines afterwards
//! misses some (a program whose argv does not name the lab) and could hit someone else's. So
//! every lab keeps a small JSON file, `<cache>/labs/<lab id>.json` (0600, in a 0700 dir), that
//! records — before each step is taken — the local process groups it spawned (with their
//! start times, so a recycled id is never signalled), its local and remote directories, the
//! terraform lab it used and the Docker engine it labelled objects on. An orderly teardown
//! removes the journal; `perflab teardown` reads the journals of labs whose owner is gone and
//! undoes exactly what they list (the `cleanup` module).
//!
//! The file is rewritten whole (temp file + rename) on each change: it stays small (one entry
//! per live process group, not per run), and a reader never sees half of it. It is not fsynced:
//! it guards against the death of perflab, not of the machine (which takes the processes with
//! it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// The schema identifier of a journal file.
pub const JOURNAL_SCHEMA: &str = "perflab.journal/1";

/// A local process group the lab spawned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalGroup {
    /// The process group id (the leader's pid).
    pub pgid: i32,
    /// The leader's start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_ticks: u64,
    /// The program, for messages.
    pub program: String,
}

/// A lab directory on a machine reached over SSH (its `.perflab-pids/` names what runs there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteDir {
    /// The machine (`kong`, `worker`, `db`, `load-N`: from a terraform module's outputs).
    pub machine: String,
    /// The directory on that machine.
    pub dir: PathBuf,
}

/// The terraform lab a lab used: enough to reconnect to its machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerraformLab {
    /// The module (`netns`, `aws-ec2`, …).
    pub provider: String,
    /// The lab name (`--driver-opt lab=…`).
    pub lab: String,
    /// The state dir (terraform state, key, known_hosts).
    pub state_dir: PathBuf,
    /// Where the module came from.
    pub modules_dir: PathBuf,
}

/// What a journal file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Always [`JOURNAL_SCHEMA`].
    pub schema: String,
    /// The lab's id.
    pub lab_id: String,
    /// The driver (`local`, `docker`, `terraform`).
    pub driver: String,
    /// The perflab process that owns the lab.
    pub owner_pid: u32,
    /// Its start time in clock ticks since boot (tells a recycled pid apart).
    pub owner_start_ticks: u64,
    /// Local process groups still running (removed once stopped).
    #[serde(default)]
    pub local_groups: Vec<LocalGroup>,
    /// Local directories of the lab.
    #[serde(default)]
    pub local_dirs: Vec<PathBuf>,
    /// Directories on SSH machines.
    #[serde(default)]
    pub remote_dirs: Vec<RemoteDir>,
    /// The terraform lab, when the driver is terraform.
    #[serde(default)]
    pub terraform: Option<TerraformLab>,
    /// The Docker engine address (`None`: the default), when the driver is docker.
    #[serde(default)]
    pub docker_host: Option<String>,
    /// Local dirs of SSH control sockets (one per machine): their master processes outlive a
    /// killed perflab and are ended with `ssh -O exit`.
    #[serde(default)]
    pub ssh_control_dirs: Vec<PathBuf>,
    /// The results folder being written: a teardown after a kill marks it `failed: killed` if
    /// it still says `running`.
    #[serde(default)]
    pub results_dir: Option<PathBuf>,
}

impl Record {
    /// True while the perflab process that wrote the journal still runs.
    pub fn owner_alive(&self) -> bool {
        crate::util::proc::start_ticks(self.owner_pid as i32) == Some(self.owner_start_ticks)
    }
}

/// A lab's journal, shared by its driver and hosts.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    record: Mutex<Record>,
}

/// The results folder of the execution in progress, and the journals of this process.
static RESULTS_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
static LIVE: Mutex<Vec<std::sync::Weak<Journal>>> = Mutex::new(Vec::new());

/// Records the results folder of the execution in progress (or clears it) in every journal of
/// this process and the ones made later (the store's `set_active` calls it).
pub fn set_results_dir(dir: Option<&Path>) {
    *RESULTS_DIR.lock().unwrap_or_else(|e| e.into_inner()) = dir.map(Path::to_path_buf);
    let live: Vec<Arc<Journal>> = {
        let mut l = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        l.retain(|w| w.strong_count() > 0);
        l.iter().filter_map(|w| w.upgrade()).collect()
    };
    for j in live {
        let _ = j.update(|r| r.results_dir = dir.map(Path::to_path_buf));
    }
}

/// Where journals live: `labs/` in perflab's cache dir ([`crate::install::cache_dir`]).
pub fn journals_dir() -> PathBuf {
    crate::install::cache_dir().join("labs")
}

impl Journal {
    /// Starts the journal of lab `lab_id` on `driver` and writes it at once.
    pub fn create(lab_id: &str, driver: &str) -> Result<Arc<Journal>, JournalError> {
        let pid = std::process::id();
        let path = journals_dir().join(format!("{lab_id}.json"));
        let j = Journal {
            path,
            record: Mutex::new(Record {
                schema: JOURNAL_SCHEMA.to_string(),
                lab_id: lab_id.to_string(),
                driver: driver.to_string(),
                owner_pid: pid,
                owner_start_ticks: crate::util::proc::start_ticks(pid as i32).unwrap_or(0),
                results_dir: RESULTS_DIR
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                ..Default::default()
            }),
        };
        j.update(|_| {})?;
        let j = Arc::new(j);
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&j));
        Ok(j)
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of what the journal holds now.
    pub fn snapshot(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the record and writes it.
    pub fn update(&self, change: impl FnOnce(&mut Record)) -> Result<(), JournalError> {
        let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut r);
        write(&self.path, &r)
    }

    /// Records a local process group just spawned.
    pub fn add_local_group(&self, pgid: i32, program: &str) -> Result<(), JournalError> {
        let start_ticks = crate::util::proc::start_ticks(pgid).unwrap_or(0);
        self.update(|r| {
            r.local_groups.push(LocalGroup {
                pgid,
                start_ticks,
                program: program.to_string(),
            })
        })
    }

    /// Forgets a local process group that was stopped.
    pub fn remove_local_group(&self, pgid: i32) {
        let _ = self.update(|r| r.local_groups.retain(|g| g.pgid != pgid));
    }

    /// Records a directory on an SSH machine (before it is created), once.
    pub fn add_remote_dir(&self, machine: &str, dir: &Path) -> Result<(), JournalError> {
        self.update(|r| {
            let d = RemoteDir {
                machine: machine.to_string(),
                dir: dir.to_path_buf(),
            };
            if !r.remote_dirs.contains(&d) {
                r.remote_dirs.push(d);
            }
        })
    }

    /// Removes the journal: everything it listed has been cleaned up.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A journal file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {cause}", path.display())]
pub struct JournalError {
    /// The file or folder.
    pub path: PathBuf,
    /// The cause.
    pub cause: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |cause| JournalError {
        path: path.to_path_buf(),
        cause,
    }
}

fn write(path: &Path, r: &Record) -> Result<(), JournalError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::util::fs::private_dir_all(dir, Some(&crate::install::cache_dir())).map_err(io(dir))?;
    let text = serde_json::to_vec_pretty(r).expect("a journal serialises");
    // Temporary files are created 0600 and stay so.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(&text).map_err(io(tmp.path()))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

/// Every journal on this machine with its file, sorted by lab id; unreadable files are
/// returned as errors naming them.
pub fn list() -> Vec<(PathBuf, Result<Record, String>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(journals_dir()) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let r = std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()));
        out.push((p, r));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The ids of labs whose perflab process still runs (their objects are not leftovers).
pub fn running_lab_ids() -> Vec<String> {
    list()
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .filter(Record::owner_alive)
        .map(|r| r.lab_id)
        .collect()
}

/// The journals of labs whose perflab process is gone: what `perflab teardown` cleans, and
/// what a new lab reports at its start.
pub fn orphaned() -> Vec<(PathBuf, Record)> {
    list()
        .into_iter()
        .filter_map(|(p, r)| r.ok().map(|r| (p, r)))
        .filter(|(_, r)| !r.owner_alive())
        .collect()
}

/// A note for the start of a lab when dead labs left things behind, naming them.
pub fn dead_labs_note() -> Option<String> {
    let dead: Vec<String> = orphaned()
        .into_iter()
        .map(|(_, r)| format!("{} ({})", r.lab_id, r.driver))
        .collect();
    (!dead.is_empty()).then(|| {
        format!(
            "{} earlier lab(s) ended without cleaning up: {}; their processes, folders or \
             containers may compete with this lab: run `perflab teardown`",
            dead.len(),
            dead.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_old_files_without_lists_load() {
        let r = Record {
            schema: JOURNAL_SCHEMA.into(),
            lab_id: "x".into(),
            driver: "local".into(),
            owner_pid: 1,
            owner_start_ticks: 2,
            local_groups: vec![LocalGroup {
                pgid: 5,
                start_ticks: 6,
                program: "nginx".into(),
            }],
            ..Default::default()
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
        let minimal = r#"{"schema":"perflab.journal/1","lab_id":"y","driver":"docker","owner_pid":3,"owner_start_ticks":4}"#;
        let m: Record = serde_json::from_str(minimal).unwrap();
        assert!(m.local_groups.is_empty() && m.terraform.is_none());
    }

    #[test]
    fn this_process_is_alive_and_a_recycled_pid_is_not() {
        let pid = std::process::id();
        let ticks = crate::util::proc::start_ticks(pid as i32).unwrap();
        let mut r = Record {
            owner_pid: pid,
            owner_start_ticks: ticks,
            ..Default::default()
        };
        assert!(r.owner_alive());
        r.owner_start_ticks = ticks + 1;
        assert!(!r.owner_alive());
    }
}
