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
#   html report:   chromium (headless; the browser test of report.html)
#
#   --minimal      only the local driver's programs
#   --kong         also what building Kong from source needs (docs/kong-from-source.md): a C/C++
#                  toolchain, the C libraries Kong links (OpenSSL, PCRE2, expat, yaml, zlib,
#                  snappy), protobuf's .proto files, and the tools of the build (perl, patch,
#                  python3, jq, unzip, pkg-config). Not part of the default install.
set -eu
minimal=no
kong=no
for arg in "$@"; do
    case $arg in
    --minimal) minimal=yes ;;
    --kong) kong=yes ;;
    *)
        echo "usage: $0 [--minimal] [--kong]" >&2
        exit 2
        ;;
    esac
done
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
base="nginx-light wrk haproxy util-linux curl procps iproute2 git ca-certificates"
extra="chromium postgresql openssh-server openssh-sftp-server openssh-client docker.io docker-registry nix-bin librsvg2-bin"
perf=linux-perf
if ! apt-cache show linux-perf >/dev/null 2>&1; then
    perf="linux-tools-common linux-tools-generic"
fi
kong_build="build-essential pkg-config perl patch python3 jq unzip libssl-dev libpcre2-dev libexpat1-dev libyaml-dev zlib1g-dev libsnappy-dev libprotobuf-dev"
if [ "$minimal" = yes ]; then
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
if [ "$kong" = yes ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq -o DPkg::Lock::Timeout=120 $kong_build
fi
echo "perflab: dependencies installed"
