#!/bin/sh
# Installs, from Debian/Ubuntu packages, every program perflab's drivers and tests use.
# Run as root (or with sudo). Safe to run again.
#
#   local driver:  nginx wrk haproxy util-linux (taskset) curl
#   flame graphs:  linux-perf (Debian) / linux-tools-generic (Ubuntu)
#   kong:          postgresql
#   docker driver: docker.io (start it with scripts/start-dockerd.sh); docker-registry (the
#                  tests pull `image:` versions from a registry they run on loopback)
#   terraform:     openssh-server openssh-client iproute2 (terraform itself: HashiCorp's package)
#   nix checks:    nix-bin
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
base="nginx-light wrk haproxy util-linux curl procps iproute2 git ca-certificates"
extra="postgresql openssh-server openssh-sftp-server openssh-client docker.io docker-registry nix-bin librsvg2-bin"
perf=linux-perf
if ! apt-cache show linux-perf >/dev/null 2>&1; then
    perf="linux-tools-common linux-tools-generic"
fi
if [ "${1:-}" = "--minimal" ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq -o DPkg::Lock::Timeout=120 $base
else
    had_registry=no
    dpkg -s docker-registry >/dev/null 2>&1 && had_registry=yes
    # shellcheck disable=SC2086
    apt-get install -y -qq -o DPkg::Lock::Timeout=120 $base $extra $perf
    # The package enables a registry service on port 5000 where systemd runs; the tests start
    # their own on loopback, so a registry this script brought in is switched off again.
    if [ "$had_registry" = no ] && command -v systemctl >/dev/null 2>&1 &&
        systemctl is-enabled docker-registry >/dev/null 2>&1; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
fi
echo "perflab: dependencies installed"
