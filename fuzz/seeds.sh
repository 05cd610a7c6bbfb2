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
# LightGBM text models (no selector byte): categorical bitsets, multiclass, zero-as-missing.
for f in "$src"/tests/data/lightgbm/*.txt; do
    seed fuzz_model_lightgbm "$(basename "$f")" < "$f"
done
printf '{"models":[{"name":"iris","revisions":[{"name":"iris-00001","runtime":"ksv-forest","storage_uri":"/m/iris/model.json","settings":{"timeout_ms":100,"container_concurrency":4}}],"traffic":{"iris-00001":100},"rollback_window_s":600}]}' |
    seed fuzz_applied_state state.json
# known_hosts: plain, [host]:port, hashed (|1|salt|HMAC-SHA1 of "edge"), comma list, a
# marker line, a comment; the harness presents the ed25519 key of the first line.
k1=AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g
k2=AAAAC3NzaC1lZDI1NTE5AAAAICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9A
printf '# hosts\nedge ssh-ed25519 %s\n[10.0.0.7]:2222 ssh-ed25519 %s\n' "$k1" "$k2" |
    seed fuzz_known_hosts plain
printf '|1|AAECAwQFBgcICQoLDA0ODxAREhM=|a0Wv+v/40jmk19iauoZydADqL/0= ssh-ed25519 %s\n' "$k1" |
    seed fuzz_known_hosts hashed
printf 'a,edge,[10.0.0.7]:2222 ssh-ed25519 %s comment\n@cert-authority * ssh-ed25519 %s\n' \
    "$k2" "$k1" | seed fuzz_known_hosts list
# Binary tensors: two bytes of header length (little-endian), the JSON header, the tensors.
binary_seed() { # NAME HEADER TENSOR-BYTES (printf escapes)
    n=${#2}
    { printf "\\$(printf %03o $((n % 256)))\\$(printf %03o $((n / 256)))"; printf '%s' "$2"
      printf "$3"; } | seed fuzz_v2_binary "$1"
}
binary_seed fp32 '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}' \
    '\000\000\200\077\000\000\000\100\000\000\100\100\000\000\200\100'
binary_seed fp16-bool '{"inputs":[{"name":"a","shape":[2],"datatype":"FP16","parameters":{"binary_data_size":4}},{"name":"b","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}}]}' \
    '\000\074\000\300\001\000'
binary_seed int64-json '{"inputs":[{"name":"a","shape":[1],"datatype":"INT64","parameters":{"binary_data_size":8}},{"name":"b","shape":[1,2],"datatype":"FP64","data":[1.5,2]}]}' \
    '\377\377\377\377\377\377\377\177'
# ksv-xgboost model files: the first byte picks the extension (0 .bst, 1 .json, 2 .ubj).
seed fuzz_model_xgboost iris.bst '\000' < "$src/data/models/iris-bst/model.bst"
seed fuzz_model_xgboost linear.json '\001' < "$src/data/models/linear/model.json"
seed fuzz_model_xgboost softmax.json '\001' < "$src/data/models/softmax/model.json"
seed fuzz_model_xgboost iris.ubj '\002' < "$src/data/models/iris-ubj/model.ubj"
# What the harnesses found once, kept as seeds so every run replays it (the selector byte is
# already in front): tests/data/fuzz/HARNESS-SUFFIX-what.ext, e.g. model_xgboost-*.
for f in "$src"/tests/data/fuzz/model_xgboost-*; do
    seed fuzz_model_xgboost "$(basename "$f")" < "$f"
done
for f in "$src"/tests/data/fuzz/model_lightgbm-*; do
    seed fuzz_model_lightgbm "$(basename "$f")" < "$f"
done
# Storage URIs with credentials: presigned, userinfo, fragment, ssh (selector byte: 0, the
# harness's full buffer; 40, a cut).
printf 'https://u:pw@b.s3.amazonaws.com/m/model.json?X-Amz-Credential=AKIA%%2Fx&X-Amz-Signature=abc&&e=#frag' |
    seed fuzz_uri_redact presigned '\000'
printf 'see https://h/p?sig=s, then ssh://ops@[::1]:22/ and x://a:b@c' | seed fuzz_uri_redact text '\050'
