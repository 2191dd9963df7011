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
    /// Compare versions: every case for every version, interleaved, with a statistical verdict.
    Compare(CompareArgs),
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
    /// Noise band in percent: changes inside it are "no change".
    #[arg(long, default_value_t = 2.0)]
    pub noise_band: f64,
    /// Measure the noise band from A/A runs of the baseline first.
    #[arg(long)]
    pub calibrate: bool,
    /// Exit with status 1 when any case is slower than this percentage with 95% confidence.
    #[arg(long, value_name = "PCT")]
    pub fail_on_regression: Option<f64>,
    /// Output formats (repeatable): markdown, json, csv, bmf, gab-bigger, gab-smaller.
    #[arg(long = "format", value_delimiter = ',')]
    pub formats: Vec<String>,
    /// Include flagged runs (errors, noisy, saturated load) in verdicts.
    #[arg(long)]
    pub include_flagged: bool,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Profile each version and write baseline, candidate and differential flame graphs.
    #[arg(long)]
    pub flamegraph: bool,
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
    /// Noise band in percent.
    #[arg(long, default_value_t = 2.0)]
    pub noise_band: f64,
    /// Include flagged runs in verdicts.
    #[arg(long)]
    pub include_flagged: bool,
    /// Seed of the bootstrap.
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
    /// Noise band in percent.
    #[arg(long, default_value_t = 2.0)]
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
