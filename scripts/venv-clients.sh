#!/bin/sh
# venv-clients.sh: the Python clients the data-plane tests drive ksv-engine with, unchanged
# from PyPI: NVIDIA's tritonclient (HTTP) and the KServe SDK's REST client. They live in a
# virtual environment outside the source tree, made once per machine and reused:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-clients
# Prints the venv's python on stdout; exits 1 (with the reason on stderr) when it cannot be
# made, e.g. without access to PyPI. Building ksv never needs this.
set -eu
venv="${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-clients"
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
        # Pinned: the versions the tests were written against (a newer client is a new
        # test run, not a surprise in CI).
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            'tritonclient[http]==2.73.0' 'kserve==0.21.0' numpy >&2
        touch "$stamp"
    fi
fi
echo "$venv/bin/python"
