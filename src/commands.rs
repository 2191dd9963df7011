//! Command handlers: turn parsed flags into library calls and print the results.

use std::io::Read;

use anyhow::Context;
use perflab::driver::DriverKind;
use perflab::error::{EXIT_MISSING_TOOL, EXIT_OK};
use perflab::manifest::InvocationKind;
use perflab::progress::Mode;
use perflab::role::gateway::GatewayKind;
use perflab::role::profiler::ProfilerTool;
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
            let exec = perflab::runner::execute(request(
                InvocationKind::Suite,
                &a.suite,
                cases,
                versions,
                &a.run,
            )?)?;
            finish_suite(exec)
        }
        Command::Compare(a) => crate::commands::compare(a),
        Command::Calibrate(a) => crate::commands::calibrate(a).map(|_| EXIT_OK),
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
            if a.open {
                open_in_browser(&store.root().join(report::export::html::FILE_NAME));
            }
            Ok(EXIT_OK)
        }
        Command::Reproduce(a) => reproduce(a),
        Command::History(a) => history(a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "perflab", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Man { command } => man_page(command.as_deref()),
        Command::Import(ImportCommand::Wrk { files }) => import_wrk(&files),
        Command::Doctor => {
            let (text, ok) = perflab::doctor::check();
            print!("{text}");
            Ok(if ok { EXIT_OK } else { EXIT_MISSING_TOOL })
        }
        Command::Teardown(a) => teardown(a),
        Command::Image(c) => image(c),
        Command::OpenLoad(a) => open_load(a),
        Command::Capacity(a) => capacity(a),
    }
}

/// Writes the man page of perflab or of one of its commands to standard output.
fn man_page(command: Option<&str>) -> anyhow::Result<i32> {
    use clap::CommandFactory;
    let root = Cli::command();
    let page = match command {
        None => root,
        Some(name) => {
            let names: Vec<String> = root
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let sub = root.find_subcommand(name).cloned().ok_or_else(|| {
                Error::Usage(format!(
                    "no command \"{name}\": expected one of {}",
                    names.join(", ")
                ))
            })?;
            // `perflab-compare(1)`, as git and cargo name their commands' pages.
            sub.name(format!("perflab-{name}"))
        }
    };
    clap_mangen::Man::new(page).render(&mut std::io::stdout())?;
    Ok(EXIT_OK)
}

fn history(a: crate::cli::HistoryArgs) -> anyhow::Result<i32> {
    let h = perflab::history::collect(&a.dirs)?;
    if h.points.is_empty() {
        let mut msg = format!(
            "no finished results in {}: give results folders or the folders that hold them",
            a.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (f, why) in &h.skipped {
            msg.push_str(&format!("; skipped {}: {why}", f.display()));
        }
        return Err(Error::Usage(msg).into());
    }
    print!("{}", perflab::history::table(&h));
    let out = a.out.unwrap_or_else(|| a.dirs[0].join("history"));
    let page = perflab::history::write(&h, &out)?;
    println!("charts: {}", out.join("charts").display());
    println!("report: {}", page.display());
    if a.open {
        open_in_browser(&page);
    }
    Ok(EXIT_OK)
}

/// Opens a page with `$BROWSER` (a command name, as `man` and `git web--browse` read it) or
/// else `xdg-open`; the browser is the user's and outlives perflab. Without either, or when the
/// browser cannot be started, prints the path to open by hand.
fn open_in_browser(page: &std::path::Path) {
    let browser = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .or_else(|| {
            which::which("xdg-open")
                .ok()
                .map(|p| p.display().to_string())
        });
    let started = browser.as_deref().map(|b| {
        std::process::Command::new(b)
            .arg(page)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {b}: {e}"))
    });
    match started {
        Some(Ok(_)) => tracing::info!("opened {}", page.display()),
        Some(Err(e)) => tracing::warn!("{e}; open {} by hand", page.display()),
        None => tracing::warn!(
            "no browser found (set $BROWSER or install xdg-utils); open {}",
            page.display()
        ),
    }
}

fn select_cases(suite: &str, run: &RunArgs) -> perflab::Result<(String, Vec<Case>)> {
    let s = load_suite(suite)?;
    let mut cases = filter_tags(s.cases, &run.tags)?;
    if let Some(g) = run.gateway {
        cases = override_gateway(cases, g);
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
        rate: run.rate,
    }
}

/// Builds the runner's request from flags (refusing combinations clap cannot see: an image
/// version without the docker driver, the Lua profiler on a gateway other than Kong).
pub fn request(
    kind: InvocationKind,
    _suite_arg: &str,
    (suite, cases): (String, Vec<Case>),
    versions: Vec<Version>,
    run: &RunArgs,
) -> perflab::Result<RunRequest> {
    if run.driver != DriverKind::Docker
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
    if run.profiler == ProfilerTool::Lua
        && let Some(c) = cases
            .iter()
            .find(|c| c.profile && c.gateway != GatewayKind::Kong)
    {
        return Err(Error::Usage(format!(
            "--profiler lua samples Kong's Lua code, but case {} runs {}: use --profiler perf, \
             or --gateway kong",
            c.id, c.gateway
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
    let options = perflab::manifest::ManifestOptions {
        tags: run.tags.clone(),
        gateway: run.gateway,
        overrides: Some(overrides(run)),
        pin_cpus: Some(!run.no_pin),
        cooldown_max_s: Some(run.cooldown_max),
        noisy_background_pct: Some(run.noisy_pct),
        driver_options: run.driver_opt.clone(),
        ..Default::default()
    };
    Ok(RunRequest {
        kind,
        suite,
        cases,
        versions,
        driver: run.driver,
        driver_options: crate::cli::driver_options(&run.driver_opt, run.provider.as_deref())?,
        output: run.output.clone(),
        output_dir: run.output_dir.clone(),
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
            tool: run.profiler,
            call_graph: run.call_graph,
            frequency_hz: run.profile_hz.max(1),
            ..Default::default()
        },
    })
}

fn finish_suite(exec: Execution) -> anyhow::Result<i32> {
    let opts = report::ReportOptions::default();
    let text = report::render_all(&exec.store, &opts)?;
    print!("{text}");
    tracing::info!("results in {}", exec.store.root().display());
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
    let only = a.driver;
    let n = perflab::version::clean_worktrees()?;
    println!(
        "git checkouts: removed {n} from {}",
        perflab::version::worktrees_dir().display()
    );
    // Every lab whose perflab process died, from its journal (all drivers).
    let cleaned = perflab::cleanup::clean_dead_labs(only.map(|d| d.to_string()).as_deref());
    for c in &cleaned {
        println!("{c}");
    }
    let unfinished = cleaned.iter().filter(|c| !c.problems.is_empty()).count();
    println!(
        "labs: cleaned {} dead lab(s){}",
        cleaned.len() - unfinished,
        if unfinished > 0 {
            format!(", {unfinished} not completely (their journals are kept: run teardown again)")
        } else {
            String::new()
        }
    );
    if only.is_none() || only == Some(DriverKind::Docker) {
        // `--driver-opt lab=ID`: only that lab's objects (others may be running).
        let opts = crate::cli::driver_options(&a.driver_opt, a.provider.as_deref())?;
        match perflab::driver::docker::remove_leftovers(None, opts.get("lab").map(String::as_str)) {
            Ok(l) => println!("docker: removed {} labelled object(s)", l.len()),
            Err(e) if only.is_none() => println!("docker: skipped ({e})"),
            Err(e) => return Err(e.into()),
        }
    }
    if only == Some(DriverKind::Terraform) {
        let mut d = perflab::driver::terraform::TerraformDriver::new(
            &crate::cli::driver_options(&a.driver_opt, a.provider.as_deref())?,
            "teardown",
        )?;
        if a.full {
            perflab::driver::Driver::teardown(&mut d, true)?;
            println!("terraform: destroyed ({})", d.state_dir().display());
        } else {
            println!(
                "terraform: kept the machines ({}; --full destroys them)",
                d.state_dir().display()
            );
        }
    } else if only.is_none() {
        println!("terraform: machines kept (--driver terraform --full destroys them)");
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
    let given = crate::cli::driver_options(&a.driver_opt, None)?;
    let missing: Vec<&String> = dropped.iter().filter(|k| !given.contains_key(*k)).collect();
    if !missing.is_empty() {
        tracing::warn!(
            "driver option(s) {} were recorded redacted; pass them again with \
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
    let rendered = report::render_all(&exec.store, &report::ReportOptions::default())?;
    print!("{text}");
    if let Ok(now) = exec.store.manifest() {
        print!(
            "{}",
            perflab::reproduce::environment_report(&manifest, &now)
        );
    }
    // The machine-readable result line stays the last line on stdout.
    if let Some(line) = rendered.lines().last() {
        println!("{line}");
    }
    tracing::info!("new results in {}", exec.store.root().display());
    match exec.error {
        None => Ok(EXIT_OK),
        Some(e) => Err(e.into()),
    }
}

/// Parses compare's versions, labelling repeats of one version apart (`git:A#2`: an A/A
/// comparison).
fn compare_versions(labels: &[String], repo: &std::path::Path) -> perflab::Result<Vec<Version>> {
    let mut versions = Vec::new();
    for v in labels {
        let mut parsed = Version::parse(v, repo)?;
        let mut n = 1;
        while versions.iter().any(|x: &Version| x.label == parsed.label) {
            n += 1;
            parsed.label = format!("{v}#{n}");
        }
        versions.push(parsed);
    }
    Ok(versions)
}

/// The gateway cases of a suite (baseline cases do not depend on the version).
fn gateway_cases(suite: &str, run: &RunArgs) -> perflab::Result<(String, Vec<Case>)> {
    let (name, cases) = select_cases(suite, run)?;
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| c.gateway != GatewayKind::Baseline)
        .collect();
    if cases.is_empty() {
        return Err(Error::Usage(
            "no gateway case to compare (baseline cases do not depend on the version)".into(),
        ));
    }
    Ok((name, cases))
}

/// `perflab calibrate`: runs the A/A pilot, stores and prints the choice.
pub fn calibrate(
    a: crate::cli::CalibrateArgs,
) -> anyhow::Result<perflab::multiplex::calibrate::Calibration> {
    use perflab::multiplex::calibrate::{self as cal, BurstCalibration, Calibration};
    if a.blocks < 3 || a.blocks > 1000 {
        return Err(Error::Usage("--blocks must be between 3 and 1000".into()).into());
    }
    if a.bursts.is_empty()
        || a.bursts
            .iter()
            .any(|b| !(b.is_finite() && (1.0..=60.0).contains(b)))
    {
        return Err(
            Error::Usage("--bursts must be seconds between 1 and 60, e.g. 1,2,3".into()).into(),
        );
    }
    let label = a.gateway_version.clone();
    let versions = compare_versions(&[label.clone(), label.clone()], &a.repo)?;
    let (suite, mut cases) = gateway_cases(&a.suite, &a.run)?;
    cases.truncate(1);
    for v in &versions {
        perflab::role::gateway::prepare_version(v, cases[0].gateway)?;
    }
    let driver_options = crate::cli::driver_options(&a.run.driver_opt, a.run.provider.as_deref())?;
    let (key, machine) = cal::machine_key(a.run.driver, &driver_options);
    tracing::info!(
        "calibrating {machine} with {} (case {}) against itself, bursts {:?} s, {} blocks each",
        label,
        cases[0].id,
        a.bursts,
        a.blocks
    );
    let mut measured = Vec::new();
    for &b in &a.bursts {
        // Budget for the blocks plus a restart of both instances per block.
        let budget = (a.blocks as f64 * (4.0 * (b + 0.1) + 2.5) * 1.1 + 10.0).max(10.0);
        let opts = perflab::multiplex::MultiplexOptions {
            burst_s: b,
            segment_s: 0.0,
            budget_s: budget,
            look_every: 1_000_000,
            order_seed: 1,
            primary_metric: "rps".into(),
            include_flagged: false,
        };
        let req = request(
            InvocationKind::Calibrate,
            &a.suite,
            (format!("{suite}-calibration"), cases.clone()),
            versions.clone(),
            &a.run,
        )?;
        let exec = perflab::multiplex::run::execute(req, opts)?;
        if let Some(e) = exec.error {
            return Err(e.into());
        }
        let design = perflab::multiplex::DesignRecord::load(&exec.store)
            .ok_or_else(|| Error::Lab("calibration wrote no design.json".into()))?;
        let cd = design.cases.get(&cases[0].id).cloned().unwrap_or_default();
        let comparisons = perflab::multiplex::analysis::compare_case(
            &exec.runs,
            &cases[0].id,
            &versions[0].label,
            &versions[1].label,
            &design,
            &cd,
        );
        // One block per segment: the SD of the segment means is the SD of a unit, instance
        // effects included.
        let sd = comparisons
            .iter()
            .filter_map(|c| Some((c.metric.clone(), c.design.as_ref()?.segment_sd_pct)))
            .filter(|(m, _)| m != "gateway_rss_mb")
            .collect();
        let bc = BurstCalibration {
            burst_s: b,
            blocks: cd.blocks,
            switch_s: cd.switch_s,
            block_wall_s: if cd.segments > 0 {
                cd.wall_s / cd.segments as f64
            } else {
                cd.block_wall_s
            },
            block_sd_pct: sd,
            results: exec.store.root().to_path_buf(),
        };
        tracing::info!(
            "burst {b} s: {} blocks, switch {:.2} s, block SD {}",
            bc.blocks,
            bc.switch_s,
            bc.block_sd_pct
                .iter()
                .map(|(m, s)| format!("{m} {s:.2}%"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        measured.push(bc);
    }
    let (i, metric) = cal::choose(&measured).ok_or_else(|| {
        Error::Lab("calibration measured no usable block SD (too few blocks?)".into())
    })?;
    let chosen = &measured[i];
    let c = Calibration {
        schema: cal::CALIBRATION_SCHEMA.into(),
        machine_key: key,
        machine,
        created_unix_s: perflab::util::time::now_unix(),
        case: cases[0].id.clone(),
        version: label,
        burst_s: chosen.burst_s,
        block_sd_pct: chosen.block_sd_pct[&metric],
        block_wall_s: chosen.block_wall_s,
        primary_metric: metric,
        bursts: measured.clone(),
    };
    let path = cal::save(&c)?;
    let (blocks, mde) = cal::planned_mde(c.block_sd_pct, c.block_wall_s, 120.0);
    println!(
        "calibration: burst {} s, primary metric {}, block SD {:.2}% ({} per block); a 2-minute compare gets ~{} blocks and detects ~{:.1}% with 90% power",
        c.burst_s,
        c.primary_metric,
        c.block_sd_pct,
        format_args!("{:.1} s", c.block_wall_s),
        blocks,
        100.0 * mde
    );
    println!("stored in {}", path.display());
    Ok(c)
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
    if !(a.noise_band.is_finite() && (0.0..50.0).contains(&a.noise_band)) {
        return Err(Error::Usage("--noise-band is a percentage between 0 and 50".into()).into());
    }
    if let Some(p) = a.fail_on_regression
        && !(p.is_finite() && (0.0..100.0).contains(&p))
    {
        return Err(
            Error::Usage("--fail-on-regression is a percentage between 0 and 100".into()).into(),
        );
    }
    let budget_s = perflab::multiplex::parse_duration(&a.budget).ok_or_else(|| {
        Error::Usage(format!(
            "--budget \"{}\" is not a duration: use seconds or a unit, e.g. 90s, 2m, 1h",
            a.budget
        ))
    })?;
    let versions = compare_versions(&a.versions, &a.repo)?;
    let (suite, cases) = gateway_cases(&a.suite, &a.run)?;
    // Check every version before starting anything: a bad ref or a failing build is reported
    // before the first run.
    for v in &versions {
        for c in &cases {
            perflab::role::gateway::prepare_version(v, c.gateway)?;
        }
    }
    let driver_options = crate::cli::driver_options(&a.run.driver_opt, a.run.provider.as_deref())?;
    let calibration = if a.calibrate {
        Some(calibrate(crate::cli::CalibrateArgs {
            gateway_version: a.versions[0].clone(),
            suite: a.suite.clone(),
            repo: a.repo.clone(),
            bursts: vec![1.0, 2.0, 3.0],
            blocks: 10,
            run: a.run.clone(),
        })?)
    } else if a.design == crate::cli::Design::Multiplexed {
        perflab::multiplex::calibrate::load(a.run.driver, &driver_options)
    } else {
        None
    };
    let primary_metric = a
        .metric
        .clone()
        .or_else(|| calibration.as_ref().map(|c| c.primary_metric.clone()))
        .unwrap_or_else(|| "rps".into());
    let mut req = request(
        InvocationKind::Compare,
        &a.suite,
        (suite.clone(), cases),
        versions,
        &a.run,
    )?;
    let exec = match a.design {
        crate::cli::Design::Restart => {
            if perflab::stats::STANDARD_METRICS
                .iter()
                .all(|m| m.name != primary_metric)
            {
                return Err(Error::Usage(format!(
                    "--metric \"{primary_metric}\" is not a metric perflab compares"
                ))
                .into());
            }
            req.profile = a.flamegraph;
            perflab::runner::execute(req)?
        }
        crate::cli::Design::Multiplexed => {
            if a.flamegraph {
                return Err(Error::Usage(
                    "--flamegraph needs --design restart (profiled runs are kept out of the multiplexed bursts)".into(),
                )
                .into());
            }
            let opts = perflab::multiplex::MultiplexOptions {
                burst_s: a
                    .burst
                    .or_else(|| calibration.as_ref().map(|c| c.burst_s))
                    .unwrap_or(2.0),
                segment_s: a.segment,
                budget_s,
                look_every: a.look_every,
                order_seed: a.order_seed.unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(1)
                }),
                primary_metric: primary_metric.clone(),
                include_flagged: a.include_flagged,
            };
            opts.validate()?;
            match &calibration {
                Some(c) if c.burst_s == opts.burst_s && c.primary_metric == opts.primary_metric => {
                    let (blocks, mde) = perflab::multiplex::calibrate::planned_mde(
                        c.block_sd_pct * (req.versions.len() as f64 / 2.0).sqrt(),
                        c.block_wall_s * req.versions.len() as f64 / 2.0,
                        budget_s,
                    );
                    tracing::info!(
                        "calibrated ({} block SD {:.2}% at {} s bursts): ~{blocks} blocks per case in {budget_s:.0} s; smallest detectable slowdown ≈{:.1}% (90% power)",
                        c.primary_metric,
                        c.block_sd_pct,
                        c.burst_s,
                        100.0 * mde
                    );
                }
                Some(_) => tracing::info!(
                    "burst or metric differ from this machine's calibration: the detectable effect is printed after the run"
                ),
                None => tracing::info!(
                    "no calibration for this machine (run `perflab calibrate` to see the detectable effect before comparing); using {} s bursts and {}",
                    opts.burst_s,
                    opts.primary_metric
                ),
            }
            perflab::multiplex::run::execute(req, opts)?
        }
    };
    let opts = report::ReportOptions {
        formats: a.formats.clone(),
        noise_band: a.noise_band / 100.0,
        include_flagged: a.include_flagged,
        seed: a.seed,
        primary_metric,
        ..Default::default()
    };
    let text = report::render_all(&exec.store, &opts)?;
    print!("{text}");
    tracing::info!("results in {}", exec.store.root().display());
    if let Some(e) = exec.error {
        return Err(e.into());
    }
    if let Some(pct) = a.fail_on_regression {
        let runs = exec.store.load_runs()?;
        let (case_ids, labels) = report::ordering(&exec.store, &runs);
        let design = perflab::multiplex::DesignRecord::load(&exec.store);
        if let Some(cr) =
            report::compare_report(&suite, &labels, &case_ids, &runs, &opts, design.as_ref())
        {
            let regressions: Vec<String> = cr
                .cases
                .iter()
                .flat_map(|c| {
                    c.metrics
                        .iter()
                        .filter(|m| m.primary && perflab::stats::regression_exceeds(m, pct))
                        .map(move |m| {
                            format!(
                                "{} · {} · {} {:+.2}%",
                                c.case, c.candidate, m.metric, m.change_pct
                            )
                        })
                })
                .collect();
            if !regressions.is_empty() {
                tracing::error!(
                    "slower (95% confidence) by at least {pct}%: {}",
                    regressions.join("; ")
                );
                return Ok(perflab::error::EXIT_REGRESSION);
            }
        }
    }
    Ok(EXIT_OK)
}

/// `perflab open-load`: runs the open-loop generator and prints its JSON report.
fn open_load(a: crate::cli::OpenLoadArgs) -> anyhow::Result<i32> {
    use perflab::role::load::open_engine::{OpenLoadPlan, run};
    let plan = OpenLoadPlan {
        url: a.url,
        rate: a.rate,
        connections: a.connections,
        threads: a.threads,
        duration_s: a.duration,
        timeout: std::time::Duration::from_secs(a.timeout.into()),
        headers: a.headers,
    };
    let report = run(&plan).map_err(perflab::Error::Usage)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(EXIT_OK)
}

/// `perflab capacity`: the rate search, its table, and the usual summary of its runs.
fn capacity(a: crate::cli::CapacityArgs) -> anyhow::Result<i32> {
    let opts = perflab::capacity::CapacityOptions {
        percentile: a.percentile,
        target_ms: a.target_ms,
        max_error_pct: a.max_errors,
        start_rate: a.start_rate,
        max_rate: a.max_rate,
        precision_pct: a.precision,
        max_steps: a.max_steps,
    };
    opts.validate()?;
    let versions = vec![Version::parse(&a.gateway_version, &a.repo)?];
    let (suite, cases) = select_cases(&a.suite, &a.run)?;
    // Every step is open-loop at the searched rate; the case's own kind and rate are replaced.
    let cases = cases
        .into_iter()
        .map(|mut c| {
            if c.load.script.is_some() {
                return Err(Error::Usage(format!(
                    "case {} has a wrk script: capacity runs open-loop load, which cannot run \
                     one; leave the case out with --tags",
                    c.id
                )));
            }
            c.load.kind = perflab::role::load::wrk::LoadKind::Open;
            c.load.rate = Some(opts.start_rate);
            Ok(c)
        })
        .collect::<perflab::Result<Vec<_>>>()?;
    let req = request(
        InvocationKind::Capacity,
        &a.suite,
        (suite, cases),
        versions,
        &a.run,
    )?;
    let (exec, results) = perflab::capacity::run(req, &opts)?;
    print!("{}", perflab::capacity::markdown(&results));
    tracing::info!("results in {}", exec.store.root().display());
    match exec.error {
        None => Ok(EXIT_OK),
        Some(e) => Err(e.into()),
    }
}
