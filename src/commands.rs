//! Command handlers: turn parsed flags into library calls and print the results.

use std::io::Read;

use anyhow::Context;
use perflab::error::{EXIT_MISSING_TOOL, EXIT_OK};
use perflab::progress::Mode;
use perflab::runner::{Execution, Overrides, RunRequest};
use perflab::session::CooldownOptions;
use perflab::suite::{Case, filter_tags, load_suite, override_gateway};
use perflab::version::Version;
use perflab::{Error, report};

use crate::cli::{Cli, Command, ImportCommand, RunArgs};

/// Runs a parsed command; returns the exit status.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Suite(a) => {
            let versions = vec![Version::parse(&a.gateway_version, &a.repo)?];
            let cases = select_cases(&a.suite, &a.run)?;
            let exec =
                perflab::runner::execute(request("suite", &a.suite, cases, versions, &a.run)?)?;
            finish_suite(exec)
        }
        Command::Compare(a) => crate::commands::compare(a),
        Command::Report(a) => {
            let store = perflab::store::Store::open(&a.dir)?;
            // A damaged manifest is an error, not a silently shorter report.
            if store.root().join("manifest.json").exists() {
                store.manifest()?;
            }
            let out = report::render_all(
                &store,
                &report::ReportOptions::from_flags(
                    &a.formats,
                    a.noise_band,
                    a.include_flagged,
                    a.seed,
                ),
            )?;
            print!("{out}");
            Ok(EXIT_OK)
        }
        Command::Reproduce(a) => reproduce(a),
        Command::Import(ImportCommand::Wrk { files }) => import_wrk(&files),
        Command::Doctor => {
            let (text, ok) = perflab::doctor::check();
            print!("{text}");
            Ok(if ok { EXIT_OK } else { EXIT_MISSING_TOOL })
        }
        Command::Teardown(a) => teardown(a),
        Command::Image(c) => image(c),
    }
}

fn select_cases(suite: &str, run: &RunArgs) -> perflab::Result<(String, Vec<Case>)> {
    let s = load_suite(suite)?;
    let mut cases = filter_tags(s.cases, &run.tags)?;
    if let Some(g) = &run.gateway {
        cases = override_gateway(cases, g)?;
    }
    let o = overrides(run);
    let cases = cases
        .into_iter()
        .map(|c| o.apply(c))
        .collect::<perflab::Result<Vec<_>>>()?;
    if cases.is_empty() {
        return Err(Error::Usage(format!(
            "suite {} has no case to run with these filters",
            s.name
        )));
    }
    Ok((s.name, cases))
}

fn overrides(run: &RunArgs) -> Overrides {
    Overrides {
        duration: run.duration,
        repeat: run.repeat,
        connections: run.connections,
        threads: run.threads,
        warmup: run.warmup,
    }
}

/// Builds the runner's request from flags (validating the driver name first).
pub fn request(
    kind: &str,
    _suite_arg: &str,
    (suite, cases): (String, Vec<Case>),
    versions: Vec<Version>,
    run: &RunArgs,
) -> perflab::Result<RunRequest> {
    if !perflab::driver::DRIVERS.contains(&run.driver.as_str()) {
        return Err(Error::Usage(format!(
            "unknown driver \"{}\": expected one of {}",
            run.driver,
            perflab::driver::DRIVERS.join(", ")
        )));
    }
    if run.driver != "docker"
        && let Some(v) = versions
            .iter()
            .find(|v| matches!(v.kind, perflab::version::VersionKind::Image { .. }))
    {
        return Err(Error::Usage(format!(
            "version {} needs the docker driver (add --driver docker); the {} driver runs the \
             programs installed on its hosts",
            v.label, run.driver
        )));
    }
    if run.cooldown_max < 0.0 || !(0.0..=100.0).contains(&run.noisy_pct) {
        return Err(Error::Usage(
            "--cooldown-max must be >= 0 and --noisy-pct between 0 and 100".into(),
        ));
    }
    let progress = if run.quiet {
        Mode::Quiet
    } else if run.plain {
        Mode::Lines
    } else {
        Mode::Auto
    };
    let options = serde_json::json!({
        "tags": run.tags, "gateway": run.gateway, "overrides": overrides(run), "pin_cpus": !run.no_pin,
        "cooldown_max_s": run.cooldown_max, "noisy_background_pct": run.noisy_pct, "driver_options": run.driver_opt,
    });
    Ok(RunRequest {
        kind: kind.into(),
        suite,
        cases,
        versions,
        driver: run.driver.clone(),
        driver_options: crate::cli::driver_options(&run.driver_opt)?,
        output: run.output.clone(),
        pin_cpus: !run.no_pin,
        cooldown: CooldownOptions {
            max_wait: std::time::Duration::from_secs_f64(run.cooldown_max),
            noisy_background_pct: run.noisy_pct,
            ..Default::default()
        },
        command: std::env::args().collect(),
        options,
        progress,
        profile: false,
        keep_going: run.keep_going,
        port_base: run.port_base,
        profiler: perflab::role::profiler::ProfilerOptions {
            call_graph: run.call_graph.parse().map_err(|_| {
                Error::Usage(format!(
                    "--call-graph must be fp or dwarf, not \"{}\"",
                    run.call_graph
                ))
            })?,
            frequency_hz: run.profile_hz.max(1),
            ..Default::default()
        },
    })
}

fn finish_suite(exec: Execution) -> anyhow::Result<i32> {
    let opts = report::ReportOptions::default();
    let text = report::render_all(&exec.store, &opts)?;
    print!("{text}");
    eprintln!("perflab: results in {}", exec.store.root().display());
    match exec.error {
        None => Ok(EXIT_OK),
        Some(e) => Err(e.into()),
    }
}

fn import_wrk(files: &[std::path::PathBuf]) -> anyhow::Result<i32> {
    let mut results = Vec::new();
    for f in files {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            s
        } else {
            std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?
        };
        let parsed = perflab::role::load::wrk_parse::parse(&text)
            .map_err(|e| Error::Load(format!("{}: {}", f.display(), e)))?;
        results.push(parsed);
    }
    let json = if results.len() == 1 {
        serde_json::to_string_pretty(&results[0])?
    } else {
        serde_json::to_string_pretty(&results)?
    };
    println!("{json}");
    Ok(EXIT_OK)
}

fn teardown(a: crate::cli::TeardownArgs) -> anyhow::Result<i32> {
    let only = a.driver.as_deref();
    if let Some(d) = only
        && !perflab::driver::DRIVERS.contains(&d)
    {
        return Err(Error::Usage(format!(
            "unknown driver \"{d}\": expected one of {}",
            perflab::driver::DRIVERS.join(", ")
        ))
        .into());
    }
    let n = perflab::version::clean_worktrees()?;
    println!(
        "git checkouts: removed {n} from {}",
        perflab::version::worktrees_dir().display()
    );
    if only.is_none() || only == Some("local") {
        let found = perflab::driver::local::find_leftovers(&std::env::temp_dir());
        let groups: usize = found.iter().map(|l| l.groups.len()).sum();
        perflab::driver::local::remove_leftovers(&found)?;
        println!(
            "local: removed {} leftover lab folder(s), stopped {groups} process group(s)",
            found.len()
        );
    }
    if only.is_none() || only == Some("docker") {
        // `--driver-opt lab=ID`: only that lab's objects (others may be running).
        let opts = crate::cli::driver_options(&a.driver_opt)?;
        match perflab::driver::docker::remove_leftovers(None, opts.get("lab").map(String::as_str)) {
            Ok(l) => println!("docker: removed {} labelled object(s)", l.len()),
            Err(e) if only.is_none() => println!("docker: skipped ({e})"),
            Err(e) => return Err(e.into()),
        }
    }
    if only == Some("terraform") {
        let mut d = perflab::driver::terraform::TerraformDriver::new(
            &crate::cli::driver_options(&a.driver_opt)?,
            "teardown",
        )?;
        perflab::driver::Driver::teardown(&mut d, a.full)?;
        println!(
            "terraform: {} ({})",
            if a.full {
                "destroyed"
            } else {
                "cleaned the hosts, kept the machines"
            },
            d.state_dir().display()
        );
    } else if only.is_none() {
        println!("terraform: not touched (use --driver terraform [--full])");
    }
    Ok(EXIT_OK)
}

fn image(c: crate::cli::ImageCommand) -> anyhow::Result<i32> {
    let info = match c {
        crate::cli::ImageCommand::Build => perflab::image::image_build(None)?,
        crate::cli::ImageCommand::Load { file } => perflab::image::image_load(None, &file)?,
    };
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(EXIT_OK)
}

fn reproduce(a: crate::cli::ReproduceArgs) -> anyhow::Result<i32> {
    // A results folder, or a run's result.json inside one.
    let dir = if a.result.is_file() {
        a.result
            .ancestors()
            .find(|p| p.join("manifest.json").is_file())
            .map(|p| p.to_path_buf())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{} is not inside a perflab results folder",
                    a.result.display()
                ))
            })?
    } else {
        a.result.clone()
    };
    let old = perflab::store::Store::open(&dir)?;
    let manifest = old.manifest()?;
    // Secret driver options were stored redacted: take them from --driver-opt, else leave them
    // out so the driver falls back to the environment (TF_VAR_NAME).
    let mut run_manifest = manifest.clone();
    let (mut opts, dropped) = perflab::redact::without_redacted(&manifest.driver_options);
    let given = crate::cli::driver_options(&a.driver_opt)?;
    let missing: Vec<&String> = dropped.iter().filter(|k| !given.contains_key(*k)).collect();
    if !missing.is_empty() {
        eprintln!(
            "perflab: driver option(s) {} were recorded redacted; pass them again with \
             --driver-opt KEY=VALUE (or through the environment, e.g. TF_VAR_NAME)",
            missing
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    opts.extend(given);
    run_manifest.driver_options = opts;
    let old_runs = old.load_runs()?;
    let only_case = if a.result.is_file() {
        let rec: perflab::result::RunRecord = serde_json::from_slice(
            &std::fs::read(&a.result).map_err(|e| Error::io(&a.result, e))?,
        )?;
        Some(rec.case)
    } else {
        None
    };
    let exec = perflab::reproduce::reproduce(
        &old,
        &run_manifest,
        &old_runs,
        only_case.as_deref(),
        &a.output,
        a.repeat,
    )?;
    let label = |v: &str| format!("{v} (recorded)");
    let text = perflab::reproduce::report(
        &old_runs,
        &exec,
        a.noise_band / 100.0,
        a.include_flagged,
        &label,
    )?;
    report::render_all(&exec.store, &report::ReportOptions::default())?;
    print!("{text}");
    if let Ok(now) = exec.store.manifest() {
        print!(
            "{}",
            perflab::reproduce::environment_report(&manifest, &now)
        );
    }
    eprintln!("perflab: new results in {}", exec.store.root().display());
    match exec.error {
        None => Ok(EXIT_OK),
        Some(e) => Err(e.into()),
    }
}

/// `perflab compare`.
pub fn compare(a: crate::cli::CompareArgs) -> anyhow::Result<i32> {
    if a.versions.len() < 2 {
        return Err(Error::Usage(format!(
            "compare needs at least 2 versions (a baseline and a candidate), got {}: e.g. perflab compare git:main git:HEAD",
            a.versions.len()
        ))
        .into());
    }
    if !(0.0..50.0).contains(&a.noise_band) {
        return Err(Error::Usage("--noise-band is a percentage between 0 and 50".into()).into());
    }
    for f in &a.formats {
        if report::export::exporter(f).is_none() {
            return Err(Error::Usage(format!(
                "unknown format \"{f}\": expected one of {}",
                report::export::FORMATS.join(", ")
            ))
            .into());
        }
    }
    let mut versions = Vec::new();
    for v in &a.versions {
        let mut parsed = Version::parse(v, &a.repo)?;
        // The same version twice is an A/A comparison: label the repeats apart.
        let mut n = 1;
        while versions.iter().any(|x: &Version| x.label == parsed.label) {
            n += 1;
            parsed.label = format!("{v}#{n}");
        }
        versions.push(parsed);
    }
    let (suite, cases) = select_cases(&a.suite, &a.run)?;
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| c.gateway != "baseline")
        .collect();
    if cases.is_empty() {
        return Err(Error::Usage(
            "no gateway case to compare (baseline cases do not depend on the version)".into(),
        )
        .into());
    }
    // Check every version before starting anything: a bad ref or a failing build is reported
    // before the first run.
    for v in &versions {
        for c in &cases {
            v.prepare(&c.gateway)?;
        }
    }
    let mut noise_band = a.noise_band / 100.0;
    if a.calibrate {
        let mut again = versions[0].clone();
        again.label = format!("{}#aa", versions[0].label);
        let req = request(
            "calibrate",
            &a.suite,
            (format!("{suite}-calibration"), cases.clone()),
            vec![versions[0].clone(), again],
            &a.run,
        )?;
        let exec = perflab::runner::execute(req)?;
        if let Some(e) = exec.error {
            return Err(e.into());
        }
        noise_band = perflab::reproduce::calibrated_band(&exec.runs);
        eprintln!(
            "perflab: calibrated noise band from A/A runs: ±{:.2}% ({})",
            100.0 * noise_band,
            exec.store.root().display()
        );
    }
    let mut req = request(
        "compare",
        &a.suite,
        (suite.clone(), cases),
        versions,
        &a.run,
    )?;
    req.profile = a.flamegraph;
    let exec = perflab::runner::execute(req)?;
    let opts = report::ReportOptions {
        formats: a.formats.clone(),
        noise_band,
        include_flagged: a.include_flagged,
        seed: a.seed,
        ..Default::default()
    };
    let text = report::render_all(&exec.store, &opts)?;
    print!("{text}");
    eprintln!("perflab: results in {}", exec.store.root().display());
    if let Some(e) = exec.error {
        return Err(e.into());
    }
    if let Some(pct) = a.fail_on_regression {
        let runs = exec.store.load_runs()?;
        let (case_ids, labels) = report::ordering(&exec.store, &runs);
        if let Some(cr) = report::compare_report(&suite, &labels, &case_ids, &runs, &opts) {
            let regressions: Vec<String> = cr
                .cases
                .iter()
                .flat_map(|c| {
                    c.metrics
                        .iter()
                        .filter(|m| m.metric == "rps" && perflab::stats::regression_exceeds(m, pct))
                        .map(move |m| format!("{} · {} · {}", c.case, c.candidate, m.metric))
                })
                .collect();
            if !regressions.is_empty() {
                eprintln!(
                    "perflab: slower by more than {pct}% with 95% confidence: {}",
                    regressions.join("; ")
                );
                return Ok(perflab::error::EXIT_REGRESSION);
            }
        }
    }
    Ok(EXIT_OK)
}
