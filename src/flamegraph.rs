//! Flame graphs and differential flame graphs from folded stacks.
//!
//! Kong's framework shelled out to Brendan Gregg's Perl scripts (`stackcollapse-stap.pl`,
//! `flamegraph.pl`) on the gateway machine. perflab keeps the *folded stacks* (one line per
//! distinct stack, `frame;frame;frame COUNT`) as the stored artefact and renders SVGs locally with
//! inferno, so a graph can be re-rendered, re-titled or diffed against another run's profile
//! later without profiling again, and no Perl is needed anywhere.
//!
//! Counts are whatever the folded lines hold. Profiles made by
//! the profiler role count *samples* (the profiler strips perf's period field), which is
//! why the graphs say "samples". Folded stacks from elsewhere may be period-weighted (inferno's
//! default on `perf script` output with periods: one `cpu-clock` sample at 99 Hz weighs about
//! 10 101 010 ns); proportions are the same either way, only the absolute numbers differ.
//!
//! Rendering is deterministic (stable colours, no random ids), so the same folded stacks always
//! give the same SVG.
//!
//! A module below the roles, the session and the reports (not inside `report`): the profiler
//! counts the samples of the stacks it collected, the session renders a graph on request, and
//! reports re-render from the store, all with the same functions.

use std::path::{Path, PathBuf};

use inferno::differential;
use inferno::flamegraph::{self, Options};

use crate::{Error, Result};

/// The unit shown in the graphs' tooltips.
const COUNT_NAME: &str = "samples";

fn options(title: &str) -> Options<'static> {
    let mut opts = Options::default();
    opts.title = title.to_string();
    opts.count_name = COUNT_NAME.to_string();
    opts.deterministic = true;
    opts.hash = true;
    opts
}

fn has_stacks(folded: &str) -> bool {
    folded.lines().any(|l| !l.trim().is_empty())
}

fn write_svg(out_svg: &Path, svg: &[u8]) -> Result<()> {
    crate::util::fs::atomic_write(out_svg, svg).map_err(|e| Error::io(out_svg, e))
}

/// Renders an interactive flame graph SVG of `folded` stacks to `out_svg` (on this machine).
///
/// Fails with [`Error::Lab`] when there are no stacks (an empty profile usually means the
/// profiled process was idle, or the profiler attached to the wrong pids).
pub fn render_flamegraph(folded: &str, title: &str, out_svg: &Path) -> Result<()> {
    if !has_stacks(folded) {
        return Err(Error::Lab(format!(
            "cannot render flame graph {}: the profile has no stacks (was the process idle \
             during profiling?)",
            out_svg.display()
        )));
    }
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options(title), folded.lines(), &mut svg)
        .map_err(|e| Error::Lab(format!("rendering flame graph {}: {e}", out_svg.display())))?;
    write_svg(out_svg, &svg)
}

/// Computes the differential folded stacks (`stack BEFORE AFTER` lines) of two profiles.
///
/// `before` is scaled to the total of `after` (inferno's `normalize`), so two runs of different
/// length or sample count compare by share of time, not by absolute counts. Hex addresses of
/// unresolved frames are stripped so they do not split otherwise equal stacks.
pub fn differential_folded(before_folded: &str, after_folded: &str) -> Result<String> {
    let opts = differential::Options {
        normalize: true,
        strip_hex: true,
    };
    let mut out = Vec::new();
    differential::from_readers(
        opts,
        before_folded.as_bytes(),
        after_folded.as_bytes(),
        &mut out,
    )
    .map_err(|e| Error::Lab(format!("computing differential stacks: {e}")))?;
    String::from_utf8(out).map_err(|e| Error::Lab(format!("differential stacks: {e}")))
}

/// Renders a differential flame graph: the shape of `after`, coloured by the change from
/// `before` (red = more time after, blue = less), both normalised to the same total.
pub fn render_differential(
    before_folded: &str,
    after_folded: &str,
    title: &str,
    out_svg: &Path,
) -> Result<()> {
    if !has_stacks(before_folded) || !has_stacks(after_folded) {
        return Err(Error::Lab(format!(
            "cannot render differential flame graph {}: one of the two profiles has no stacks",
            out_svg.display()
        )));
    }
    let diff = differential_folded(before_folded, after_folded)?;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options(title), diff.lines(), &mut svg).map_err(|e| {
        Error::Lab(format!(
            "rendering differential flame graph {}: {e}",
            out_svg.display()
        ))
    })?;
    write_svg(out_svg, &svg)
}

/// Writes a profile into a store directory (on this machine): `DIR/NAME.folded` (the folded
/// stacks, the re-renderable source) and `DIR/NAME.svg` (the flame graph titled `title`).
/// Returns both paths.
///
/// `name` must be a plain file stem (no `/`), e.g. `run-003-gateway`.
pub fn write_profile(
    dir_local: &Path,
    name: &str,
    profile_folded: &str,
    title: &str,
) -> Result<(PathBuf, PathBuf)> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Usage(format!(
            "profile name {name:?} must be a plain file name without `/`"
        )));
    }
    let folded_path = dir_local.join(format!("{name}.folded"));
    let svg_path = dir_local.join(format!("{name}.svg"));
    crate::util::fs::atomic_write(&folded_path, profile_folded.as_bytes())
        .map_err(|e| Error::io(&folded_path, e))?;
    render_flamegraph(profile_folded, title, &svg_path)?;
    Ok((folded_path, svg_path))
}

/// Sums the counts of folded stacks (the last field of each line). With profiles from
/// the profiler role this is the number of samples.
pub fn total_count(folded: &str) -> u64 {
    folded
        .lines()
        .filter_map(|l| l.trim_end().rsplit_once(' '))
        .filter_map(|(_, n)| n.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_count_sums_last_fields() {
        assert_eq!(total_count("a;b 3\na;c d 4\n\nbad\n"), 7);
    }

    #[test]
    fn differential_marks_new_stacks_as_after_only() {
        let d = differential_folded("main;work 10\n", "main;work 10\nmain;gc 10\n").unwrap();
        assert!(d.lines().any(|l| l == "main;gc 0 10"), "{d}");
    }

    #[test]
    fn empty_profiles_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let e = render_flamegraph("\n", "t", &dir.path().join("x.svg")).unwrap_err();
        assert!(e.to_string().contains("no stacks"), "{e}");
        let e = write_profile(dir.path(), "../x", "a 1\n", "t").unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
    }
}
