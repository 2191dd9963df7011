//! History across results folders: `perflab history [DIR...]`.
//!
//! Why: a single results folder answers "how fast is this commit"; a team wants to see the line
//! over many commits, and to find the commit where it stepped down. Each results folder already
//! holds everything needed — its manifest names the versions (and commits) and the machine, its
//! runs the figures, its `compare.json` the verdicts — so history only gathers them: one point
//! per case, version and folder, in time order.
//!
//! Figures from different machines are not comparable, so every point carries a machine id (a
//! hash of the hardware and kernel facts in the fingerprint, not of the load or boot). The
//! newest point's machine is the reference; points from other machines are flagged in the
//! table and drawn as their own line in the trend charts, never joined to the reference line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report::charts::{self, TrendChartData, TrendPoint};
use crate::report::export::CompareReport;
use crate::stats::Verdict;
use crate::store::Store;
use crate::version::VersionKind;
use crate::{Error, Result};

/// One case and version of one results folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// The results folder.
    pub folder: PathBuf,
    /// When it started (Unix seconds).
    pub started_unix_s: f64,
    /// Case id.
    pub case: String,
    /// Version label.
    pub version: String,
    /// The commit, for `git:` versions.
    pub commit: Option<String>,
    /// Short id of the machine (see [`machine_id`]).
    pub machine: String,
    /// The machine in words (CPU, cores, kernel, driver).
    pub machine_description: String,
    /// Measured on another machine than the newest point: not comparable with the others.
    pub other_machine: bool,
    /// Runs combined.
    pub runs: usize,
    /// Mean requests per second.
    pub rps: f64,
    /// Its coefficient of variation.
    pub rps_cv: f64,
    /// Mean of the runs' p99 latency, when measured.
    pub latency_p99_ms: Option<f64>,
    /// The primary metric's verdict of this version against the folder's baseline, if the
    /// folder holds a comparison.
    pub verdict: Option<Verdict>,
}

/// What [`collect`] found.
#[derive(Debug, Default)]
pub struct History {
    /// Points, oldest first.
    pub points: Vec<HistoryPoint>,
    /// Folders that could not be read, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// A short, stable id of the machine a fingerprint describes: the first 10 hex digits of the
/// sha256 of the hardware and kernel facts of every host role and the driver name (load,
/// addresses and boot ids left out), plus those facts in words.
pub fn machine_id(fp: Option<&crate::fingerprint::Fingerprint>) -> (String, String) {
    use serde_json::json;
    let mut facts = serde_json::Map::new();
    let mut words = Vec::new();
    for (role, h) in fp.map(|f| &f.hosts).into_iter().flatten() {
        // The same canonical JSON as fingerprints have always been hashed by (absent = null).
        let pick = json!({
            "cpu_model": h.cpu_model,
            "cores": h.cores,
            "cpus_online": h.cpus_online,
            "sockets": h.sockets,
            "smt": h.smt,
            "kernel": h.kernel,
            "virtualization": h.container.as_ref().and_then(|c| c.virtualization.clone()),
        });
        let desc = format!(
            "{role}: {} × {}, kernel {}",
            h.cpu_model.as_deref().unwrap_or("?"),
            h.cpus_online.map_or("null".into(), |n| n.to_string()),
            h.kernel.as_deref().unwrap_or("?")
        );
        if !words.contains(&desc) {
            words.push(desc);
        }
        facts.insert(role.clone(), pick);
    }
    let driver = fp
        .and_then(|f| f.driver.get("driver").cloned())
        .unwrap_or_default();
    words.push(format!("driver {}", driver.as_str().unwrap_or("?")));
    facts.insert("driver".into(), driver);
    let canonical = serde_json::Value::Object(facts).to_string();
    let id = crate::util::hash::sha256_hex(canonical.as_bytes())[..10].to_string();
    (id, words.join("; "))
}

/// The results folders in `path`: `path` itself if it is one, else the folders directly inside
/// it and inside its `results/` (the layout of the `perflab-history` branch, docs/ci.md). The
/// `latest` link is not a folder of its own.
fn folders_in(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a folder: give results folders or folders that hold them (e.g. output)",
            path.display()
        )));
    }
    if Store::open(path).is_ok() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for dir in [path.to_path_buf(), path.join("results")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if crate::store::is_results_folder(&p) && Store::open(&p).is_ok() {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// Gathers every case and version of every results folder under `paths`, oldest first, and
/// flags points measured on another machine than the newest one.
pub fn collect(paths: &[PathBuf]) -> Result<History> {
    let mut folders = Vec::new();
    for p in paths {
        folders.extend(folders_in(p)?);
    }
    folders.sort();
    folders.dedup();
    let mut h = History::default();
    for f in folders {
        match points_of(&f) {
            Ok(p) => h.points.extend(p),
            Err(e) => h.skipped.push((f, format!("{e:#}"))),
        }
    }
    h.points.sort_by(|a, b| {
        a.started_unix_s
            .total_cmp(&b.started_unix_s)
            .then_with(|| a.case.cmp(&b.case))
    });
    if let Some(reference) = h.points.last().map(|p| p.machine.clone()) {
        for p in &mut h.points {
            p.other_machine = p.machine != reference;
        }
    }
    Ok(h)
}

/// The points of one results folder.
fn points_of(folder: &Path) -> Result<Vec<HistoryPoint>> {
    let store = Store::open(folder)?;
    let manifest = store.manifest()?;
    let runs = store.load_runs()?;
    let (machine, machine_description) = machine_id(manifest.fingerprint.as_ref());
    let compare: Option<CompareReport> = std::fs::read(folder.join("compare.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let verdict = |case: &str, version: &str| {
        compare.as_ref().and_then(|c| {
            c.cases
                .iter()
                .find(|cc| cc.case == case && cc.candidate == version)
                .and_then(|cc| cc.metrics.iter().find(|m| m.primary))
                .map(|m| m.verdict)
        })
    };
    let commit = |label: &str| {
        manifest
            .version_specs
            .iter()
            .find(|v| v.label == label)
            .and_then(|v| match &v.kind {
                VersionKind::Git { commit, .. } => Some(commit.clone()),
                _ => None,
            })
    };
    Ok(crate::report::combined(&store, &runs)
        .into_iter()
        .map(|r| HistoryPoint {
            folder: folder.to_path_buf(),
            started_unix_s: manifest.started_unix_s,
            commit: commit(&r.version),
            verdict: verdict(&r.case, &r.version),
            machine: machine.clone(),
            machine_description: machine_description.clone(),
            other_machine: false,
            runs: r.runs,
            rps: r.rps.mean,
            rps_cv: r.rps.cv,
            latency_p99_ms: r.latency_p99_ms.as_ref().map(|s| s.mean),
            case: r.case,
            version: r.version,
        })
        .collect())
}

/// A point's short label: the commit's first 10 digits, else the version label.
pub fn short_label(p: &HistoryPoint) -> String {
    match &p.commit {
        Some(c) => c.chars().take(10).collect(),
        None => p.version.clone(),
    }
}

/// The plain-text table `perflab history` prints.
pub fn table(h: &History) -> String {
    let mut t = format!(
        "{:<15} {:<28} {:<16} {:<10} {:<10} {:>3} {:>11} {:>6} {:>9} {:<12} {}\n",
        "started",
        "case",
        "version",
        "commit",
        "machine",
        "n",
        "req/s",
        "cv%",
        "p99 ms*",
        "verdict",
        "note"
    );
    for p in &h.points {
        t.push_str(&format!(
            "{:<15} {:<28} {:<16} {:<10} {:<10} {:>3} {:>11.0} {:>6.1} {:>9} {:<12} {}\n",
            crate::util::time::timestamp(p.started_unix_s),
            p.case,
            p.version,
            p.commit
                .as_deref()
                .map(|c| c.chars().take(10).collect())
                .unwrap_or_else(|| "-".to_string()),
            p.machine,
            p.runs,
            p.rps,
            100.0 * p.rps_cv,
            p.latency_p99_ms
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "-".into()),
            p.verdict.map(|v| v.to_string()).unwrap_or_default(),
            if p.other_machine {
                "other machine: not comparable"
            } else {
                ""
            }
        ));
    }
    t.push_str("* mean over runs of each run's own p99\n");
    for (f, why) in &h.skipped {
        t.push_str(&format!("skipped {}: {why}\n", f.display()));
    }
    t
}

/// The trend charts: one per case (requests per second), one line per machine, the newest
/// point's machine first.
pub fn trend_charts(h: &History) -> Vec<TrendChartData> {
    let mut machines: Vec<String> = Vec::new();
    for p in h.points.iter().rev() {
        if !machines.contains(&p.machine) {
            machines.push(p.machine.clone());
        }
    }
    let mut cases: Vec<&str> = Vec::new();
    for p in &h.points {
        if !cases.contains(&p.case.as_str()) {
            cases.push(&p.case);
        }
    }
    cases
        .into_iter()
        .map(|case| TrendChartData {
            title: format!("{case}: requests/s over stored results"),
            case: case.to_string(),
            metric_label: "req/s".into(),
            machines: machines.clone(),
            points: h
                .points
                .iter()
                .filter(|p| p.case == case)
                .map(|p| TrendPoint {
                    label: short_label(p),
                    value: p.rps,
                    machine: machines.iter().position(|m| *m == p.machine).unwrap_or(0),
                    slower: p.verdict == Some(Verdict::Slower),
                })
                .collect(),
        })
        .collect()
}

/// Writes `history.json`, the trend charts (`charts/trend-*.svg` with their data) and
/// `report.html` into `out`; returns the page's path.
pub fn write(h: &History, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let json = serde_json::to_vec_pretty(&h.points).map_err(|e| Error::Lab(e.to_string()))?;
    let path = out.join("history.json");
    crate::util::fs::atomic_write(&path, &json).map_err(|e| Error::io(&path, e))?;
    let dir = out.join("charts");
    let mut svgs = Vec::new();
    for chart in trend_charts(h) {
        let stem = charts::Chart::file_stem(&chart);
        let (svg, _) = charts::write_chart_with_data(&chart, &dir, &stem)?;
        let text = std::fs::read_to_string(&svg).map_err(|e| Error::io(&svg, e))?;
        svgs.push((format!("{stem}.svg"), text));
    }
    let page = out.join(crate::report::export::html::FILE_NAME);
    let html = crate::report::export::html::render_history(h, svgs);
    crate::util::fs::atomic_write(&page, html.as_bytes()).map_err(|e| Error::io(&page, e))?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_id_ignores_load_and_boot_but_not_hardware() {
        let fp = |cpu: &str, load: &str, boot: &str| {
            serde_json::json!({
                "driver": {"driver": "local"},
                "hosts": {"gateway": {"cpu_model": cpu, "cores": 2, "cpus_online": 2,
                    "kernel": "6.1", "load_before": load, "boot_id": boot}}
            })
        };
        let typed = |v: serde_json::Value| -> crate::fingerprint::Fingerprint {
            serde_json::from_value(v).unwrap()
        };
        let (a, words) = machine_id(Some(&typed(fp("EPYC", "0.1", "x"))));
        let (b, _) = machine_id(Some(&typed(fp("EPYC", "3.0", "y"))));
        let (c, _) = machine_id(Some(&typed(fp("Xeon", "0.1", "x"))));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 10);
        assert_eq!(words, "gateway: EPYC × 2, kernel 6.1; driver local");
    }
}
