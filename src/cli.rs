//! The command line: clap types, then a resolved request for the library (flags first, then the
//! plan — two stages, so validation happens before anything starts).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// perflab: a reproducible benchmark lab for HTTP API gateways.
#[derive(Debug, Parser)]
#[command(name = "perflab", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
}

/// Options every run-making command shares.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Only cases with any of these tags (comma-separated; a case's name and gateway are tags).
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Driver: local, docker or terraform.
    #[arg(long, default_value = "local", env = "PERF_TEST_DRIVER")]
    pub driver: String,
    /// Driver option KEY=VALUE (repeatable), e.g. provider=netns, network=bridge.
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opt: Vec<String>,
    /// Run gateway cases against this gateway kind instead of the ones they list.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Seconds of load per run.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Repeats per case and version.
    #[arg(long)]
    pub repeat: Option<u32>,
    /// wrk connections.
    #[arg(long)]
    pub connections: Option<u32>,
    /// wrk threads.
    #[arg(long)]
    pub threads: Option<u32>,
    /// Seconds of unmeasured warm-up after each gateway start (0 disables).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Results root; each invocation makes its own folder inside.
    #[arg(long, default_value = "output")]
    pub output: PathBuf,
    /// Do not pin the gateway and the load generator to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Longest wait for a quiet machine before each run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub cooldown_max: f64,
    /// Background CPU share (percent) above which a run is flagged noisy.
    #[arg(long, default_value_t = 10.0)]
    pub noisy_pct: f64,
    /// Fixed first port of the upstream (the gateway uses PORT+100); default: free ports are picked.
    #[arg(long, value_name = "PORT")]
    pub port_base: Option<u16>,
    /// Stack unwinding of profiled runs: fp (frame pointers) or dwarf (full stacks of stripped binaries, more data).
    #[arg(long, default_value = "fp")]
    pub call_graph: String,
    /// Sampling frequency of profiled runs, per second.
    #[arg(long, default_value_t = 99)]
    pub profile_hz: u32,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// No progress output.
    #[arg(long, short)]
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
    #[arg(required = true, num_args = 1..)]
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
    /// Seconds after which every gateway instance is restarted (multiplexed); the segment is the
    /// statistical unit, so several per budget are needed.
    #[arg(long, default_value_t = 20.0)]
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
    /// Restart design only: changes inside ±PCT are "no change" (default 0: none).
    #[arg(long, default_value_t = 0.0)]
    pub noise_band: f64,
    /// Run `perflab calibrate` first (an A/A pilot of this machine), then compare with its choices.
    #[arg(long)]
    pub calibrate: bool,
    /// Exit with status 1 when a candidate's verdict is `slower` and its estimated slowdown is at least PCT percent.
    #[arg(long, value_name = "PCT")]
    pub fail_on_regression: Option<f64>,
    /// Output formats (repeatable): markdown, json, csv, bmf, gab-bigger, gab-smaller.
    #[arg(long = "format", value_delimiter = ',')]
    pub formats: Vec<String>,
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
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.5, 1.0, 2.0, 3.0])]
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
    /// Output formats for comparisons (default: all).
    #[arg(long = "format", value_delimiter = ',')]
    pub formats: Vec<String>,
    /// Restart design only: noise band in percent (default 0: none).
    #[arg(long, default_value_t = 0.0)]
    pub noise_band: f64,
    /// Include flagged runs in verdicts (restart design).
    #[arg(long)]
    pub include_flagged: bool,
    /// Seed recorded with restart-design comparisons.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `perflab reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// A results folder, or a run's result.json.
    pub result: PathBuf,
    /// Results root for the new runs.
    #[arg(long, default_value = "output")]
    pub output: PathBuf,
    /// Repeats (default: as recorded).
    #[arg(long)]
    pub repeat: Option<u32>,
    /// Noise band in percent (default 0: none).
    #[arg(long, default_value_t = 0.0)]
    pub noise_band: f64,
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
    #[arg(long)]
    pub full: bool,
    /// Only this driver's leftovers (default: all).
    #[arg(long)]
    pub driver: Option<String>,
    /// Driver option KEY=VALUE (repeatable).
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opt: Vec<String>,
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

/// Parses `KEY=VALUE` driver options.
pub fn driver_options(opts: &[String]) -> perflab::Result<perflab::driver::DriverOptions> {
    let mut m = perflab::driver::DriverOptions::new();
    for o in opts {
        let (k, v) = o.split_once('=').ok_or_else(|| {
            perflab::Error::Usage(format!("driver option \"{o}\" must look like KEY=VALUE"))
        })?;
        m.insert(k.trim().to_string(), v.to_string());
    }
    Ok(m)
}
