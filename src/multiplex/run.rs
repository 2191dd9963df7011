//! Runs the multiplexed design, case by case: the upstream once; one gateway instance per
//! version, all on the same CPUs; a warm-up that alternates between them; then blocks of bursts
//! in a seeded balanced order, a restart of every instance each segment, a look every few
//! segments, until the verdict is decided or the case's time budget is spent. Each burst is
//! written to the store the moment it ends, and `design.json` after every look, so Ctrl-C
//! keeps every finished block and the looks that judged them.

use std::time::{Duration, Instant};

use crate::result::{BurstPlace, RunRecord};
use crate::runner::{Execution, RunRequest, adapter_label, run_lab};
use crate::session::{Session, run_record};
use crate::stats::Xoshiro256pp;
use crate::stats::multiplexed::{Look, decide};
use crate::store::Store;
use crate::suite::Case;
use crate::util::time::now_unix;
use crate::{Error, Result};

use super::{CaseDesign, DESIGN_FILE, DesignRecord, MultiplexOptions, balanced_order, case_seed};

/// The gateway instance name of version `v`.
fn instance(v: usize) -> String {
    format!("v{v}")
}

/// Runs every case of `req` with the multiplexed design. Returns the finished bursts even when
/// interrupted; the error is in [`Execution::error`].
pub fn execute(req: RunRequest, opts: MultiplexOptions) -> Result<Execution> {
    opts.validate()?;
    if req.versions.len() < 2 {
        return Err(Error::Usage(
            "a multiplexed comparison needs at least two versions".into(),
        ));
    }
    // Actions during load change the gateway under test (a reload, an admin API change) in
    // the middle of a burst: the block design's bursts are short and meant to be alike, so
    // such cases are measured with ordinary runs (`perflab suite`, a gateway start per run).
    if let Some(c) = req.cases.iter().find(|c| !c.during.is_empty()) {
        return Err(Error::Usage(format!(
            "case {} has actions during load ([[case.during]]), which a multiplexed comparison \
             does not run: compare it with `--design restart` or run it with `perflab suite`",
            c.id
        )));
    }
    let quiet = matches!(req.progress, crate::progress::Mode::Quiet);
    run_lab(&req, 0, |session, store, runs| {
        let mut record = DesignRecord::new(&opts);
        write_design(store, &record)?;
        let mut sequence = 0u32;
        for case in &req.cases {
            let mut cd = CaseDesign::default();
            let r = run_case(
                session,
                &req,
                &opts,
                store,
                case,
                &mut cd,
                &mut record,
                runs,
                &mut sequence,
                quiet,
            );
            cd.stopped = match &r {
                Ok(()) => cd.stopped.clone(),
                Err(Error::Interrupted) => "interrupted".into(),
                Err(e) => format!("failed: {e}"),
            };
            record.cases.insert(case.id.clone(), cd);
            write_design(store, &record)?;
            r?;
        }
        Ok(())
    })
}

fn write_design(store: &Store, record: &DesignRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Lab(e.to_string()))?;
    store.write(DESIGN_FILE, &json)?;
    Ok(())
}

fn say(quiet: bool, msg: &str) {
    if !quiet {
        tracing::info!("{msg}");
    }
}

#[allow(clippy::too_many_arguments)]
fn run_case(
    session: &mut Session,
    req: &RunRequest,
    opts: &MultiplexOptions,
    store: &Store,
    case: &Case,
    cd: &mut CaseDesign,
    record: &mut DesignRecord,
    runs: &mut Vec<RunRecord>,
    sequence: &mut u32,
    quiet: bool,
) -> Result<()> {
    let k = req.versions.len();
    let dirs = req
        .versions
        .iter()
        .map(|v| crate::role::gateway::prepare_version(v, case.gateway))
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    session.set_baseline_mode(false);
    session.start_upstream_with(&case.upstream)?;
    let mut rng = Xoshiro256pp::new(case_seed(opts.order_seed, &case.id));
    let mut burst_load = case.load.clone();
    burst_load.duration = opts.burst_s;
    burst_load.warmup = 0.0;
    // Until a block has been measured, assume a quarter second of switching per burst.
    let guess_block = 2.0 * k as f64 * (opts.burst_s + 0.25);
    let mut block_walls: Vec<f64> = Vec::new();
    let mut segment_walls: Vec<f64> = Vec::new();
    let mut block: u32 = 0;
    let mut segment: u32 = 0;
    let mut decided = vec![false; k];
    say(
        quiet,
        &format!(
            "{}: {} versions up at once, {} s bursts in balanced blocks, restart every {} s, budget {} s, looks every {} segments (order seed {})",
            case.id,
            k,
            opts.burst_s,
            opts.segment_s,
            opts.budget_s,
            opts.look_every,
            opts.order_seed
        ),
    );
    let result = (|| -> Result<()> {
        'segments: loop {
            let block_est = mean(&block_walls).unwrap_or(guess_block);
            if start.elapsed().as_secs_f64() + block_est + 1.0 > opts.budget_s {
                cd.stopped = "budget".into();
                break;
            }
            // Start every instance, in a random order, all on the measured CPUs.
            let order = balanced_order(k, &mut rng);
            for &v in &order[..k] {
                let version = &req.versions[v];
                session.start_gateway_in(
                    case.gateway,
                    adapter_label(&version.label),
                    dirs[v].clone(),
                    &case.entities,
                    &case.gateway_settings,
                    &instance(v),
                    case.workers,
                )?;
            }
            segment += 1;
            cd.segments = segment;
            let segment_started = Instant::now();
            if case.load.warmup > 0.0 {
                for &v in &order {
                    crate::signals::check()?;
                    session.warm_up_instance(
                        Some(&instance(v)),
                        &case.load,
                        (case.load.warmup / 2.0).max(0.5),
                    )?;
                }
            }
            let segment_start = Instant::now();
            let mut blocks_in_segment = 0;
            loop {
                crate::signals::check()?;
                let block_est = mean(&block_walls).unwrap_or(guess_block);
                if start.elapsed().as_secs_f64() + block_est > opts.budget_s {
                    cd.stopped = "budget".into();
                    save_segment_logs(session, store, case, segment, req)?;
                    session.stop_gateway()?;
                    break 'segments;
                }
                if blocks_in_segment > 0
                    && segment_start.elapsed().as_secs_f64() + block_est > opts.segment_s
                {
                    break;
                }
                let block_start = Instant::now();
                let order = balanced_order(k, &mut rng);
                for (position, &v) in order.iter().enumerate() {
                    crate::signals::check()?;
                    *sequence += 1;
                    let rec = burst(
                        session,
                        req,
                        store,
                        case,
                        &burst_load,
                        v,
                        BurstPlace {
                            segment: segment - 1,
                            block,
                            position: position as u32,
                            instance: instance(v),
                        },
                        *sequence,
                    )?;
                    let died = rec.flags.gateway_died.then(|| {
                        format!(
                            "{} · {}: {}",
                            case.id,
                            rec.version,
                            rec.notes.first().cloned().unwrap_or_default()
                        )
                    });
                    runs.push(rec);
                    if let Some(what) = died {
                        // A dead instance would turn every later burst into errors: stop the
                        // case; the burst is kept, flagged and left out of the statistics.
                        return Err(Error::GatewayDied(format!(
                            "a gateway instance died during a burst ({what}); the case stopped"
                        )));
                    }
                }
                block_walls.push(block_start.elapsed().as_secs_f64());
                block += 1;
                blocks_in_segment += 1;
                cd.blocks = block as usize;
            }
            save_segment_logs(session, store, case, segment, req)?;
            session.stop_gateway()?;
            segment_walls.push(segment_started.elapsed().as_secs_f64());
            // A look every `look_every` segments (the segment is the statistical unit).
            if (segment as usize).is_multiple_of(opts.look_every) && block >= 2 {
                let remaining = (opts.budget_s - start.elapsed().as_secs_f64()).max(0.0);
                let seg_est = mean(&segment_walls).unwrap_or(opts.segment_s.max(block_est));
                let planned = segment as f64 + (remaining / seg_est).floor();
                let fraction = (segment as f64 / planned.max(1.0)).min(1.0);
                cd.looks.push(Look {
                    blocks: block as usize,
                    fraction,
                });
                if look(req, opts, record, case, cd, runs, &mut decided, quiet) {
                    cd.stopped = format!("decided at look {}", cd.looks.len());
                    break 'segments;
                }
                if fraction >= 1.0 {
                    cd.stopped = "budget".into();
                    break 'segments;
                }
                record.cases.insert(case.id.clone(), cd.clone());
                write_design(store, record)?;
            }
        }
        // The final look, spending what α is left, unless the last look was already final.
        if block >= 2 && cd.looks.last().is_none_or(|l| l.fraction < 1.0) {
            cd.looks.push(Look {
                blocks: block as usize,
                fraction: 1.0,
            });
            look(req, opts, record, case, cd, runs, &mut decided, quiet);
        }
        Ok(())
    })();
    cd.block_wall_s = mean(&block_walls).unwrap_or(0.0);
    // What a block costs beyond its load: wrk start, parse, CPU snapshots, store writes.
    cd.switch_s = mean(&block_walls)
        .map(|w| ((w / (2 * k) as f64) - opts.burst_s).max(0.0))
        .unwrap_or(0.0);
    cd.wall_s = start.elapsed().as_secs_f64();
    if result.is_err() {
        let _ = session.stop_gateway();
    }
    result
}

/// Takes a look: judges every candidate on the primary metric; prints what it found. Returns
/// true when every candidate is decided (the case can stop).
#[allow(clippy::too_many_arguments)]
fn look(
    req: &RunRequest,
    opts: &MultiplexOptions,
    record: &DesignRecord,
    case: &Case,
    cd: &CaseDesign,
    runs: &[RunRecord],
    decided: &mut [bool],
    quiet: bool,
) -> bool {
    let baseline = &req.versions[0].label;
    let metric = crate::stats::STANDARD_METRICS
        .iter()
        .find(|m| m.name == opts.primary_metric);
    let higher_is_better = metric.is_none_or(|m| m.higher_is_better);
    for (i, cand) in req.versions.iter().enumerate().skip(1) {
        if decided[i] {
            continue;
        }
        let diffs = super::analysis::primary_diffs(
            runs,
            &case.id,
            baseline,
            &cand.label,
            &opts.primary_metric,
            opts.include_flagged,
        );
        let Some(o) = decide(&diffs, &cd.looks, record.alpha) else {
            continue;
        };
        let verdict = o.verdict(higher_is_better);
        if o.decided {
            decided[i] = true;
        }
        say(
            quiet,
            &format!(
                "{} · {} vs {}: look {} at {} blocks: {} ratio {:.4} [{:.4}, {:.4}] → {}{}",
                case.id,
                cand.label,
                baseline,
                cd.looks.len(),
                o.estimate.blocks,
                opts.primary_metric,
                o.ratio,
                o.ci_low,
                o.ci_high,
                verdict,
                if o.decided {
                    " (decided)".to_string()
                } else {
                    format!(" (smallest detectable slowdown now {:.1}%)", 100.0 * o.mde)
                }
            ),
        );
    }
    decided.iter().skip(1).all(|d| *d)
}

/// One burst against version `v`'s instance, written to the store at once.
#[allow(clippy::too_many_arguments)]
fn burst(
    session: &mut Session,
    req: &RunRequest,
    store: &Store,
    case: &Case,
    load: &crate::role::load::wrk::LoadOptions,
    v: usize,
    place: BurstPlace,
    sequence: u32,
) -> Result<RunRecord> {
    let version = &req.versions[v];
    let detail = session
        .gateway(&place.instance)
        .map(|g| g.version_detail.clone())
        .unwrap_or_default();
    let started_unix_s = now_unix();
    session.start_burst(&place.instance, load)?;
    let m = session.wait_result(Duration::from_secs(30))?;
    let mut rec = run_record(
        &m,
        &req.suite,
        &case.id,
        &case.gateway.to_string(),
        &version.label,
        &detail,
        place.block + 1,
        sequence,
        started_unix_s,
        session.driver_name(),
    );
    rec.version_detail = version.detail(&detail);
    rec.burst = Some(place);
    let dir = store.run_dir(sequence, &case.id, &version.label, rec.repeat);
    store.write_run(
        &dir,
        &rec,
        &[("wrk.txt".into(), m.outcome.raw.clone().into_bytes())],
    )?;
    Ok(rec)
}

/// Keeps every instance's error log and configuration of a segment:
/// `segments/<case>/<segment>-<version>/`.
fn save_segment_logs(
    session: &Session,
    store: &Store,
    case: &Case,
    segment: u32,
    req: &RunRequest,
) -> Result<()> {
    for (v, version) in req.versions.iter().enumerate() {
        let Some(gw) = session.gateway(&instance(v)) else {
            continue;
        };
        let dir = format!(
            "segments/{}/{segment}-{}",
            crate::util::fs::sanitize(&case.id),
            crate::util::fs::sanitize(&version.label)
        );
        for (name, data) in crate::runner::gateway_files(gw) {
            store.write(format!("{dir}/{name}"), &data)?;
        }
    }
    Ok(())
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}
