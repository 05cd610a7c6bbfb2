#!/bin/sh
# venv.sh: the one way ksv's scripts make a Python virtual environment, always outside the
# source tree and cached per machine (venv-clients.sh, venv-s3.sh; the external runtimes).
# Building ksv never needs one. Source it from a script in scripts/, then:
#
#   ksv_venv_dir PURPOSE    prints ${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-PURPOSE
#   ksv_venv_lock DIR       one installer at a time per DIR (flock on DIR.lock, fd 9,
#                           held until the script exits): concurrent callers wait
#   ksv_venv_install DIR STAMP PIP_ARG...
#                           makes DIR when it has no python (Debian's python3 first,
#                           python3-venv installed when missing) and pip-installs PIP_ARG...
#                           once: DIR/STAMP marks a finished install, so later calls cost
#                           nothing; name a new STAMP when the packages change
#   ksv_venv DIR STAMP PIP_ARG...
#                           lock, install, then print DIR/bin/python on stdout
#
# Everything but that path goes to stderr. A failure (no PyPI, say) returns non-zero with
# pip's reason on stderr; callers that cannot go on without the venv say so and skip.

ksv_venv_dir() {
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-$1"
}

ksv_venv_lock() {
    mkdir -p "$(dirname "$1")"
    exec 9>"$1.lock"
    if ! flock -n 9; then
        echo "ksv: another install into $1 is running; waiting for it" >&2
        flock 9
    fi
}

# A python3 that can make a virtual environment: Debian's own first (what a clean Debian
# 12 has), then whatever python3 is on PATH.
ksv_venv_python() {
    for py in /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import venv, ensurepip' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

ksv_venv_install() {
    ksv_venv_d=$1 ksv_venv_stamp=$2
    shift 2
    [ -f "$ksv_venv_d/$ksv_venv_stamp" ] && return 0
    if [ ! -x "$ksv_venv_d/bin/python" ]; then
        ksv_venv_py=$(ksv_venv_python) || {
            . "$(dirname "$0")/deps.sh"
            ksv_install_deps python3-venv >&2
            ksv_venv_py=$(ksv_venv_python)
        } || return 1
        echo "ksv: creating the virtual environment $ksv_venv_d ($ksv_venv_py)" >&2
        "$ksv_venv_py" -m venv "$ksv_venv_d" >&2 || return 1
    fi
    "$ksv_venv_d/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
        "$@" >&2 || return 1
    touch "$ksv_venv_d/$ksv_venv_stamp"
}

ksv_venv() {
    ksv_venv_lock "$1"
    ksv_venv_install "$@" || return 1
    echo "$1/bin/python"
}
