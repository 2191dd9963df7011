//! Executes a plan of runs: the engine behind `perflab suite`, `compare` and `reproduce`.
//!
//! For each planned run: make sure the case's upstream is up, start a fresh gateway for the
//! version, warm it up, pass the cool-down gate, measure, write everything to the store at once,
//! stop the gateway. Versions are interleaved (A B A B …) by the plan. On Ctrl-C the current run
//! is abandoned, finished runs stay on disk, and the lab is torn down.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::driver::DriverOptions;
use crate::result::RunRecord;
use crate::session::{CooldownOptions, Session, run_record};
use crate::store::{Manifest, Store};
use crate::suite::{Case, PlannedRun, interleave};
use crate::util::time::now_unix;
use crate::version::Version;
use crate::{Error, Result};

pub use crate::suite::Overrides;

/// Everything an execution needs.
pub struct RunRequest {
    /// `suite`, `compare` or `reproduce`.
    pub kind: crate::manifest::InvocationKind,
    /// Suite name.
    pub suite: String,
    /// Cases, overrides applied.
    pub cases: Vec<Case>,
    /// Versions, baseline first.
    pub versions: Vec<Version>,
    /// Driver name and options.
    pub driver: crate::driver::DriverKind,
    /// Driver options.
    pub driver_options: DriverOptions,
    /// Results root (`output/`): each execution makes its own folder inside.
    pub output: PathBuf,
    /// The exact results folder to use instead (`--output-dir`; must be new or empty).
    pub output_dir: Option<PathBuf>,
    /// Pin roles to CPUs.
    pub pin_cpus: bool,
    /// Cool-down gate.
    pub cooldown: CooldownOptions,
    /// The command line, for the manifest.
    pub command: Vec<String>,
    /// Resolved options, for the manifest.
    pub options: crate::manifest::ManifestOptions,
    /// Show a progress bar (else log lines).
    pub progress: crate::progress::Mode,
    /// Fixed first port (see [`Session::port_base`]).
    pub port_base: Option<u16>,
    /// Profiler settings for profiled runs.
    pub profiler: crate::role::profiler::ProfilerOptions,
    /// Profile every run (flame graphs); such runs are flagged `profiled`.
    pub profile: bool,
    /// A gateway that died during a run does not make the execution fail
    /// ([`Error::GatewayDied`]); the run is flagged and left out of the statistics either way.
    pub keep_going: bool,
}

/// What an execution produced.
pub struct Execution {
    /// The results folder.
    pub store: Store,
    /// Finished runs, in order.
    pub runs: Vec<RunRecord>,
    /// How it ended: `None` when complete, else the error that stopped it.
    pub error: Option<Error>,
}

/// Runs the plan. Returns the finished runs even when a run failed or the user interrupted;
/// the error is in [`Execution::error`].
pub fn execute(req: RunRequest) -> Result<Execution> {
    // Cases may come from a stored manifest (reproduce) or a library user: check their numbers
    // before anything is created.
    for c in &req.cases {
        c.load
            .validate()
            .map_err(|e| Error::Usage(format!("case {}: {e}", c.id)))?;
        if !(1..=crate::suite::MAX_REPEATS).contains(&c.repeats) {
            return Err(Error::Usage(format!(
                "case {}: repeats must be from 1 to {} (got {})",
                c.id,
                crate::suite::MAX_REPEATS,
                c.repeats
            )));
        }
    }
    let plan = interleave(&req.cases, req.versions.len(), req.profile);
    run_lab(&req, plan.len(), |session, store, runs| {
        let progress =
            crate::progress::Progress::new(req.progress, &plan, &req.cases, &req.versions);
        let mut current_case: Option<usize> = None;
        let mut kept: Option<(usize, usize)> = None;
        let panic_at = debug_panic_at();
        for (seq, planned) in plan.iter().enumerate() {
            crate::signals::check()?;
            if panic_at == Some(seq + 1) {
                panic!("PERFLAB_DEBUG_PANIC_AT_RUN={}: a deliberate panic", seq + 1);
            }
            let keep_after = keeps_gateway(&req.cases[planned.case], planned, plan.get(seq + 1));
            let rec = run_one(
                session,
                &req,
                store,
                &req.cases[planned.case],
                planned,
                seq as u32 + 1,
                &mut current_case,
                (&mut kept, keep_after),
                &progress,
            )?;
            progress.finished(&rec);
            runs.push(rec);
        }
        progress.done();
        Ok(())
    })
}

/// The frame every execution shares: the results folder and its manifest, the session with its
/// driver and hosts, the fingerprint, and — whatever `body` returns — the teardown and the final
/// manifest status. `body` measures, writing each finished run to the store and to `runs`.
pub fn run_lab(
    req: &RunRequest,
    runs_planned: usize,
    body: impl FnOnce(&mut Session, &Store, &mut Vec<RunRecord>) -> Result<()>,
) -> Result<Execution> {
    crate::signals::install(|| {
        crate::host::process_group::kill_all();
        // The runner will not get to write its final status: the folder must not stay
        // `running`.
        crate::store::mark_active("interrupted");
    });
    let store = match &req.output_dir {
        Some(dir) => Store::create_exact(dir)?,
        None => Store::create(&req.output, &req.suite)?,
    };
    crate::store::set_active(Some(store.root()));
    let mut manifest = Manifest {
        schema: crate::store::MANIFEST_SCHEMA.into(),
        perflab_version: env!("CARGO_PKG_VERSION").into(),
        kind: req.kind,
        command: req.command.clone(),
        suite: req.suite.clone(),
        cases: req.cases.iter().map(|c| c.id.clone()).collect(),
        versions: req.versions.iter().map(|v| v.label.clone()).collect(),
        driver: req.driver,
        driver_info: serde_json::Value::Null,
        options: req.options.clone(),
        runs_planned,
        started_unix_s: now_unix(),
        finished_unix_s: None,
        status: "running".into(),
        fingerprint: None,
        case_specs: req.cases.clone(),
        version_specs: req.versions.clone(),
        driver_options: req.driver_options.clone(),
        gateway_deaths: Vec::new(),
    };
    store.write_manifest(&manifest)?;
    let mut session = Session::new();
    session.pin_cpus = req.pin_cpus;
    session.cooldown = req.cooldown;
    session.port_base = req.port_base;
    let mut runs = Vec::new();
    let result = (|| -> Result<()> {
        session.use_driver(req.driver, &req.driver_options)?;
        session.setup()?;
        manifest.driver_info = session.driver_info();
        manifest.fingerprint = Some(crate::fingerprint::collect(&mut session, &req.versions));
        store.write_manifest(&manifest)?;
        body(&mut session, &store, &mut runs)?;
        // A signal that came after the last run's load (while its files were written or the
        // gateway stopped) still ends the execution as interrupted.
        Ok(crate::signals::check()?)
    })();
    if let Some(fp) = &mut manifest.fingerprint {
        crate::fingerprint::finish(fp, &mut session, &runs);
    }
    // Hosts made during the runs (containers of version images) are known only now.
    let info = session.driver_info();
    if !info.is_null() {
        manifest.driver_info = info;
    }
    let teardown = session.teardown(false);
    manifest.finished_unix_s = Some(now_unix());
    manifest.status = match &result {
        Ok(()) => "complete".into(),
        Err(Error::Interrupted) => "interrupted".into(),
        Err(e) => format!("failed: {e}"),
    };
    // Runs whose gateway died are findings: listed in the manifest, warned about, and (unless
    // --keep-going) the reason for a non-zero exit.
    for rec in runs.iter().filter(|r| r.flags.gateway_died) {
        let line = format!(
            "{}: {}",
            store
                .run_dir(rec.sequence, &rec.case, &rec.version, rec.repeat)
                .strip_prefix(store.root())
                .unwrap_or(Path::new(""))
                .display(),
            rec.notes.first().cloned().unwrap_or_default()
        );
        tracing::warn!("{line}");
        manifest.gateway_deaths.push(line);
    }
    store.write_manifest(&manifest)?;
    crate::store::set_active(None);
    let died = (!manifest.gateway_deaths.is_empty() && !req.keep_going).then(|| {
        Error::GatewayDied(format!(
            "the gateway died during {} run(s); they are kept (with the gateway's error log), \
             flagged gateway_died and left out of the statistics:\n  {}\n(--keep-going exits 0 \
             after such runs)",
            manifest.gateway_deaths.len(),
            manifest.gateway_deaths.join("\n  ")
        ))
    });
    let error = match (result, teardown) {
        (Err(e), _) => Some(e),
        (Ok(()), Err(e)) => Some(e),
        (Ok(()), Ok(())) => died,
    };
    Ok(Execution { store, runs, error })
}

/// A gateway instance's error logs and configuration files, as store-relative names and bytes
/// (`gateway-error.log`, `gateway-<process>-error.log` for its other processes such as Kong's
/// control plane, `config/gateway-<file>`); what cannot be read is kept empty.
pub fn gateway_files(gw: &crate::role::gateway::RunningGateway) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "gateway-error.log".to_string(),
        gw.host.read_file(&gw.error_log).unwrap_or_default(),
    )];
    for (name, log) in &gw.other_logs {
        files.push((
            format!("gateway-{name}-error.log"),
            gw.host.read_file(log).unwrap_or_default(),
        ));
    }
    for f in &gw.config_files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((
            format!("config/gateway-{name}"),
            gw.host.read_file(f).unwrap_or_default(),
        ));
    }
    files
}

/// `PERFLAB_DEBUG_PANIC_AT_RUN=N` panics before run N: how the tests check that a panic still
/// tears the lab down and marks the results folder `failed` (docs/cli.md, exit codes).
fn debug_panic_at() -> Option<usize> {
    std::env::var("PERFLAB_DEBUG_PANIC_AT_RUN")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The label an adapter should check: compare labels repeated versions apart (`current#2`,
/// `3.9.1#aa` for calibration), but the adapter must see what the user asked for.
pub fn adapter_label(label: &str) -> &str {
    match label.rsplit_once('#') {
        Some((base, n))
            if n == "aa" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            base
        }
        _ => label,
    }
}

/// Whether the gateway of `planned` stays up for the `next` run: the next run is the same case
/// and version and the case's gateway starts once per case
/// ([`crate::role::gateway::GatewayAdapter::keeps_for_repeats`]; Kong, as Kong's framework did).
fn keeps_gateway(
    case: &crate::suite::Case,
    planned: &PlannedRun,
    next: Option<&PlannedRun>,
) -> bool {
    next.is_some_and(|n| n.case == planned.case && n.version == planned.version)
        && case
            .gateway
            .adapter()
            .is_some_and(|a| a.keeps_for_repeats(&case.gateway_settings))
}

/// Runs `case` (the plan's case `planned.case`, possibly with other load options, as a
/// capacity search's steps have) once and writes it to the store. `kept`: the case and version
/// whose gateway the previous run left running; `keep_after`: whether this run leaves it running
/// for the next ([`keeps_gateway`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_one(
    session: &mut Session,
    req: &RunRequest,
    store: &Store,
    case: &Case,
    planned: &PlannedRun,
    sequence: u32,
    current_case: &mut Option<usize>,
    (kept, keep_after): (&mut Option<(usize, usize)>, bool),
    progress: &crate::progress::Progress,
) -> Result<RunRecord> {
    let version = &req.versions[planned.version];
    progress.starting(planned, case, version);
    let baseline = case.gateway == crate::role::gateway::GatewayKind::Baseline;
    if *current_case != Some(planned.case) {
        session.set_baseline_mode(baseline);
        session.start_upstream_with(&case.upstream)?;
        *current_case = Some(planned.case);
    }
    let started_unix_s = now_unix();
    let run_dir = store.run_dir(sequence, &case.id, &version.label, planned.repeat);
    let reuse = kept.take() == Some((planned.case, planned.version))
        && session.gateway("default").is_some();
    let version_detail = if baseline {
        "upstream nginx".to_string()
    } else if reuse {
        session
            .gateway("default")
            .map(|g| g.version_detail.clone())
            .unwrap_or_default()
    } else {
        let dir = crate::role::gateway::prepare_version(version, case.gateway)?;
        let started = session.start_gateway_in(
            case.gateway,
            adapter_label(&version.label),
            dir,
            &case.entities,
            &case.gateway_settings,
            "default",
            case.workers,
        );
        if let Err(e) = started {
            return Err(keep_refused_config(session, store, &run_dir, e));
        }
        session
            .gateway("default")
            .map(|g| g.version_detail.clone())
            .unwrap_or_default()
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut actions = Vec::new();
    let measured = (|| -> Result<crate::session::Measurement> {
        if case.load.warmup > 0.0 {
            let raw = session.warm_up(&case.load, case.load.warmup)?;
            files.push(("warmup.txt".into(), raw.into_bytes()));
        }
        if planned.profile {
            session.start_profiler(req.profiler.clone())?;
        }
        if case.during.is_empty() {
            session.start_load(&case.load)?;
            return session.wait_result(Duration::from_secs(60));
        }
        // Actions during load: checked before the load starts; the load is waited for even
        // when the actions stop early (an interrupt), so wrk never outlives the run.
        session.check_during(&case.during, None)?;
        session.start_load_recording(&case.load)?;
        let done = session.run_during(&case.during, None);
        let m = session.wait_result(Duration::from_secs(60))?;
        actions = done?;
        Ok(m)
    })();
    // How the measured machine was prepared (cool-down gate, CPU governor).
    if let Some(prep) = measured.as_ref().ok().and_then(|m| m.machine_prep.as_ref()) {
        files.push((
            "machine-prep.json".into(),
            serde_json::to_vec_pretty(prep).unwrap_or_default(),
        ));
    }
    // Keep the gateway's logs and configs whether the run succeeded or not.
    if let Some(gw) = session.gateway("default") {
        files.extend(gateway_files(gw));
    }
    if let Some(up) = session.upstream() {
        files.push((
            "upstream-error.log".into(),
            up.host.read_file(&up.error_log()).unwrap_or_default(),
        ));
        files.push((
            "config/upstream-nginx.conf".into(),
            up.config_text.clone().into_bytes(),
        ));
    }
    if let Some(script) = &case.load.script {
        files.push(("load.lua".into(), script.clone().into_bytes()));
    }
    let keep = keep_after && measured.as_ref().is_ok_and(|m| !m.flags.gateway_died);
    let stop = if baseline || keep {
        Ok(())
    } else {
        session.stop_gateway()
    };
    if keep {
        *kept = Some((planned.case, planned.version));
    }
    let m = match measured {
        Ok(m) => m,
        Err(e) => {
            for (name, data) in &files {
                let _ = store.write(
                    run_dir
                        .join(name)
                        .strip_prefix(store.root())
                        .unwrap_or(&run_dir),
                    data,
                );
            }
            return Err(e);
        }
    };
    stop?;
    match &m.outcome.histogram {
        // Open-loop load: the generator's JSON report and the merged histogram.
        Some(h) => {
            files.push((
                crate::role::load::open::REPORT_FILE.into(),
                m.outcome.raw.clone().into_bytes(),
            ));
            files.push((crate::role::load::open::HISTOGRAM_FILE.into(), h.clone()));
        }
        None => files.push(("wrk.txt".into(), m.outcome.raw.clone().into_bytes())),
    }
    let mut rec = run_record(
        &m,
        &req.suite,
        &case.id,
        &case.gateway.to_string(),
        &version.label,
        &version_detail,
        planned.repeat,
        sequence,
        started_unix_s,
        session.driver_name(),
    );
    rec.version_detail = version.detail(&version_detail);
    if !case.during.is_empty() {
        rec.during = Some(during_summary(actions, &m, case.load.duration, &mut files));
        for a in rec.during.iter().flat_map(|d| &d.actions).filter(|a| !a.ok) {
            rec.notes.push(format!(
                "{} at {:.1} s failed: {}",
                a.action,
                a.started_s,
                a.error.as_deref().unwrap_or("")
            ));
        }
    }
    if let Some(p) = &m.profile {
        let title = format!("{} · {} · {}", case.id, version.label, version_detail);
        crate::flamegraph::write_profile(&run_dir, "profile", &p.folded, &title)?;
        rec.profile = Some(serde_json::json!({
            "tool": p.mode.tool(), "mode": p.mode, "event": p.event, "frequency_hz": p.frequency,
            "samples": p.samples, "pids": p.pids, "folded": "profile.folded", "svg": "profile.svg",
        }));
    }
    store.write_run(&run_dir, &rec, &files)?;
    Ok(rec)
}

/// The actions' records with the traffic around them; scrapes' answers become files of the
/// run (`during/scrape-001.txt`, …).
fn during_summary(
    actions: Vec<(crate::during::ActionRecord, Option<Vec<u8>>)>,
    m: &crate::session::Measurement,
    duration_s: f64,
    files: &mut Vec<(String, Vec<u8>)>,
) -> crate::during::DuringSummary {
    let mut records = Vec::new();
    let mut scrapes = 0;
    for (mut rec, body) in actions {
        if let Some(body) = body {
            scrapes += 1;
            let name = format!("during/scrape-{scrapes:03}.txt");
            rec.saved = Some(name.clone());
            files.push((name, body));
        }
        records.push(rec);
    }
    match &m.outcome.series {
        Some(series) => crate::during::analyse(records, series, duration_s),
        None => crate::during::DuringSummary {
            actions: records,
            ..Default::default()
        },
    }
}

/// A gateway that refused its configuration: copy the refused file (and the gateway's message)
/// into the run's folder, since the lab's copy goes with the teardown, and point the error there.
fn keep_refused_config(session: &mut Session, store: &Store, run_dir: &Path, e: Error) -> Error {
    let Error::ConfigRefused {
        program,
        config,
        message,
    } = e
    else {
        return e;
    };
    let host = session.host(crate::driver::Role::Gateway, "default");
    let text = host.and_then(|h| Ok(h.read_file(Path::new(&config))?));
    let name = Path::new(&config)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let rel = run_dir
        .strip_prefix(store.root())
        .unwrap_or(run_dir)
        .join(format!("refused-{name}"));
    let kept = text
        .ok()
        .and_then(|t| store.write(&rel, &t).ok())
        .map(|p| p.display().to_string());
    let _ = store.write(
        rel.with_file_name("refused-message.txt"),
        message.as_bytes(),
    );
    Error::ConfigRefused {
        program,
        config: match kept {
            Some(p) => format!("{config} (kept as {p})"),
            None => config,
        },
        message,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn adapters_see_the_label_without_the_repeat_suffix() {
        assert_eq!(super::adapter_label("current#2"), "current");
        assert_eq!(super::adapter_label("3.9.1#aa"), "3.9.1");
        assert_eq!(super::adapter_label("git:main#x"), "git:main#x");
        assert_eq!(super::adapter_label("current"), "current");
    }
}
