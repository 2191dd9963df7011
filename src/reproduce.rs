//! `perflab reproduce` and noise calibration: run recorded cases again and compare the new
//! figures with the recorded ones using the same statistics as `compare`.

use std::fmt::Write as _;
use std::path::Path;

use crate::result::RunRecord;
use crate::runner::{Execution, RunRequest};
use crate::session::CooldownOptions;
use crate::store::{Manifest, Store};
use crate::{Error, Result, stats};

/// Re-runs the cases of a stored invocation (or one case of it) with the same options, versions
/// and driver, into a new results folder under `output`.
pub fn reproduce(
    old: &Store,
    manifest: &Manifest,
    old_runs: &[RunRecord],
    only_case: Option<&str>,
    output: &Path,
    repeat: Option<u32>,
) -> Result<Execution> {
    if manifest.case_specs.is_empty() || manifest.version_specs.is_empty() {
        return Err(Error::Usage(format!(
            "{} was written by an older perflab without the case definitions; it cannot be reproduced",
            old.root().display()
        )));
    }
    let mut cases = manifest.case_specs.clone();
    if let Some(c) = only_case {
        cases.retain(|x| x.id == c);
    }
    let recorded_repeats = |id: &str| {
        old_runs
            .iter()
            .filter(|r| r.case == id)
            .map(|r| r.repeat)
            .max()
            .unwrap_or(1)
    };
    for c in &mut cases {
        c.repeats = repeat.unwrap_or_else(|| recorded_repeats(&c.id));
    }
    let recorded = &manifest.options;
    let req = RunRequest {
        kind: crate::manifest::InvocationKind::Reproduce,
        suite: manifest.suite.clone(),
        cases,
        versions: manifest.version_specs.clone(),
        driver: manifest.driver,
        driver_options: manifest.driver_options.clone(),
        output: output.to_path_buf(),
        output_dir: None,
        pin_cpus: recorded.pin_cpus.unwrap_or(true),
        cooldown: CooldownOptions {
            // A hand-edited manifest must not panic here: bounded as --cooldown-max is.
            max_wait: std::time::Duration::from_secs_f64(
                recorded
                    .cooldown_max_s
                    .filter(|s| s.is_finite())
                    .unwrap_or(10.0)
                    .clamp(0.0, 3600.0),
            ),
            noisy_background_pct: recorded.noisy_background_pct.unwrap_or(10.0),
            ..Default::default()
        },
        command: std::env::args().collect(),
        options: crate::manifest::ManifestOptions {
            reproducing: Some(old.root().to_path_buf()),
            recorded_options: Some(Box::new(recorded.clone())),
            ..Default::default()
        },
        progress: crate::progress::Mode::Auto,
        profile: false,
        keep_going: false,
        port_base: None,
        profiler: Default::default(),
    };
    crate::runner::execute(req)
}

/// Compares recorded runs (baseline) with new runs (candidate), per case and version. Flagged
/// runs (noisy, errors, saturated load) are left out of both sides unless `include_flagged`, as
/// in `compare`; profiled runs always are.
pub fn report(
    old_runs: &[RunRecord],
    exec: &Execution,
    noise_band: f64,
    include_flagged: bool,
    recorded_label: &dyn Fn(&str) -> String,
) -> Result<String> {
    let usable = |r: &RunRecord| {
        !r.flags.profiled && !r.flags.gateway_died && (include_flagged || !r.flags.any())
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<28} {:<16} {:<22} {:>10} {:>10} {:>8} {:>19} {:<10}",
        "case", "version", "metric", "recorded", "now", "ratio", "95% CI", "verdict"
    );
    let mut keys: Vec<(String, String)> = exec
        .runs
        .iter()
        .map(|r| (r.case.clone(), r.version.clone()))
        .collect();
    keys.dedup();
    for (case, version) in keys {
        let a: Vec<&RunRecord> = old_runs
            .iter()
            .filter(|r| r.case == case && r.version == version && usable(r))
            .collect();
        let b: Vec<&RunRecord> = exec
            .runs
            .iter()
            .filter(|r| r.case == case && r.version == version && usable(r))
            .collect();
        if a.is_empty() || b.is_empty() {
            let _ = writeln!(
                t,
                "{case:<28} {:<16} no runs to compare on the {} side: all flagged (noisy, \
                 errors or saturated load); --include-flagged keeps them",
                recorded_label(&version)
                    .chars()
                    .take(16)
                    .collect::<String>(),
                if a.is_empty() { "recorded" } else { "new" }
            );
            continue;
        }
        for c in stats::compare_runs(&a, &b, noise_band, 1, "rps") {
            let _ = writeln!(
                t,
                "{:<28} {:<16} {:<22} {:>10.2} {:>10.2} {:>8.4} {:>19} {:<10}",
                case,
                recorded_label(&version)
                    .chars()
                    .take(16)
                    .collect::<String>(),
                c.metric,
                c.baseline.mean,
                c.candidate.mean,
                c.ratio,
                format!("[{:.4}, {:.4}]", c.ci_low, c.ci_high),
                c.verdict.to_string()
            );
        }
    }
    Ok(t)
}

/// Compares the recorded invocation's environment with the new one's
/// ([`crate::fingerprint::differences`]): a warning listing every difference, or a line saying
/// the fingerprints match. A change of CPU, kernel, governor or a tool's binary can explain a
/// changed figure by itself, so it is shown next to the verdicts.
pub fn environment_report(recorded: &Manifest, now: &Manifest) -> String {
    let (Some(recorded), Some(now)) = (&recorded.fingerprint, &now.fingerprint) else {
        return "warning: environment not compared: one of the two results has no fingerprint\n"
            .into();
    };
    let diffs = crate::fingerprint::differences(recorded, now);
    if diffs.is_empty() {
        return "environment: same as recorded (CPU, kernel, governor, THP, container, tools' sha256, perflab, gateway versions)\n".into();
    }
    let mut t = format!(
        "warning: the recorded result ran in a different environment ({} difference{}); figures may differ for that reason alone:\n",
        diffs.len(),
        if diffs.len() == 1 { "" } else { "s" }
    );
    for d in diffs {
        let _ = writeln!(t, "  - {d}");
    }
    t
}
