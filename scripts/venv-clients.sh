#!/bin/sh
# venv-clients.sh: the Python clients the data-plane tests drive ksv-engine with, unchanged
# from PyPI: NVIDIA's tritonclient (HTTP) and the KServe SDK's REST client, in
# ${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-clients (made once, reused; scripts/venv.sh).
# Prints the venv's python on stdout; exits 1 (with the reason on stderr) when it cannot be
# made, e.g. without access to PyPI.
set -eu
. "$(dirname "$0")/venv.sh"
# Pinned: the versions the tests were written against (a newer client is a new test run,
# not a surprise in CI). A new pin needs a new stamp name.
ksv_venv "$(ksv_venv_dir clients)" .ksv-complete-1 --quiet \
    'tritonclient[http]==2.73.0' 'kserve==0.21.0' numpy
