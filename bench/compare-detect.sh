#!/usr/bin/env bash
# How small a slowdown does `perflab compare --design restart` detect, and how often does it cry
# wolf? (The multiplexed default is measured by bench/sensitivity.sh.)
#
# Builds a throw-away gateway repository (templates in tests/fixtures/gateway-repo: nginx as a
# reverse proxy, driven by perflab's `command` adapter). Commit A proxies `/`; each slowdown
# commit adds N regex locations that never match before the request falls through to `/`, so
# nginx runs N regexes more per request: a slowdown you dial with N. Then:
#
#   - for each N in LEVELS: TRIALS comparisons `compare git:A git:nN`, counting verdict `slower`
#     for the rps metric (the metric --fail-on-regression uses);
#   - AA_TRIALS comparisons `compare git:A git:A`, counting any verdict other than `no change`.
#
# It reports, per N, the true slowdown (median over trials of the measured rps ratio and of the
# CPU-normalised ratio) and how many trials said `slower`; the smallest slowdown detected in
# at least 90% of trials; and the A/A false-verdict count.
#
# Usage:
#   bench/compare-detect.sh             # the full benchmark (defaults below: ~2 min a compare)
#   bench/compare-detect.sh calibrate   # one compare per level: find N for ~20/10/5 % first
#   TRIALS=2 AA_TRIALS=2 DURATION=1 REPEAT=3 LEVELS="80" bench/compare-detect.sh   # smoke run
#
# Environment (defaults in brackets):
#   TRIALS [10]  AA_TRIALS [$TRIALS]  DURATION [5] seconds of load per run  REPEAT [10] pairs
#   LEVELS ["80 40 20"] regex locations per slowdown commit, largest first. A rough
#     calibration on the project's 2-core VM (busy, load ~9; CPU-normalised ratio of one
#     3-repeat compare each): 50 → -9 %, 100 → -25 %, 200 → -35 %, 400 → -58 %, 1600 → -92 %;
#     so 80/40/20 aim at ~20/10/5 %. Check with `calibrate` on a quiet machine and adjust.
#   NOISE_BAND [0] percent   CONNECTIONS [20]   THREADS [1]
#   COMPARE_ARGS ["--cooldown-max 2 --warmup 1 --noisy-pct 100"] extra `perflab compare` flags;
#     noisy runs are kept by default, so the result measures the statistics against this
#     machine's real noise instead of silently dropping runs
#   PERFLAB_BIN [target/release/perflab if built, else target/debug/perflab]
#   WORK [a new mktemp dir] where the repo, cache and all results go (kept; path printed)
#
# A debug build spends tens of seconds per compare hashing tool binaries for the fingerprint;
# build with `cargo build --release` for the full run.

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixture=$root/tests/fixtures/gateway-repo
mode=${1:-detect}

TRIALS=${TRIALS:-10}
AA_TRIALS=${AA_TRIALS:-$TRIALS}
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-10}
LEVELS=${LEVELS:-"80 40 20"}
NOISE_BAND=${NOISE_BAND:-0}
CONNECTIONS=${CONNECTIONS:-20}
THREADS=${THREADS:-1}
COMPARE_ARGS=${COMPARE_ARGS:-"--cooldown-max 2 --warmup 1 --noisy-pct 100"}
if [[ -z ${PERFLAB_BIN:-} ]]; then
    if [[ -x $root/target/release/perflab ]]; then
        PERFLAB_BIN=$root/target/release/perflab
    else
        PERFLAB_BIN=$root/target/debug/perflab
    fi
fi
[[ -x $PERFLAB_BIN ]] || { echo "no perflab binary at $PERFLAB_BIN (cargo build first)" >&2; exit 2; }
for tool in git jq nginx wrk; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done

WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/perflab-compare-detect.XXXXXX")}
repo=$WORK/gateway
suite=$WORK/suite
mkdir -p "$repo/conf" "$suite" "$WORK/cache" "$WORK/tmp" "$WORK/out"
# perflab's checkouts and lab folders stay inside $WORK.
export PERFLAB_CACHE_DIR=$WORK/cache
export TMPDIR=$WORK/tmp

# shellcheck source=bench/lib/regex-gateway.sh
. "$root/bench/lib/regex-gateway.sh"
# shellcheck disable=SC2086 # LEVELS is a list
make_regex_gateway "$fixture" "$repo" "$WORK" $LEVELS

# --- the suite: one case, small bodies, so routing is a visible share of the work ------------
cat >"$suite/regex-routes.toml" <<EOF
[case]
name = "regex-routes"
description = "the fixture gateway; slowdown commits add regex locations before /"
gateway = "command"
repeats = $REPEAT

[case.load]
connections = $CONNECTIONS
threads = $THREADS
duration = $DURATION
EOF

# --- one comparison ---------------------------------------------------------------------------
# compare BASE CAND NAME → prints "verdict rps_ratio cpu_ratio" (verdict "error" on failure).
compare() {
    local out=$WORK/out/$3 log=$WORK/out/$3.log
    mkdir -p "$out"
    # shellcheck disable=SC2086 # COMPARE_ARGS is a list of flags
    if ! "$PERFLAB_BIN" compare "git:$1" "git:$2" --suite "$suite" --repo "$repo" \
        --output "$out" --design restart --noise-band "$NOISE_BAND" --plain $COMPARE_ARGS >"$log" 2>&1; then
        echo "error - -"
        return
    fi
    local json
    json=$(ls "$out"/*/compare.json 2>/dev/null | head -n1)
    if [[ -z $json ]]; then
        echo "error - -"
        return
    fi
    jq -r '[.cases[0].metrics[] | select(.metric == "rps")][0] as $r
           | [.cases[0].metrics[] | select(.metric == "rps_per_gateway_cpu_s")][0] as $c
           | "\($r.verdict // "none" | gsub(" "; "_")) \($r.ratio // "-") \($c.ratio // "-")"' "$json"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-" } else if (NR % 2) { print v[(NR + 1) / 2] } else { print (v[NR / 2] + v[NR / 2 + 1]) / 2 } }'; }
pct() { awk -v r="$1" 'BEGIN { if (r == "-" || r == "") print "-"; else printf "%+.1f%%", (r - 1) * 100 }'; }

echo "perflab compare-detect: $mode; TRIALS=$TRIALS AA_TRIALS=$AA_TRIALS DURATION=$DURATION REPEAT=$REPEAT LEVELS=\"$LEVELS\" NOISE_BAND=$NOISE_BAND"
echo "binary: $PERFLAB_BIN; work: $WORK; nproc: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ $mode == calibrate ]]; then
    printf '%-8s %-12s %-10s %-10s\n' level verdict rps cpu-norm
    for n in $LEVELS; do
        read -r v r c < <(compare A "n$n" "calibrate-n$n")
        printf '%-8s %-12s %-10s %-10s\n' "n$n" "$v" "$(pct "$r")" "$(pct "$c")"
    done
    exit 0
fi

need=$(( (TRIALS * 9 + 9) / 10 ))   # ≥ 90 % of trials, rounded up (9 of 10)
smallest=none
printf '\n%-8s %-14s %-14s %-10s %s\n' level "rps (median)" "cpu-norm" slower verdicts
for n in $LEVELS; do
    slower=0
    verdicts=()
    : >"$WORK/ratios-$n"
    for ((t = 1; t <= TRIALS; t++)); do
        read -r v r c < <(compare A "n$n" "n$n-$t")
        verdicts+=("$v")
        [[ $v == slower ]] && slower=$((slower + 1))
        [[ $r != - ]] && echo "$r $c" >>"$WORK/ratios-$n"
    done
    rm=$(cut -d' ' -f1 "$WORK/ratios-$n" | median)
    cm=$(cut -d' ' -f2 "$WORK/ratios-$n" | grep -v '^-$' | median)
    printf '%-8s %-14s %-14s %-10s %s\n' "n$n" "$(pct "$rm")" "$(pct "$cm")" "$slower/$TRIALS" "${verdicts[*]}"
    if ((slower >= need)); then
        smallest="n$n (rps $(pct "$rm"), cpu-normalised $(pct "$cm"))"
    fi
done

false_verdicts=0
verdicts=()
: >"$WORK/ratios-aa"
for ((t = 1; t <= AA_TRIALS; t++)); do
    read -r v r c < <(compare A A "aa-$t")
    verdicts+=("$v")
    [[ $v != no_change ]] && false_verdicts=$((false_verdicts + 1))
    [[ $r != - ]] && echo "$r $c" >>"$WORK/ratios-aa"
done
aa_rm=$(cut -d' ' -f1 "$WORK/ratios-aa" | median)
aa_cm=$(cut -d' ' -f2 "$WORK/ratios-aa" | grep -v '^-$' | median)
printf '%-8s %-14s %-14s %-10s %s\n' "A/A" "$(pct "$aa_rm")" "$(pct "$aa_cm")" "$false_verdicts/$AA_TRIALS" "${verdicts[*]}"
echo
echo "smallest slowdown detected as slower in >= $need/$TRIALS trials: $smallest"
echo "A/A comparisons with a verdict other than no change: $false_verdicts/$AA_TRIALS"
echo "results and logs: $WORK/out"
