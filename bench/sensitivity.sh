#!/usr/bin/env bash
# How small a slowdown does the multiplexed `perflab compare` find in its default 2-minute
# budget, and how often does it cry wolf?
#
# Builds a throw-away gateway repository from tests/fixtures/gateway-repo (nginx as a reverse
# proxy driven by perflab's `command` adapter). Commit A proxies `/`; commit nN adds N regex
# locations that never match, tried before `/`: a slowdown dialled with N. Then:
#
#   1. truth: one long multiplexed compare per level (TRUE_BUDGET) measures each level's real
#      slowdown with a narrow interval;
#   2. detection: TRIALS compares `git:A git:nN` per level with the default budget, counting
#      `slower` verdicts of the primary metric;
#   3. A/A: AA_TRIALS compares `git:A git:A`, counting verdicts other than `no change`;
#   4. pair σ of the designs on the same fixture: the block SD and segment SD of the multiplexed
#      A/A compares, and the SD of ln(B/A) over the pairs of one restart-design A/A compare.
#
# Usage:
#   bench/sensitivity.sh                      # the full benchmark (~100 min of quiet machine)
#   TRIALS=2 AA_TRIALS=2 BUDGET=40s LEVELS=32 TRUE_BUDGET=40s bench/sensitivity.sh   # smoke run
#
# Environment (defaults in brackets):
#   LEVELS ["6 12 32"] regex locations per slowdown commit (aimed at ~1%, ~2%, ~5%)
#   TRIALS [10]  AA_TRIALS [20]  BUDGET [2m]  TRUE_BUDGET [5m]  (TRUE_BUDGET=0 skips step 1)
#   RESTART_REPEAT [8] pairs of the restart-design A/A compare (0 skips it)
#   CALIBRATE [1] run `perflab calibrate` first (CAL_BURSTS ["1,2,3"], CAL_BLOCKS [8])
#   CONNECTIONS [20]  COMPARE_ARGS [""] extra flags for every compare
#   PERFLAB_BIN [target/release/perflab]  WORK [a new mktemp dir; kept, path printed]

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixture=$root/tests/fixtures/gateway-repo

LEVELS=${LEVELS:-"6 12 32"}
TRIALS=${TRIALS:-10}
AA_TRIALS=${AA_TRIALS:-20}
BUDGET=${BUDGET:-2m}
TRUE_BUDGET=${TRUE_BUDGET:-5m}
RESTART_REPEAT=${RESTART_REPEAT:-8}
CONNECTIONS=${CONNECTIONS:-20}
COMPARE_ARGS=${COMPARE_ARGS:-""}
PERFLAB_BIN=${PERFLAB_BIN:-$root/target/release/perflab}
[[ -x $PERFLAB_BIN ]] || { echo "no perflab binary at $PERFLAB_BIN (cargo build --release first)" >&2; exit 2; }
for tool in git jq nginx wrk awk; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done

WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/perflab-sensitivity.XXXXXX")}
repo=$WORK/gateway
suite=$WORK/suite
mkdir -p "$repo/conf" "$suite" "$WORK/cache" "$WORK/tmp" "$WORK/out"
export PERFLAB_CACHE_DIR=$WORK/cache
export TMPDIR=$WORK/tmp

# shellcheck source=bench/lib/regex-gateway.sh
. "$root/bench/lib/regex-gateway.sh"
# shellcheck disable=SC2086 # LEVELS is a list
make_regex_gateway "$fixture" "$repo" "$WORK" $LEVELS

cat >"$suite/regex-routes.toml" <<EOF2
[case]
name = "regex-routes"
description = "the fixture gateway; slowdown commits add regex locations before /"
gateway = "command"

[case.load]
connections = $CONNECTIONS
threads = 1
duration = 2
warmup = 1
EOF2

# compare BASE CAND NAME BUDGET [flags…] → "verdict ratio lo hi mde blocks segments block_sd segment_sd"
compare() {
    local base=$1 cand=$2 name=$3 budget=$4
    shift 4
    local out=$WORK/out/$name log=$WORK/out/$name.log
    mkdir -p "$out"
    # shellcheck disable=SC2086
    if ! "$PERFLAB_BIN" compare "git:$base" "git:$cand" --suite "$suite" --repo "$repo" \
        --output "$out" --budget "$budget" --plain $COMPARE_ARGS "$@" >"$log" 2>&1; then
        echo "error - - - - - - - -"
        return
    fi
    local json
    json=$(ls "$out"/*/compare.json 2>/dev/null | head -n1)
    [[ -n $json ]] || { echo "error - - - - - - - -"; return; }
    jq -r '[.cases[0].metrics[] | select(.primary)][0] as $m
           | "\($m.verdict | gsub(" "; "_")) \($m.ratio) \($m.ci_low) \($m.ci_high) \($m.mde_pct // "-") \($m.design.blocks // $m.n_pairs) \($m.design.segments // "-") \($m.design.block_sd_pct // "-") \($m.design.segment_sd_pct // "-")"' "$json"
}
pct() { awk -v r="$1" 'BEGIN { if (r == "-" || r == "") print "-"; else printf "%+.2f%%", (r - 1) * 100 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-" } else if (NR % 2) { print v[(NR + 1) / 2] } else { print (v[NR / 2] + v[NR / 2 + 1]) / 2 } }'; }

echo "perflab sensitivity: LEVELS=\"$LEVELS\" TRIALS=$TRIALS AA_TRIALS=$AA_TRIALS BUDGET=$BUDGET TRUE_BUDGET=$TRUE_BUDGET"
echo "binary: $PERFLAB_BIN; work: $WORK; nproc: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"

if [[ ${CALIBRATE:-1} == 1 ]]; then
    echo
    echo "0. perflab calibrate (A/A pilot on git:A; compare then uses its burst length and metric)"
    "$PERFLAB_BIN" calibrate --version git:A --suite "$suite" --repo "$repo" --output "$WORK/out/calibration" \
        --bursts "${CAL_BURSTS:-1,2,3}" --blocks "${CAL_BLOCKS:-8}" --plain 2>"$WORK/out/calibrate.log" || echo "calibration failed (see $WORK/out/calibrate.log)"
    grep -E "burst .* s:" "$WORK/out/calibrate.log" || true
fi

if [[ $TRUE_BUDGET != 0 ]]; then
    echo
    echo "1. true slowdown per level (one compare of $TRUE_BUDGET each)"
    for n in $LEVELS; do
        read -r v r lo hi mde blocks segs bsd ssd < <(compare A "n$n" "truth-n$n" "$TRUE_BUDGET" --look-every 1000)
        echo "n$n: $(pct "$r") [$(pct "$lo"), $(pct "$hi")] ($v, $blocks blocks, $segs segments, block SD $bsd%)"
    done
fi

echo
echo "2. detection in $BUDGET"
printf '%-6s %-10s %-12s %-10s %s\n' level slower "ratio (med)" "MDE (med)" verdicts
for n in $LEVELS; do
    slower=0
    verdicts=()
    : >"$WORK/det-$n"
    for ((t = 1; t <= TRIALS; t++)); do
        read -r v r lo hi mde blocks segs bsd ssd < <(compare A "n$n" "n$n-$t" "$BUDGET")
        verdicts+=("$v")
        [[ $v == slower ]] && slower=$((slower + 1))
        [[ $r != - ]] && echo "$r $mde" >>"$WORK/det-$n"
    done
    printf '%-6s %-10s %-12s %-10s %s\n' "n$n" "$slower/$TRIALS" "$(cut -d' ' -f1 "$WORK/det-$n" | median | xargs -I{} sh -c 'echo {}' | { read -r x; pct "$x"; })" \
        "$(cut -d' ' -f2 "$WORK/det-$n" | grep -v '^-$' | median)%" "${verdicts[*]}"
done

echo
echo "3. A/A in $BUDGET"
false_verdicts=0
verdicts=()
: >"$WORK/aa"
for ((t = 1; t <= AA_TRIALS; t++)); do
    read -r v r lo hi mde blocks segs bsd ssd < <(compare A A "aa-$t" "$BUDGET")
    verdicts+=("$v")
    [[ $v != no_change ]] && false_verdicts=$((false_verdicts + 1))
    [[ $r != - ]] && echo "$r $mde $bsd $ssd $blocks $segs" >>"$WORK/aa"
done
echo "false verdicts: $false_verdicts/$AA_TRIALS (${verdicts[*]})"
echo "multiplexed A/A: median block SD $(cut -d' ' -f3 "$WORK/aa" | median)%, median segment SD $(cut -d' ' -f4 "$WORK/aa" | median)%, median MDE $(cut -d' ' -f2 "$WORK/aa" | median)%, median blocks $(cut -d' ' -f5 "$WORK/aa" | median), segments $(cut -d' ' -f6 "$WORK/aa" | median)"

if ((RESTART_REPEAT > 0)); then
    echo
    echo "4. restart design, A/A, $RESTART_REPEAT pairs of 3 s runs"
    out=$WORK/out/restart-aa
    mkdir -p "$out"
    "$PERFLAB_BIN" compare git:A git:A --design restart --suite "$suite" --repo "$repo" --output "$out" \
        --repeat "$RESTART_REPEAT" --duration 3 --warmup 1 --cooldown-max 2 --plain >"$out.log" 2>&1 || true
    dir=$(ls -d "$out"/*/ | head -n1)
    # SD of ln(B/A) over pairs (same repeat), from every run's result.json.
    jq -r '[.version, .repeat, .rps] | @tsv' "$dir"/runs/*/result.json 2>/dev/null |
        awk -F'\t' '$1 == "git:A" { a[$2] = $3 } $1 != "git:A" { b[$2] = $3 }
            END { n = 0; for (k in a) if (k in b) { l[n++] = log(b[k] / a[k]) }
                  if (n < 2) { print "restart design: too few pairs"; exit }
                  m = 0; for (i = 0; i < n; i++) m += l[i]; m /= n
                  s = 0; for (i = 0; i < n; i++) s += (l[i] - m) ^ 2
                  printf "restart design: SD of ln(B/A) over %d pairs = %.2f%%\n", n, 100 * sqrt(s / (n - 1)) }'
fi
echo
echo "results and logs: $WORK/out"
