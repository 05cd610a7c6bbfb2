#!/bin/sh
# venv-s3.sh: an S3-compatible server for the storage tests: moto's server mode (and boto3,
# which the tests use to create credentials and objects through moto's own IAM and S3
# APIs). It lives in a virtual environment outside the source tree, made once per machine
# and reused:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-s3
# Prints the venv's python on stdout; exits 1 (with the reason on stderr) when it cannot be
# made, e.g. without access to PyPI. Building ksv never needs this.
set -eu
venv="${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-s3"
stamp="$venv/.ksv-complete-1"
if [ ! -f "$stamp" ]; then
    lock="$venv.lock"
    mkdir -p "$(dirname "$venv")"
    # One installer at a time: concurrent tests wait for the first one's venv.
    exec 9>"$lock"
    flock 9
    if [ ! -f "$stamp" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' boto3 >&2
        touch "$stamp"
    fi
fi
echo "$venv/bin/python"
