#!/bin/sh
# systemd_unit.sh: contrib/systemd/ksv-engine.service passes `systemd-analyze verify`, with
# ExecStart pointed at this build's ksv-engine (verify checks the binary exists), and the
# command line it runs is one this ksv-engine accepts (--help lists every option it uses).
# Skips (77) where systemd-analyze is not installed.
set -u
srcdir=${KSV_SRCDIR:-$(dirname "$0")/..}
engine=${KSV_ENGINE:-$(pwd)/src/ksv-engine}
command -v systemd-analyze >/dev/null 2>&1 || { echo "no systemd-analyze: skipping"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
unit="$tmp/ksv-engine.service"
sed "s|/usr/local/bin/ksv-engine|$engine|" "$srcdir/contrib/systemd/ksv-engine.service" >"$unit"
out=$(systemd-analyze verify "$unit" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "FAIL systemd-analyze verify: rc $rc: $out"
    exit 1
fi
echo "ok   systemd-analyze verify accepts the unit"
for opt in $(sed -n 's/^ExecStart=[^ ]*//p' "$unit" | tr ' ' '\n' | grep '^--'); do
    "$engine" --help | grep -q -- "$opt" || { echo "FAIL ksv-engine has no $opt"; exit 1; }
done
echo "ok   ksv-engine takes every option the unit passes"
