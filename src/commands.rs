//! Command handlers: turn parsed flags into library calls and print the results.

use std::io::Read;
use std::path::Path;

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
            let exec = perflab::runner::execute(request("suite", &a.suite, cases, versions, &a.run)?)?;
            finish_suite(exec)
        }
        Command::Compare(a) => crate::commands::compare(a),
        Command::Report(a) => {
            let store = perflab::store::Store::open(&a.dir)?;
            let out = report::render_all(&store, &report::ReportOptions::from_flags(&a.formats, a.noise_band, a.include_flagged, a.seed))?;
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
    let cases = cases.into_iter().map(|c| o.apply(c)).collect::<perflab::Result<Vec<_>>>()?;
    if cases.is_empty() {
        return Err(Error::Usage(format!("suite {} has no case to run with these filters", s.name)));
    }
    Ok((s.name, cases))
}

fn overrides(run: &RunArgs) -> Overrides {
    Overrides { duration: run.duration, repeat: run.repeat, connections: run.connections, threads: run.threads, warmup: run.warmup }
}

/// Builds the runner's request from flags (validating the driver name first).
pub fn request(kind: &str, _suite_arg: &str, (suite, cases): (String, Vec<Case>), versions: Vec<Version>, run: &RunArgs) -> perflab::Result<RunRequest> {
    if !perflab::driver::DRIVERS.contains(&run.driver.as_str()) {
        return Err(Error::Usage(format!("unknown driver \"{}\": expected one of {}", run.driver, perflab::driver::DRIVERS.join(", "))));
    }
    if run.cooldown_max < 0.0 || !(0.0..=100.0).contains(&run.noisy_pct) {
        return Err(Error::Usage("--cooldown-max must be >= 0 and --noisy-pct between 0 and 100".into()));
    }
    let progress = if run.quiet { Mode::Quiet } else if run.plain { Mode::Lines } else { Mode::Auto };
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
            std::io::stdin().read_to_string(&mut s).context("reading standard input")?;
            s
        } else {
            std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?
        };
        let parsed = perflab::role::load::wrk_parse::parse(&text)
            .map_err(|e| Error::Load(format!("{}: {}", f.display(), e)))?;
        results.push(parsed);
    }
    let json = if results.len() == 1 { serde_json::to_string_pretty(&results[0])? } else { serde_json::to_string_pretty(&results)? };
    println!("{json}");
    Ok(EXIT_OK)
}

fn teardown(a: crate::cli::TeardownArgs) -> anyhow::Result<i32> {
    let n = perflab::version::clean_worktrees()?;
    println!("removed {n} cached git checkout(s) from {}", perflab::version::worktrees_dir().display());
    let _ = (&a.full, &a.driver, &a.driver_opt);
    Ok(EXIT_OK)
}

fn image(_c: crate::cli::ImageCommand) -> anyhow::Result<i32> {
    Err(Error::Usage("the docker driver's images are not available in this build".into()).into())
}

fn reproduce(_a: crate::cli::ReproduceArgs) -> anyhow::Result<i32> {
    Err(Error::Usage("reproduce is not available in this build".into()).into())
}

/// `perflab compare`.
pub fn compare(_a: crate::cli::CompareArgs) -> anyhow::Result<i32> {
    Err(Error::Usage("compare is not available in this build".into()).into())
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}
