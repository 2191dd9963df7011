//! The command line: clap types, then a resolved request for the library (flags first, then the
//! plan — two stages, so validation happens before anything starts).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use perflab::driver::DriverKind;
use perflab::report::export::ExportFormat;
use perflab::role::gateway::GatewayKind;
use perflab::role::profiler::{CallGraph, ProfilerTool};

/// perflab: a reproducible benchmark lab for HTTP API gateways.
#[derive(Debug, Parser)]
#[command(name = "perflab", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// More log output on stderr: -v debug, -vv trace ($PERFLAB_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Errors only on stderr: no warnings, notes or progress ($PERFLAB_LOG overrides the log
    /// part).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Cli {
    /// Parses the command line and hands the global `--quiet` to the run options that use it.
    pub fn parse_args() -> Cli {
        let mut cli = <Cli as Parser>::parse();
        let quiet = cli.quiet;
        if let Some(run) = cli.command.run_args_mut() {
            run.quiet = quiet;
        }
        cli
    }
}

impl Command {
    /// The shared run options of a command that makes runs.
    pub fn run_args_mut(&mut self) -> Option<&mut RunArgs> {
        match self {
            Command::Suite(a) => Some(&mut a.run),
            Command::Compare(a) => Some(&mut a.run),
            Command::Calibrate(a) => Some(&mut a.run),
            Command::Capacity(a) => Some(&mut a.run),
            _ => None,
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every case of a suite (suites/<NAME>/*.toml) and print a table.
    Suite(SuiteArgs),
    /// Compare versions: all up at once, short bursts in balanced blocks, a statistical verdict.
    Compare(CompareArgs),
    /// Measure this machine (an A/A pilot) so compare can pick its burst length and metric and
    /// say beforehand how small a change it can see.
    Calibrate(CalibrateArgs),
    /// Re-render summaries, comparisons and charts from a results folder without re-running.
    Report(ReportArgs),
    /// Re-run a stored result's cases with the same options and versions, and compare.
    Reproduce(ReproduceArgs),
    /// Gather stored results across commits into a table, trend charts and a page.
    History(HistoryArgs),
    /// Bring in results from elsewhere.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Check what each driver needs and what this machine has.
    Doctor,
    /// Remove what earlier labs left: cached git checkouts, docker leftovers, terraform labs.
    Teardown(TeardownArgs),
    /// Build or load the docker driver's images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Find the highest request rate a gateway serves with a latency percentile under a target
    /// and errors under a threshold (open-loop runs; the rate is searched).
    Capacity(CapacityArgs),
    /// The open-loop load generator itself, run by the load role on the load host (not for
    /// direct use: set `kind = "open"` in a case instead). Prints one JSON report.
    #[command(hide = true)]
    OpenLoad(OpenLoadArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of perflab, or of one of its commands.
    Man {
        /// A command (suite, compare, …); none: perflab's own page.
        command: Option<String>,
    },
}

/// `perflab capacity`.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// Suite name (a folder in suites/) or a path to a folder of case files.
    pub suite: String,
    /// The gateway version to run.
    #[arg(long = "version", default_value = "current")]
    pub gateway_version: String,
    /// The gateway's source repository, for git: versions.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The latency percentile judged (above 0, below 100).
    #[arg(long, allow_negative_numbers = true, default_value_t = 99.0)]
    pub percentile: f64,
    /// The percentile must stay at or under this many milliseconds.
    #[arg(long, allow_negative_numbers = true)]
    pub target_ms: f64,
    /// Failed requests must stay at or under this share of those sent, percent.
    #[arg(
        long = "max-errors",
        allow_negative_numbers = true,
        default_value_t = 0.1
    )]
    pub max_errors: f64,
    /// First rate tried, requests per second.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1000.0)]
    pub start_rate: f64,
    /// Highest rate tried, requests per second.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1_000_000.0)]
    pub max_rate: f64,
    /// Stop when the failing rate is within this many percent above the passing one.
    #[arg(long, allow_negative_numbers = true, default_value_t = 5.0)]
    pub precision: f64,
    /// Most runs per case.
    #[arg(long, allow_negative_numbers = true, default_value_t = 20)]
    pub max_steps: u32,
    /// Shared run options (`--repeat` is ignored: each rate is one run).
    #[command(flatten)]
    pub run: RunArgs,
}

/// `perflab open-load` (hidden): one open-loop run.
#[derive(Debug, Args)]
pub struct OpenLoadArgs {
    /// Requests per second.
    #[arg(long, value_parser = rate)]
    pub rate: f64,
    /// Connections the schedule is spread over.
    #[arg(long, default_value_t = 100, value_parser = connections)]
    pub connections: u32,
    /// Worker threads.
    #[arg(long, default_value_t = 1, value_parser = threads)]
    pub threads: u32,
    /// Seconds of scheduled sending.
    #[arg(long, value_parser = duration_s)]
    pub duration: f64,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub timeout: u32,
    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Target URL.
    pub url: String,
}

/// Options every run-making command shares.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Only cases with any of these tags (comma-separated; a case's name and gateway are tags).
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Where the lab runs: processes here, containers, or provisioned machines over SSH.
    #[arg(long, value_enum, default_value_t = DriverKind::Local, env = "PERF_TEST_DRIVER")]
    pub driver: DriverKind,
    /// Driver option KEY=VALUE (repeatable), e.g. provider=netns, network=bridge.
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opt: Vec<String>,
    /// Terraform provider (module name): short for --driver-opt provider=NAME (default:
    /// $PERF_TEST_TERRAFORM_PROVIDER, else netns).
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Run gateway cases against this gateway kind instead of the ones they list.
    #[arg(long, value_enum)]
    pub gateway: Option<GatewayKind>,
    /// Seconds of load per run (1 to 86400).
    #[arg(long, allow_negative_numbers = true, value_parser = duration_s, env = "PERF_TEST_LOAD_DURATION")]
    pub duration: Option<f64>,
    /// Repeats per case and version (1 to 10000).
    #[arg(long, allow_negative_numbers = true, value_parser = repeat_count)]
    pub repeat: Option<u32>,
    /// wrk connections (1 to 1000000).
    #[arg(long, allow_negative_numbers = true, value_parser = connections)]
    pub connections: Option<u32>,
    /// wrk threads (1 to 1024).
    #[arg(long, allow_negative_numbers = true, value_parser = threads)]
    pub threads: Option<u32>,
    /// Seconds of unmeasured warm-up after each gateway start (0 disables; at most 3600).
    #[arg(long, allow_negative_numbers = true, value_parser = warmup_s)]
    pub warmup: Option<f64>,
    /// Open-loop load at this many requests per second (1 to 10000000) for every case: sets
    /// `kind = "open"` and `rate` (latency measured from each request's intended send time).
    #[arg(long, allow_negative_numbers = true, value_parser = rate)]
    pub rate: Option<f64>,
    /// Results root; each invocation makes its own folder inside, and `latest` links to it.
    #[arg(long, default_value = "output")]
    pub output: PathBuf,
    /// Write the results into exactly this folder (new or empty) instead of a new folder under
    /// --output, e.g. for a CI job that uploads it.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub output_dir: Option<PathBuf>,
    /// Do not pin the gateway and the load generator to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Longest wait for a quiet machine before each run, in seconds (0 to 3600).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true, value_parser = cooldown_s)]
    pub cooldown_max: f64,
    /// Background CPU share (percent) above which a run is flagged noisy (0 to 100).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true, value_parser = percent)]
    pub noisy_pct: f64,
    /// Fixed first port of the upstream (the gateway uses PORT+100, its admin API PORT+101, so
    /// 1 to 65434); default: free ports are picked.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true, value_parser = port_base)]
    pub port_base: Option<u16>,
    /// Profiler of profiled runs.
    #[arg(long, value_enum, default_value_t = ProfilerTool::Perf)]
    pub profiler: ProfilerTool,
    /// Stack unwinding of profiled runs (perf).
    #[arg(long, value_enum, default_value_t = CallGraph::Fp)]
    pub call_graph: CallGraph,
    /// Sampling frequency of profiled runs, per second (1 to 10000).
    #[arg(long, default_value_t = 99, allow_negative_numbers = true, value_parser = profile_hz)]
    pub profile_hz: u32,
    /// Finish the plan and exit 0 even when a gateway died during a run (such runs are always
    /// flagged `gateway_died` and left out of the statistics).
    #[arg(long)]
    pub keep_going: bool,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// No progress output: the global `--quiet` (set by [`Cli::parse_args`]).
    #[arg(skip)]
    pub quiet: bool,
}

/// `perflab suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Suite name (a folder in suites/) or a path to a folder of case files.
    pub suite: String,
    /// The gateway version to run.
    #[arg(long = "version", default_value = "current")]
    pub gateway_version: String,
    /// The gateway's source repository, for git: versions.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Shared run options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// How `compare` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Design {
    /// Every version up at once; short bursts in seeded balanced blocks; instances restarted
    /// every segment; verdict on blocks with sequential looks (default).
    Multiplexed,
    /// A fresh gateway per run, versions interleaved A B A B, pairs by repeat (for gateways that
    /// cannot run twice on one host).
    Restart,
}

/// `perflab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Versions: the baseline first, then one or more candidates (current, 3.9.1, git:REF, image:REF).
    #[arg(required = true, num_args = 1.., env = "PERF_TEST_VERSIONS", value_delimiter = ',')]
    pub versions: Vec<String>,
    /// Suite to run.
    #[arg(long, default_value = "rps")]
    pub suite: String,
    /// The gateway's source repository, for git: versions.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// How to measure.
    #[arg(long, value_enum, default_value = "multiplexed")]
    pub design: Design,
    /// Time per case (multiplexed), e.g. 90s, 2m, 10m; starts and warm-ups included.
    #[arg(long, default_value = "2m")]
    pub budget: String,
    /// Seconds of load per burst (multiplexed; default: the calibration's choice, else 2).
    #[arg(long)]
    pub burst: Option<f64>,
    /// Seconds after which every gateway instance is restarted (multiplexed; 0: after every
    /// block). The segment is the statistical unit, so several per budget are needed.
    #[arg(long, default_value_t = 0.0)]
    pub segment: f64,
    /// Look at the data (and stop if decided) every this many segments (multiplexed).
    #[arg(long, default_value_t = 3)]
    pub look_every: usize,
    /// The metric that gets the verdict (default: the calibration's choice, else rps).
    #[arg(long)]
    pub metric: Option<String>,
    /// Seed of the burst order (default: from the clock; always recorded).
    #[arg(long)]
    pub order_seed: Option<u64>,
    /// Restart design only: changes inside ±PCT are "no change" (default 0: none; below 50).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = noise_band)]
    pub noise_band: f64,
    /// Run `perflab calibrate` first (an A/A pilot of this machine), then compare with its choices.
    #[arg(long)]
    pub calibrate: bool,
    /// Exit with status 1 when a candidate's verdict is `slower` and its estimated slowdown is at least PCT percent (0 to 100).
    #[arg(long, value_name = "PCT", allow_negative_numbers = true, value_parser = regression_pct)]
    pub fail_on_regression: Option<f64>,
    /// Output formats (comma-separated or repeated; default: all).
    #[arg(long = "format", value_enum, value_delimiter = ',')]
    pub formats: Vec<ExportFormat>,
    /// Include flagged runs (with errors) in verdicts.
    #[arg(long)]
    pub include_flagged: bool,
    /// Seed recorded with restart-design comparisons.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Profile each version and write baseline, candidate and differential flame graphs (restart design).
    #[arg(long)]
    pub flamegraph: bool,
    /// Shared run options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `perflab calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// The version to run against itself.
    #[arg(long = "version", default_value = "current")]
    pub gateway_version: String,
    /// Suite whose first case (after --tags) is the pilot.
    #[arg(long, default_value = "rps")]
    pub suite: String,
    /// The gateway's source repository, for git: versions.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Burst lengths to try, seconds (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1.0, 2.0, 3.0])]
    pub bursts: Vec<f64>,
    /// Blocks per burst length.
    #[arg(long, default_value_t = 10)]
    pub blocks: usize,
    /// Shared run options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `perflab report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results folder (output/<time>-<suite>).
    pub dir: PathBuf,
    /// Output formats for comparisons (comma-separated or repeated; default: all).
    #[arg(long = "format", value_enum, value_delimiter = ',')]
    pub formats: Vec<ExportFormat>,
    /// Restart design only: noise band in percent (default 0: none; 0 to 100).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = percent)]
    pub noise_band: f64,
    /// Include flagged runs in verdicts (restart design).
    #[arg(long)]
    pub include_flagged: bool,
    /// Seed recorded with restart-design comparisons.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Open report.html in a browser ($BROWSER, else xdg-open); without one, print its path.
    #[arg(long)]
    pub open: bool,
}

/// `perflab history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Results folders, or folders holding them (also in their results/ sub-folder).
    #[arg(default_value = "output")]
    pub dirs: Vec<PathBuf>,
    /// Where to write history.json, the trend charts and report.html (default: DIR/history of
    /// the first DIR).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Open the page in a browser ($BROWSER, else xdg-open); without one, print its path.
    #[arg(long)]
    pub open: bool,
}

/// `perflab reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// A results folder, or a run's result.json.
    pub result: PathBuf,
    /// Results root for the new runs.
    #[arg(long, default_value = "output")]
    pub output: PathBuf,
    /// Repeats (default: as recorded; 1 to 10000).
    #[arg(long, allow_negative_numbers = true, value_parser = repeat_count)]
    pub repeat: Option<u32>,
    /// Noise band in percent (default 0: none; 0 to 100).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = percent)]
    pub noise_band: f64,
    /// Driver option KEY=VALUE (repeatable): supplies options the manifest holds redacted
    /// (`var.*` values, secrets), or overrides recorded ones.
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opt: Vec<String>,
    /// Keep runs flagged noisy, with errors or with saturated load in the comparison (left out
    /// by default, on both sides, as in compare).
    #[arg(long)]
    pub include_flagged: bool,
}

/// `perflab import`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Parse wrk outputs and print each result as JSON.
    Wrk {
        /// Files holding wrk's output (`-` for standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `perflab teardown`.
#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// With --driver terraform: also destroy the provisioned machines (terraform destroy).
    #[arg(long, env = "PERF_TEST_TEARDOWN_ALL")]
    pub full: bool,
    /// Only this driver's leftovers (default: all).
    #[arg(long, value_enum)]
    pub driver: Option<DriverKind>,
    /// Driver option KEY=VALUE (repeatable).
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opt: Vec<String>,
    /// Terraform provider: short for --driver-opt provider=NAME.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
}

/// `perflab image`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the lab image from this machine's binaries and their libraries.
    Build,
    /// Load an image tarball (docker save format, e.g. from `nix build .#image-worker`).
    Load {
        /// The tarball.
        file: PathBuf,
    },
}

/// A request rate within the open-loop generator's bounds.
pub fn rate(s: &str) -> Result<f64, String> {
    bounded_f64(
        s,
        1.0,
        perflab::role::load::wrk::MAX_RATE,
        "requests per second",
    )
}

/// Parses `KEY=VALUE` driver options, after `--provider` (its short form of `provider=NAME`;
/// an explicit `--driver-opt provider=…` wins).
pub fn driver_options(
    opts: &[String],
    provider: Option<&str>,
) -> perflab::Result<perflab::driver::DriverOptions> {
    let mut m = perflab::driver::DriverOptions::new();
    if let Some(p) = provider.filter(|p| !p.is_empty()) {
        m.insert("provider".into(), p.to_string());
    }
    for o in opts {
        let (k, v) = o.split_once('=').ok_or_else(|| {
            perflab::Error::Usage(format!("driver option \"{o}\" must look like KEY=VALUE"))
        })?;
        m.insert(k.trim().to_string(), v.to_string());
    }
    // Secret values are scrubbed from everything written from now on (src/redact.rs).
    perflab::redact::register(&m);
    Ok(m)
}

// Value parsers: every number is checked when the command line is parsed, against the bounds
// documented in docs/cli.md, so nothing downstream meets NaN, infinity, a negative count or a
// value that would overflow (a duration of 1e300 s, 4 000 000 000 repeats, a port past 65535).
// clap names the flag in its message: `invalid value '-1' for '--duration <DURATION>': …`.

/// A finite number of seconds (or percent) within `min..=max`.
fn bounded_f64(s: &str, min: f64, max: f64, unit: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of {unit} from {min} to {max}"))?;
    if !v.is_finite() || v < min || v > max {
        return Err(format!(
            "must be a finite number of {unit} from {min} to {max}"
        ));
    }
    Ok(v)
}

/// A whole number within `min..=max`.
fn bounded_u64(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = s.trim();
    let v: u64 = t.parse().map_err(|_| {
        if t.starts_with('-') {
            format!("must not be negative: a whole number from {min} to {max}")
        } else {
            format!("expected a whole number from {min} to {max}")
        }
    })?;
    if !(min..=max).contains(&v) {
        return Err(format!("must be a whole number from {min} to {max}"));
    }
    Ok(v)
}

fn duration_s(s: &str) -> Result<f64, String> {
    bounded_f64(s, 1.0, perflab::role::load::wrk::MAX_DURATION_S, "seconds")
}

fn warmup_s(s: &str) -> Result<f64, String> {
    bounded_f64(s, 0.0, perflab::role::load::wrk::MAX_WARMUP_S, "seconds")
}

fn cooldown_s(s: &str) -> Result<f64, String> {
    bounded_f64(s, 0.0, 3600.0, "seconds")
}

fn percent(s: &str) -> Result<f64, String> {
    bounded_f64(s, 0.0, 100.0, "percent")
}

fn regression_pct(s: &str) -> Result<f64, String> {
    bounded_f64(s, 0.0, 100.0, "percent")
}

fn noise_band(s: &str) -> Result<f64, String> {
    let v = bounded_f64(s, 0.0, 50.0, "percent")?;
    if v >= 50.0 {
        return Err("must be a finite number of percent from 0 up to (not including) 50".into());
    }
    Ok(v)
}

fn repeat_count(s: &str) -> Result<u32, String> {
    bounded_u64(s, 1, perflab::suite::MAX_REPEATS as u64).map(|v| v as u32)
}

fn connections(s: &str) -> Result<u32, String> {
    bounded_u64(s, 1, perflab::role::load::wrk::MAX_CONNECTIONS as u64).map(|v| v as u32)
}

fn threads(s: &str) -> Result<u32, String> {
    bounded_u64(s, 1, perflab::role::load::wrk::MAX_THREADS as u64).map(|v| v as u32)
}

fn profile_hz(s: &str) -> Result<u32, String> {
    bounded_u64(s, 1, 10_000).map(|v| v as u32)
}

fn port_base(s: &str) -> Result<u16, String> {
    bounded_u64(s, 1, perflab::session::MAX_PORT_BASE as u64)
        .map(|v| v as u16)
        .map_err(|e| format!("{e} (the gateway listens on PORT+100 and its admin API on PORT+101)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_bounded_and_finite() {
        for bad in [
            "inf", "-inf", "NaN", "1e300", "-1", "0", "0.5", "86401", "x", "",
        ] {
            assert!(duration_s(bad).is_err(), "--duration {bad}");
        }
        assert_eq!(duration_s("1").unwrap(), 1.0);
        assert_eq!(duration_s("86400").unwrap(), 86400.0);
        assert!(warmup_s("inf").is_err() && warmup_s("-0.1").is_err());
        assert_eq!(warmup_s("0").unwrap(), 0.0);
        assert!(cooldown_s("NaN").is_err());
        for bad in ["0", "-3", "4000000000", "10001", "1.5"] {
            assert!(repeat_count(bad).is_err(), "--repeat {bad}");
        }
        assert!(repeat_count("-3").unwrap_err().contains("negative"));
        assert!(port_base("65500").is_err() && port_base("0").is_err());
        assert_eq!(port_base("65434").unwrap(), 65434);
        assert!(noise_band("50").is_err() && noise_band("49.9").is_ok());
    }

    #[test]
    fn kongs_variables_are_wired_to_their_flags() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let env_of = |sub: &str, arg: &str| {
            cli.find_subcommand(sub)
                .unwrap()
                .get_arguments()
                .find(|a| a.get_id() == arg)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env_of("compare", "versions").unwrap(), "PERF_TEST_VERSIONS");
        for sub in ["suite", "compare", "calibrate"] {
            assert_eq!(env_of(sub, "duration").unwrap(), "PERF_TEST_LOAD_DURATION");
            assert_eq!(env_of(sub, "driver").unwrap(), "PERF_TEST_DRIVER");
        }
        assert_eq!(
            env_of("teardown", "full").unwrap(),
            "PERF_TEST_TEARDOWN_ALL"
        );
    }

    #[test]
    fn provider_is_short_for_the_driver_option() {
        let o = driver_options(&[], Some("aws-ec2")).unwrap();
        assert_eq!(o.get("provider").map(String::as_str), Some("aws-ec2"));
        let o = driver_options(&["provider=netns".into()], Some("aws-ec2")).unwrap();
        assert_eq!(o.get("provider").map(String::as_str), Some("netns"));
        let c = Cli::try_parse_from(["perflab", "teardown", "--provider", "netns"]).unwrap();
        match c.command {
            Command::Teardown(t) => assert_eq!(t.provider.as_deref(), Some("netns")),
            _ => unreachable!(),
        }
        // Versions may be given comma-separated (as PERF_TEST_VERSIONS is).
        let c = Cli::try_parse_from(["perflab", "compare", "current,git:main"]).unwrap();
        match c.command {
            Command::Compare(a) => assert_eq!(a.versions, ["current", "git:main"]),
            _ => unreachable!(),
        }
    }

    #[test]
    fn negative_numbers_reach_the_value_parser() {
        let e = Cli::try_parse_from(["perflab", "suite", "rps", "--duration", "-1"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("--duration") && text.contains("from 1 to 86400"),
            "{text}"
        );
        let e =
            Cli::try_parse_from(["perflab", "suite", "rps", "--port-base", "65500"]).unwrap_err();
        assert!(e.to_string().contains("--port-base"), "{e}");
    }
}
