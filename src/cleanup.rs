//! Cleaning up after labs whose perflab process died, from their [journals](crate::journal).
//!
//! Why a module of its own: the code that undoes a lab must not depend on the process that
//! made it. `perflab teardown` calls [`clean_dead_labs`]; it stops local process groups with the
//! local driver's [`stop_local_groups`](crate::driver::local::stop_local_groups), which the
//! driver's orderly teardown uses for whatever its roles did not stop; a new lab reports dead
//! labs at its start ([`crate::journal::dead_labs_note`]).

use std::path::{Path, PathBuf};

use crate::journal::{self, Record};

/// The status a results folder left at `running` by a killed perflab gets.
pub const KILLED_STATUS: &str =
    "failed: killed (perflab ended without finishing; found by perflab teardown)";

/// What cleaning one dead lab did.
#[derive(Debug, Clone, Default)]
pub struct Cleaned {
    /// The lab's id.
    pub lab_id: String,
    /// Its driver.
    pub driver: String,
    /// Local process groups stopped.
    pub local_groups: usize,
    /// Process groups stopped on the lab's machines (terraform).
    pub remote_groups: usize,
    /// Folders removed (local and remote).
    pub dirs: usize,
    /// SSH connection masters ended.
    pub ssh_masters: usize,
    /// Docker objects removed.
    pub docker_objects: usize,
    /// The results folder left at `running`, now marked `failed: killed …`.
    pub results_marked: Option<PathBuf>,
    /// What could not be done (the journal is then kept for another try).
    pub problems: Vec<String>,
}

impl std::fmt::Display for Cleaned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: dead lab {}: stopped {} process group(s) here and {} on its machines, removed {} folder(s)",
            self.driver, self.lab_id, self.local_groups, self.remote_groups, self.dirs
        )?;
        if self.ssh_masters > 0 {
            write!(f, ", ended {} SSH connection(s)", self.ssh_masters)?;
        }
        if self.driver == "docker" {
            write!(f, ", removed {} Docker object(s)", self.docker_objects)?;
        }
        if let Some(d) = &self.results_marked {
            write!(f, "; results folder {} marked failed (killed)", d.display())?;
        }
        for p in &self.problems {
            write!(f, "\n  not done: {p}")?;
        }
        Ok(())
    }
}

/// Ends the SSH masters whose control sockets are in `dirs` (`ssh -S SOCKET -O exit`) and
/// removes the dirs; returns how many masters answered.
fn end_ssh_masters(dirs: &[PathBuf]) -> usize {
    let mut n = 0;
    for d in dirs {
        let sockets = std::fs::read_dir(d)
            .map(|it| {
                it.flatten()
                    .map(|e| e.path().join("master"))
                    .filter(|p| p.exists())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for s in sockets {
            let ok = std::process::Command::new("ssh")
                .arg("-S")
                .arg(&s)
                .args(["-O", "exit", "perflab-lab"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|st| st.success());
            n += usize::from(ok);
        }
        let _ = std::fs::remove_dir_all(d);
    }
    n
}

fn remove_dir(dir: &Path, c: &mut Cleaned) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => c.dirs += 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => c.problems.push(format!("removing {}: {e}", dir.display())),
    }
}

/// Undoes what a dead lab's journal lists.
pub fn clean(record: &Record) -> Cleaned {
    let mut c = Cleaned {
        lab_id: record.lab_id.clone(),
        driver: record.driver.clone(),
        ..Default::default()
    };
    c.local_groups = crate::driver::local::stop_local_groups(&record.local_groups);
    if let Some(d) = &record.results_dir
        && crate::store::mark_stale(d, KILLED_STATUS)
    {
        c.results_marked = Some(d.clone());
    }
    for d in &record.local_dirs {
        remove_dir(d, &mut c);
    }
    if let Some(tf) = &record.terraform {
        let opts = crate::driver::DriverOptions::from([
            ("provider".to_string(), tf.provider.clone()),
            ("lab".to_string(), tf.lab.clone()),
            ("state-dir".to_string(), tf.state_dir.display().to_string()),
            (
                "modules-dir".to_string(),
                tf.modules_dir.display().to_string(),
            ),
        ]);
        let cleaned = crate::driver::terraform::TerraformDriver::new(&opts, &record.lab_id)
            .and_then(|mut d| {
                d.attach()?;
                d.clean_dirs(&record.remote_dirs)
            });
        match cleaned {
            Ok(n) => {
                c.remote_groups = n;
                c.dirs += record.remote_dirs.len();
            }
            // Destroyed machines took the lab's processes and folders with them.
            Err(e) if !tf.state_dir.join("terraform.tfstate").is_file() => {
                tracing::debug!("terraform lab {}: {e}", tf.lab);
            }
            Err(e) => c.problems.push(format!("terraform lab {}: {e:#}", tf.lab)),
        }
    }
    c.ssh_masters = end_ssh_masters(&record.ssh_control_dirs);
    if record.driver == "docker" {
        match crate::driver::docker::remove_leftovers(
            record.docker_host.as_deref(),
            Some(&record.lab_id),
        ) {
            Ok(l) => c.docker_objects = l.len(),
            Err(e) => c.problems.push(format!("docker: {e:#}")),
        }
    }
    c
}

/// Cleans every lab whose perflab process is gone (only those of driver `only`, when given) and
/// removes their journals once nothing is left to do.
pub fn clean_dead_labs(only: Option<&str>) -> Vec<Cleaned> {
    let mut out = Vec::new();
    for (path, record) in journal::orphaned() {
        if only.is_some_and(|d| d != record.driver) {
            continue;
        }
        let c = clean(&record);
        if c.problems.is_empty() {
            let _ = std::fs::remove_file(&path);
        }
        out.push(c);
    }
    out
}
