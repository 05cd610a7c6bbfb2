#!/bin/sh
# deps.sh: installs the Debian packages ksv needs to build and test that are missing
# (through sudo when not root). Sourced by demo.sh and test.sh; safe to run alone.
set -eu
KSV_BUILD_DEPS="build-essential autoconf automake pkg-config \
 libmicrohttpd-dev libjson-c-dev libcurl4-openssl-dev libsqlite3-dev libncurses-dev \
 libssh2-1-dev libyaml-dev libxgboost-dev libarchive-dev libssl-dev"
KSV_RUN_DEPS="curl python3"
KSV_TEST_DEPS="tmux procps systemd openssh-server openssh-client prometheus clang libclang-rt-14-dev python3-xgboost"

ksv_install_deps() {
    missing=""
    for p in $KSV_BUILD_DEPS $KSV_RUN_DEPS "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "ksv: installing Debian packages:$missing"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
}

# ksv_build [BUILD_DIR [CONFIGURE_ARGS...]]: configures (once) and builds out of tree.
ksv_build() {
    top=$(cd "$(dirname "$0")/.." && pwd)
    build=${1:-$top/build}
    [ $# -gt 0 ] && shift
    [ -x "$top/configure" ] || (cd "$top" && mkdir -p m4 && autoreconf -fi >/dev/null 2>&1)
    mkdir -p "$build"
    if [ ! -f "$build/Makefile" ]; then
        (cd "$build" && "$top/configure" -q "$@")
    fi
    make -C "$build" -j"$(nproc)" >/dev/null
}

if [ "$(basename "$0")" = "deps.sh" ]; then
    ksv_install_deps $KSV_TEST_DEPS
fi
