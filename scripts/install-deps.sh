#!/bin/sh
# Installs, from Debian/Ubuntu packages, every program perflab's drivers and tests use.
# Run as root (or with sudo). Safe to run again.
#
#   local driver:  nginx wrk haproxy util-linux (taskset) curl
#   flame graphs:  linux-perf (Debian) / linux-tools-generic (Ubuntu)
#   kong:          postgresql
#   docker driver: docker.io (start it with scripts/start-dockerd.sh)
#   terraform:     openssh-server openssh-client iproute2 (terraform itself: HashiCorp's package)
#   nix checks:    nix-bin
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
base="nginx-light wrk haproxy util-linux curl procps iproute2 git ca-certificates"
extra="postgresql openssh-server openssh-sftp-server openssh-client docker.io nix-bin librsvg2-bin"
perf=linux-perf
if ! apt-cache show linux-perf >/dev/null 2>&1; then
    perf="linux-tools-common linux-tools-generic"
fi
if [ "${1:-}" = "--minimal" ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq -o DPkg::Lock::Timeout=120 $base
else
    # shellcheck disable=SC2086
    apt-get install -y -qq -o DPkg::Lock::Timeout=120 $base $extra $perf
fi
echo "perflab: dependencies installed"
