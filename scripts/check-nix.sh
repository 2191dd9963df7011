#!/usr/bin/env bash
# Checks perflab's Nix files without nixpkgs and without network:
#   1. every .nix file (flake.nix, nix/**/*.nix) parses;
#   2. nix/tests.nix (pure helpers in nix/lib.nix) evaluates to `true`;
#   3. nix/flake-tests.nix (flake.nix's outputs against stub inputs, and
#      flake.lock against flake.nix's inputs) evaluates to `true`.
# Exits non-zero on the first failing step and names the file.
#
# Works as root or not, with or without a nix daemon, with or without /nix:
# evaluation uses the `dummy://` store (nothing is ever copied to a store),
# and all nix config/state/log dirs point into a throwaway temp dir so the
# host's /etc/nix/nix.conf and ~/.config/nix do not leak in.
#
# With PERFLAB_NIX_FULL=1 it also runs `nix flake check` (needs network access
# to github.com for nixpkgs and rust-overlay, and a nix with flakes).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "check-nix: FAIL: $*" >&2; exit 1; }

command -v nix-instantiate >/dev/null || die "nix-instantiate not found (Debian: apt-get install nix-bin)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/conf" "$tmp/state" "$tmp/log" "$tmp/home"
: > "$tmp/conf/nix.conf"
export NIX_CONF_DIR="$tmp/conf"
export NIX_USER_CONF_FILES="$tmp/conf/nix.conf"
export NIX_STATE_DIR="$tmp/state"
export NIX_LOG_DIR="$tmp/log"
export HOME="$tmp/home"
export XDG_CONFIG_HOME="$tmp/home/.config"
export XDG_CACHE_HOME="$tmp/home/.cache"
unset NIX_PATH NIX_REMOTE

# Prefer the dummy store (no /nix needed); fall back to the default store for
# a nix too old to know it.
store=(--store dummy://)
if ! nix-instantiate "${store[@]}" --eval -E 'true' >/dev/null 2>&1; then
  store=()
fi
ni() { nix-instantiate "${store[@]}" "$@"; }

echo "check-nix: $(nix-instantiate --version)"

# 1. parse
files=(flake.nix)
while IFS= read -r -d '' f; do files+=("$f"); done < <(find nix -name '*.nix' -type f -print0 | sort -z)
[ -f flake.nix ] || die "flake.nix missing"
for f in "${files[@]}"; do
  if ! out="$(ni --parse "$f" 2>&1 >/dev/null)"; then
    echo "$out" >&2
    die "$f does not parse"
  fi
  echo "check-nix: ok   parse $f"
done

# 2./3. evaluate the test files; each must print exactly `true`.
for t in nix/tests.nix nix/flake-tests.nix; do
  [ -f "$t" ] || die "$t missing"
  if ! out="$(ni --eval --strict "$t" 2>&1)"; then
    echo "$out" >&2
    die "$t does not evaluate"
  fi
  [ "$out" = "true" ] || die "$t evaluated to '$out', want 'true'"
  echo "check-nix: ok   eval  $t"
done

if [ "${PERFLAB_NIX_FULL:-0}" = "1" ]; then
  command -v nix >/dev/null || die "nix not found for PERFLAB_NIX_FULL=1"
  unset NIX_CONF_DIR NIX_USER_CONF_FILES NIX_STATE_DIR NIX_LOG_DIR
  nix --extra-experimental-features 'nix-command flakes' flake check --print-build-logs \
    || die "nix flake check"
  echo "check-nix: ok   nix flake check"
fi

echo "check-nix: all ${#files[@]} files parse; nix/tests.nix and nix/flake-tests.nix evaluate to true"
