# Shared helpers for perflab's benchmark scripts (sourced, not run).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PERFLAB=${PERFLAB:-$ROOT/target/release/perflab}
if [ ! -x "$PERFLAB" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
fi
BENCH_OUT=${BENCH_OUT:-$(mktemp -d /tmp/perflab-bench-XXXXXX)}
mkdir -p "$BENCH_OUT"
export CHECKPOINT_DISABLE=1

# The newest results folder under a root.
latest() { ls -d "$1"/*/ | sort | tail -n 1; }

# A JSON value: json FILE PYTHON-EXPRESSION (the document is `d`).
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
