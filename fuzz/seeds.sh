#!/bin/sh
# fuzz/seeds.sh SRCDIR OUTDIR: the seed corpus of each harness, from data/ and tests/,
# one folder per harness under OUTDIR (OUTDIR/fuzz_v2_decode/...). Model and manifest seeds
# carry the harnesses' one-byte selector in front (fuzz_manifest: even = YAML, odd = JSON;
# fuzz_model_forest: even = JSON, odd = UBJSON).
set -eu
src=$1 out=$2
mkdir -p "$out"
seed() { # seed HARNESS NAME [PREFIX_BYTE] < content
    d="$out/$1"; mkdir -p "$d"
    if [ $# -ge 3 ]; then { printf "$3"; cat; } > "$d/$2"; else cat > "$d/$2"; fi
}
for f in "$src"/data/requests/*.json; do
    case $f in
    *.v1.json) seed fuzz_v1_decode "$(basename "$f")" < "$f" ;;
    *) seed fuzz_v2_decode "$(basename "$f")" < "$f" ;;
    esac
done
for f in "$src"/data/manifests/*.yaml "$src"/tests/manifests/*.yaml; do
    seed fuzz_manifest "y-$(basename "$f")" '\000' < "$f"
done
for f in "$src"/tests/manifests/*.json; do
    seed fuzz_manifest "j-$(basename "$f")" '\001' < "$f"
done
seed fuzz_prom_text engine-metrics.txt < "$src/tests/data/engine-metrics.txt"
printf '{"series":[{"model":"m","revision":"m-00001","codes":{"200":3,"503":1},"histogram":{"buckets":[[1,2],[5,1]],"count":3,"sum":0.004}}]}' |
    seed fuzz_histograms_json one-series.json
printf 'Host edge\n  HostName 10.0.0.7\n  User ops\n  Port 2222\n  IdentityFile ~/.ssh/id_ed25519\n\nHost *\n  User root\n' |
    seed fuzz_ssh_config config
printf 'ssh://ops@[::1]:2222/' | seed fuzz_ssh_config address
# Small models only: the fuzzer mutates what it is given, and big seeds slow every run.
for m in iris linear softmax; do
    seed fuzz_model_forest "$m.json" '\000' < "$src/data/models/$m/model.json"
done
seed fuzz_model_forest iris.ubj '\001' < "$src/data/models/iris-ubj/model.ubj"
printf '{"models":[{"name":"iris","revisions":[{"name":"iris-00001","runtime":"ksv-forest","storage_uri":"/m/iris/model.json","settings":{"timeout_ms":100,"container_concurrency":4}}],"traffic":{"iris-00001":100},"rollback_window_s":600}]}' |
    seed fuzz_applied_state state.json
