#!/bin/sh
# venv-lightgbm.sh: LightGBM from PyPI for the tests that compare ksv-forest's LightGBM
# answers with LightGBM's own Booster.predict (tests/engine_lightgbm.py), in
# ${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-lightgbm (made once, reused; scripts/venv.sh).
# Prints the venv's python on stdout; exits 1 (with the reason on stderr) when it cannot be
# made, e.g. without access to PyPI. Building or running ksv never needs it.
set -eu
. "$(dirname "$0")/venv.sh"
# Pinned: the versions the tests were written against. A new pin needs a new stamp name.
ksv_venv "$(ksv_venv_dir lightgbm)" .ksv-complete-1 --quiet 'lightgbm==4.7.0' 'numpy==2.4.6'
