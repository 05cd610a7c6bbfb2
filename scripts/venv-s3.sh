#!/bin/sh
# venv-s3.sh: an S3-compatible server for the storage tests: moto's server mode (and boto3,
# which the tests use to create credentials and objects through moto's own IAM and S3
# APIs), in ${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-s3 (made once, reused;
# scripts/venv.sh). Prints the venv's python on stdout; exits 1 (with the reason on
# stderr) when it cannot be made, e.g. without access to PyPI.
set -eu
. "$(dirname "$0")/venv.sh"
ksv_venv "$(ksv_venv_dir s3)" .ksv-complete-1 --quiet 'moto[server]' boto3
