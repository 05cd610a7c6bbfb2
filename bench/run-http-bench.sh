#!/usr/bin/env bash
# run-http-bench.sh: side-by-side HTTP benchmark of ksv-engine against FastAPI, MLServer, nginx.
#
# Same machine, same run, same request bytes: wrk (closed loop, -t2 -c32 by default) POSTs a
# 1-row and a 64-row V2 infer body to each server in turn, after curl has checked that every
# server answers 200 with XGBoost's own predictions (within 1e-6). Then a fixed-rate run at half
# of ksv-engine's measured 1-row peak measures the latency a server shows when it is not
# saturated, with bench/http/openloop.c (wrk2's method; Debian has no wrk2).
#
# Peers:
#   ksv        ./src/ksv-engine --model fraud=MODEL (skipped with a message when not built)
#   fastapi    bench/http/fastapi_v2.py under uvicorn, 1 worker and 2 workers (Debian python)
#   mlserver   MLServer + mlserver-xgboost from bench/.venv (pip-installed on first use when the
#              package index is reachable; skipped with a message otherwise)
#   nginx      a fixed 200 with the same answer bytes: the ceiling for any HTTP server here
#
# Usage: bench/run-http-bench.sh [options]       (run from anywhere; see --help)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HTTP_DIR="$ROOT/bench/http"

MODEL="data/models/fraud/model.json"
ENGINE="src/ksv-engine"
ENGINE_THREADS=""
ENGINE_RUNTIME="auto"
DURATION=10
WARMUP=2
THREADS=2
CONNECTIONS=32
PEERS="ksv,fastapi,mlserver,nginx"
ROWS="1,64"
VENV="bench/.venv"
INSTALL_MLSERVER=1
MLSERVER_WORKERS=""
MLSERVER_OMP=1
FASTAPI_PREDICT="dmatrix"
RATE_TARGET="ksv"
RATE=""
KEEP=0
SERVER_CPUS=
CLIENT_CPUS=
PY=/usr/bin/python3

usage() {
    cat <<EOF
usage: bench/run-http-bench.sh [options]
  --model PATH           XGBoost model (default $MODEL)
  --engine PATH          ksv-engine binary (default $ENGINE)
  --engine-threads N     ksv-engine --threads (default: the engine's own default)
  --engine-runtime R     ksv-engine runtime for the model: auto (default, as the engine),
                         ksv-forest or ksv-xgboost
  -d, --duration SECS    length of each measured wrk run (default $DURATION)
  --warmup SECS          unmeasured wrk run before each measured one (default $WARMUP)
  -t, --threads N        wrk threads (default $THREADS)
  -c, --connections N    wrk connections (default $CONNECTIONS)
  --peers LIST           comma list of ksv,fastapi,mlserver,nginx (default $PEERS)
  --rows LIST            request batch sizes (default $ROWS)
  --venv DIR             MLServer virtualenv (default $VENV)
  --no-install           do not pip-install MLServer when the venv lacks it
  --mlserver-workers N   MLServer parallel_workers (default: MLServer's own, 1)
  --mlserver-omp N       OMP_NUM_THREADS for MLServer's XGBoost, or "unset" (default 1: with
                         OpenMP's default of one thread per core its 1-row predict spins
                         against the HTTP process and is several times slower on 2 cores)
  --fastapi-predict M    dmatrix or inplace (default $FASTAPI_PREDICT)
  --rate-target NAME     server of the fixed-rate run: ksv, fastapi-1w, fastapi-2w, mlserver,
                         nginx, or none (default ksv; falls back to the first server measured
                         when ksv is absent, to show the method works)
  --rate RPS             fixed rate (default: half the target's measured 1-row req/s)
  --keep                 keep the work directory (bodies, answers, logs)
  --server-cpus LIST     pin every server to these CPUs (taskset -c LIST, e.g. 0)
  --client-cpus LIST     pin wrk and the open-loop client to these CPUs (e.g. 1): with both,
                         the clients stand in for another machine instead of taking the
                         servers' cores (say so when quoting the figures)
Paths are relative to the repository root. Every wait and run is bounded; every process
started is stopped by its process-group id on exit, Ctrl-C included.
EOF
}

die() { echo "run-http-bench: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --engine) ENGINE=$2; shift 2 ;;
    --engine-threads) ENGINE_THREADS=$2; shift 2 ;;
    --server-cpus) SERVER_CPUS=$2; shift 2 ;;
    --client-cpus) CLIENT_CPUS=$2; shift 2 ;;
    --engine-runtime) ENGINE_RUNTIME=$2; shift 2 ;;
    -d|--duration) DURATION=${2%s}; shift 2 ;;
    --warmup) WARMUP=${2%s}; shift 2 ;;
    -t|--threads) THREADS=$2; shift 2 ;;
    -c|--connections) CONNECTIONS=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --venv) VENV=$2; shift 2 ;;
    --no-install) INSTALL_MLSERVER=0; shift ;;
    --mlserver-workers) MLSERVER_WORKERS=$2; shift 2 ;;
    --mlserver-omp) MLSERVER_OMP=$2; shift 2 ;;
    --fastapi-predict) FASTAPI_PREDICT=$2; shift 2 ;;
    --rate-target) RATE_TARGET=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$DURATION" && [ "$DURATION" -gt 0 ] || die "--duration wants whole seconds > 0"
is_uint "$WARMUP" || die "--warmup wants whole seconds"
is_uint "$THREADS" && [ "$THREADS" -gt 0 ] || die "--threads wants a number > 0"
is_uint "$CONNECTIONS" && [ "$CONNECTIONS" -ge "$THREADS" ] || die "--connections must be >= --threads"
[ -z "$ENGINE_THREADS" ] || is_uint "$ENGINE_THREADS" || die "--engine-threads wants a number"
[ -z "$MLSERVER_WORKERS" ] || is_uint "$MLSERVER_WORKERS" || die "--mlserver-workers wants a number"
[ "$MLSERVER_OMP" = unset ] || is_uint "$MLSERVER_OMP" || die "--mlserver-omp wants a number or unset"
[ -z "$RATE" ] || is_uint "$RATE" || die "--rate wants a whole number of req/s"
[[ $ROWS =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--rows wants a comma list of numbers"
case "$FASTAPI_PREDICT" in dmatrix|inplace) ;; *) die "--fastapi-predict: dmatrix or inplace" ;; esac

cd "$ROOT"
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
MODEL=$(abspath "$MODEL")
ENGINE=$(abspath "$ENGINE")
VENV=$(abspath "$VENV")
IFS=, read -r -a ROW_LIST <<<"$ROWS"
want_peer() { [[ ",$PEERS," == *",$1,"* ]]; }

[ -f "$MODEL" ] || die "no model at $MODEL (--model PATH)"
for tool in wrk curl gcc setsid; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install wrk curl gcc util-linux)"
done
"$PY" -c 'import numpy, xgboost' 2>/dev/null || die "$PY needs numpy and xgboost (python3-xgboost)"

# ---------------------------------------------------------------------------------------
# process bookkeeping: every server runs in its own session, so its whole tree (uvicorn's
# and MLServer's worker processes included) is stopped through its process-group id.
WORK=$(mktemp -d /tmp/ksv-http-bench.XXXXXX)
GROUPS_STARTED=()
stop_group() {
    local pgid=$1 _
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
}
cleanup() {
    local pgid
    trap - EXIT INT TERM
    for pgid in "${GROUPS_STARTED[@]}"; do stop_group "$pgid"; done
    wait 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "run-http-bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

SERVER_PIN=() CLIENT_PIN=()
[ -n "$SERVER_CPUS" ] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[ -n "$CLIENT_CPUS" ] && CLIENT_PIN=(taskset -c "$CLIENT_CPUS")
if [ -n "$SERVER_CPUS$CLIENT_CPUS" ]; then
    command -v taskset >/dev/null || die "taskset is needed for --server-cpus/--client-cpus (util-linux)"
fi

# start_server NAME CMD...: runs CMD in a new session, output in $WORK/NAME.log.
# In a non-interactive shell a background job is no group leader, so setsid does not fork
# and $! is the server's pid and its process-group id.
start_server() {
    local name=$1; shift
    setsid "${SERVER_PIN[@]}" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
    SERVER_PID=$!
    GROUPS_STARTED+=("$SERVER_PID")
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready NAME PID URL SECONDS: polls URL until 200, the process dies, or time runs out.
wait_ready() {
    local name=$1 pid=$2 url=$3 limit=$4 start=$SECONDS
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "  $name exited while starting; last lines of its log:"
            tail -n 15 "$WORK/$name.log" | sed 's/^/    /'
            return 1
        fi
        if [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)" = 200 ]; then
            echo "  $name ready after $((SECONDS - start)) s"
            return 0
        fi
        sleep 0.5
    done
    echo "  $name not ready after $limit s; last lines of its log:"
    tail -n 15 "$WORK/$name.log" | sed 's/^/    /'
    return 1
}

# ---------------------------------------------------------------------------------------
echo "== HTTP benchmark: ksv-engine vs FastAPI, MLServer, nginx"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine:  $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model:    $MODEL"
echo "load:     wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s (after a ${WARMUP}s warmup) per server and batch size"
echo "work dir: $WORK"

"$PY" "$HTTP_DIR/make_bodies.py" --model "$MODEL" --out "$WORK" --rows "$ROWS" ||
    die "cannot write the request bodies"
gcc -std=gnu11 -O2 -Wall -Wextra -o "$WORK/openloop" "$HTTP_DIR/openloop.c" -lpthread ||
    die "cannot build bench/http/openloop.c"

# server order in the table; URL of each infer endpoint
SERVERS=()
declare -A URL LABEL
LABEL[ksv]="ksv-engine ($ENGINE_RUNTIME)"
LABEL[fastapi-1w]="FastAPI+uvicorn, 1 worker"
LABEL[fastapi-2w]="FastAPI+uvicorn, 2 workers"
LABEL[mlserver]="MLServer (mlserver-xgboost)"
LABEL[nginx]="nginx, fixed 200 (ceiling)"
INFER_PATH=/v2/models/fraud/infer

echo
echo "== starting servers"
if want_peer ksv; then
    if [ -x "$ENGINE" ]; then
        mkdir -p "$WORK/ksv-state"
        args=(--listen 127.0.0.1:0 --state-dir "$WORK/ksv-state" --model "fraud=$MODEL,runtime=$ENGINE_RUNTIME")
        [ -z "$ENGINE_THREADS" ] || args+=(--threads "$ENGINE_THREADS")
        echo "  ksv-engine: $ENGINE ${args[*]}"
        start_server ksv "$ENGINE" "${args[@]}"
        pid=$SERVER_PID
        start=$SECONDS
        while [ ! -s "$WORK/ksv-state/address" ] && [ $((SECONDS - start)) -lt 30 ] &&
            kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        if [ -s "$WORK/ksv-state/address" ] &&
            wait_ready ksv "$pid" "http://$(cat "$WORK/ksv-state/address")/v2/health/ready" 60; then
            URL[ksv]="http://$(cat "$WORK/ksv-state/address")$INFER_PATH"
            SERVERS+=(ksv)
        else
            echo "  ksv-engine did not come up; benchmarking the peers only"
            tail -n 15 "$WORK/ksv.log" | sed 's/^/    /'
        fi
    else
        echo "  ksv-engine: no executable at $ENGINE (build it first); benchmarking the peers only"
    fi
fi

if want_peer fastapi; then
    uv_impl=$("$PY" -c 'import importlib.util as u; print("uvloop" if u.find_spec("uvloop") else "asyncio", "httptools" if u.find_spec("httptools") else "h11")')
    echo "  FastAPI: uvicorn with ${uv_impl% *} loop and ${uv_impl#* } parser, XGBoost $("$PY" -c 'import xgboost; print(xgboost.__version__)') $FASTAPI_PREDICT predict"
    for workers in 1 2; do
        name=fastapi-${workers}w
        port=$(free_port)
        start_server "$name" "$PY" "$HTTP_DIR/fastapi_v2.py" --model "$MODEL" --port "$port" \
            --workers "$workers" --predict "$FASTAPI_PREDICT"
        if wait_ready "$name" "$SERVER_PID" "http://127.0.0.1:$port/v2/health/ready" 60; then
            URL[$name]="http://127.0.0.1:$port$INFER_PATH"
            SERVERS+=("$name")
        fi
    done
fi

if want_peer mlserver; then
    UVLOOP_PIN='uvloop<0.22'
    if [ ! -x "$VENV/bin/mlserver" ] && [ "$INSTALL_MLSERVER" = 1 ]; then
        echo "  MLServer: installing mlserver mlserver-xgboost into $VENV (bounded to 10 min)"
        py_for_venv=$(command -v python3)
        if { [ -x "$VENV/bin/pip" ] || timeout 120 "$py_for_venv" -m venv "$VENV"; } &&
            timeout 600 "$VENV/bin/pip" install -q mlserver mlserver-xgboost "$UVLOOP_PIN" \
                >"$WORK/pip.log" 2>&1; then
            echo "  MLServer: installed"
        else
            echo "  MLServer: pip install failed (no package index?); last lines:"
            tail -n 5 "$WORK/pip.log" 2>/dev/null | sed 's/^/    /'
        fi
    fi
    if [ -x "$VENV/bin/mlserver" ] &&
        ! "$VENV/bin/python" -c 'import uvloop, sys; sys.exit(tuple(map(int, uvloop.__version__.split(".")[:2])) >= (0, 22))' 2>/dev/null; then
        echo "  MLServer: its workers die with uvloop >= 0.22 (SeldonIO/MLServer#2286); installing $UVLOOP_PIN"
        timeout 300 "$VENV/bin/pip" install -q "$UVLOOP_PIN" >"$WORK/pip-uvloop.log" 2>&1 ||
            echo "  MLServer: could not install $UVLOOP_PIN; it will probably fail to load the model"
    fi
    if [ -x "$VENV/bin/mlserver" ]; then
        port=$(free_port); grpc=$(free_port); metrics=$(free_port)
        mkdir -p "$WORK/mlserver/fraud"
        {
            printf '{"host": "127.0.0.1", "http_port": %s, "grpc_port": %s, "metrics_port": %s,\n' \
                "$port" "$grpc" "$metrics"
            # debug=false turns uvicorn's access log off, as in the other servers
            printf ' "debug": false, "load_models_at_startup": true'
            [ -z "$MLSERVER_WORKERS" ] || printf ', "parallel_workers": %s' "$MLSERVER_WORKERS"
            printf '}\n'
        } >"$WORK/mlserver/settings.json"
        printf '{"name": "fraud", "implementation": "mlserver_xgboost.XGBoostModel",\n "parameters": {"uri": "%s"}}\n' \
            "$MODEL" >"$WORK/mlserver/fraud/model-settings.json"
        echo "  MLServer $("$VENV/bin/pip" show mlserver 2>/dev/null | sed -n 's/^Version: //p') (XGBoost $("$VENV/bin/python" -c 'import xgboost; print(xgboost.__version__)' 2>/dev/null)), parallel_workers ${MLSERVER_WORKERS:-default}, OMP_NUM_THREADS $MLSERVER_OMP"
        if [ "$MLSERVER_OMP" = unset ]; then
            start_server mlserver "$VENV/bin/mlserver" start "$WORK/mlserver"
        else
            start_server mlserver env OMP_NUM_THREADS="$MLSERVER_OMP" "$VENV/bin/mlserver" start "$WORK/mlserver"
        fi
        if wait_ready mlserver "$SERVER_PID" "http://127.0.0.1:$port/v2/models/fraud/ready" 180; then
            URL[mlserver]="http://127.0.0.1:$port$INFER_PATH"
            SERVERS+=(mlserver)
        fi
    else
        echo "  MLServer: not installed in $VENV; skipped"
    fi
fi

# ---------------------------------------------------------------------------------------
echo
echo "== checking answers (curl; XGBoost's own predictions within 1e-6)"
declare -A CHECK_FAILED=()
check_server() {
    local name=$1 rows code args=()
    for rows in "${ROW_LIST[@]}"; do
        code=$(curl -s -m 30 -o "$WORK/answer-$name-$rows.json" -w '%{http_code}' \
            -H 'Content-Type: application/json' --data-binary "@$WORK/req-$rows.json" \
            "${URL[$name]}" || true)
        if [ "$code" != 200 ]; then
            echo "  FAIL $name ($rows rows): HTTP $code: $(head -c 300 "$WORK/answer-$name-$rows.json" 2>/dev/null)"
            CHECK_FAILED[$name]=1
            continue
        fi
        "$PY" "$HTTP_DIR/check_responses.py" "$WORK/expected-$rows.json" \
            "$name ($rows rows)=$WORK/answer-$name-$rows.json" || CHECK_FAILED[$name]=1
    done
}
for name in "${SERVERS[@]}"; do check_server "$name"; done

if want_peer nginx; then
    # nginx returns the reference server's answers: ksv-engine's when it runs
    reference=""
    for name in "${SERVERS[@]}"; do
        [ -n "${CHECK_FAILED[$name]:-}" ] || { reference=$name; break; }
    done
    if [ -z "$reference" ]; then
        echo "  nginx: skipped (no server gave a correct answer to copy)"
    elif ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
        echo "  nginx: not installed (apt-get install nginx-light); skipped"
    else
        nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
        port=$(free_port)
        mkdir -p "$WORK/nginx"
        body_1=$(tr -d '\r\n' <"$WORK/answer-$reference-${ROW_LIST[0]}.json")
        body_64=$(tr -d '\r\n' <"$WORK/answer-$reference-${ROW_LIST[${#ROW_LIST[@]}-1]}.json")
        length_64=$(stat -c %s "$WORK/req-${ROW_LIST[${#ROW_LIST[@]}-1]}.json")
        if [[ $body_1$body_64 == *[\'\$\\]* ]]; then
            echo "  nginx: skipped (the reference answer holds ' \$ or \\, which the config cannot quote)"
        else
            esc() { printf '%s' "$1" | sed -e 's/[&|]/\\&/g'; }
            sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@PORT@|$port|g" \
                -e "s|@BODY_1@|$(esc "$body_1")|" -e "s|@BODY_64@|$(esc "$body_64")|" \
                -e "s|@LENGTH_64@|$length_64|" "$HTTP_DIR/nginx.conf" >"$WORK/nginx/nginx.conf"
            echo "  nginx $("$nginx_bin" -v 2>&1 | sed 's|.*/||'), answering $reference's bytes, worker_processes auto"
            start_server nginx "$nginx_bin" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;'
            if wait_ready nginx "$SERVER_PID" "http://127.0.0.1:$port/" 10; then
                URL[nginx]="http://127.0.0.1:$port$INFER_PATH"
                SERVERS+=(nginx)
                check_server nginx
            fi
        fi
    fi
fi

MEASURED=()
for name in "${SERVERS[@]}"; do
    if [ -n "${CHECK_FAILED[$name]:-}" ]; then
        echo "  $name gave a wrong answer: not measured"
    else
        MEASURED+=("$name")
    fi
done
[ ${#MEASURED[@]} -gt 0 ] || die "no server to measure"

# ---------------------------------------------------------------------------------------
echo
echo "== measuring (each server alone; the others idle)"
declare -A RPS P50 P99 NOTE
fmt_us() { awk -v u="$1" 'BEGIN { if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%d us", u }'; }
kv() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
for name in "${MEASURED[@]}"; do
    for rows in "${ROW_LIST[@]}"; do
        export KSV_BENCH_BODY="$WORK/req-$rows.json"
        if [ "$WARMUP" -gt 0 ]; then
            timeout $((WARMUP + 30)) "${CLIENT_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" \
                -s "$HTTP_DIR/post.lua" "${URL[$name]}" >/dev/null 2>&1 || true
        fi
        log="$WORK/wrk-$name-$rows.txt"
        timeout $((DURATION + 30)) "${CLIENT_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
            --timeout 10s -s "$HTTP_DIR/post.lua" "${URL[$name]}" >"$log" 2>&1 || true
        line=$(grep '^KSVBENCH ' "$log" || true)
        if [ -z "$line" ]; then
            echo "  $name, $rows rows: wrk failed:"; sed 's/^/    /' "$log"
            continue
        fi
        RPS[$name,$rows]=$(kv rps "$line")
        P50[$name,$rows]=$(kv p50_us "$line")
        P99[$name,$rows]=$(kv p99_us "$line")
        bad=$(( $(kv non2xx "$line") + $(kv socket_errors "$line") ))
        [ "$bad" = 0 ] || NOTE[$name,$rows]="$bad errors"
        printf '  %-28s %3s rows: %8.0f req/s  P50 %-9s  P99 %-9s %s\n' "${LABEL[$name]}" "$rows" \
            "${RPS[$name,$rows]}" "$(fmt_us "${P50[$name,$rows]}")" "$(fmt_us "${P99[$name,$rows]}")" \
            "${NOTE[$name,$rows]:-}"
    done
done

# ksv-engine again with the same rows as binary tensor data (the clients' default mode)
declare -A RPSB P50B P99B
if [[ " ${MEASURED[*]} " == *" ksv "* ]]; then
    for rows in "${ROW_LIST[@]}"; do
        export KSV_BENCH_BODY="$WORK/req-$rows.bin" KSV_BENCH_HEADER_LEN
        KSV_BENCH_HEADER_LEN=$(cat "$WORK/req-$rows.bin.hlen")
        code=$(curl -s -o "$WORK/answer-bin-$rows" -w '%{http_code}' --max-time 10 \
            -H 'Content-Type: application/octet-stream' \
            -H "Inference-Header-Content-Length: $KSV_BENCH_HEADER_LEN" \
            --data-binary @"$KSV_BENCH_BODY" "${URL[ksv]}" || true)
        if [ "$code" != 200 ]; then
            echo "  ksv-engine binary, $rows rows: answered $code; not measured"
            unset KSV_BENCH_HEADER_LEN
            continue
        fi
        if [ "$WARMUP" -gt 0 ]; then
            timeout $((WARMUP + 30)) "${CLIENT_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" \
                -s "$HTTP_DIR/post.lua" "${URL[ksv]}" >/dev/null 2>&1 || true
        fi
        log="$WORK/wrk-ksv-bin-$rows.txt"
        timeout $((DURATION + 30)) "${CLIENT_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
            --timeout 10s -s "$HTTP_DIR/post.lua" "${URL[ksv]}" >"$log" 2>&1 || true
        unset KSV_BENCH_HEADER_LEN
        line=$(grep '^KSVBENCH ' "$log" || true)
        [ -n "$line" ] || { echo "  ksv-engine binary, $rows rows: wrk failed"; continue; }
        RPSB[$rows]=$(kv rps "$line")
        P50B[$rows]=$(kv p50_us "$line")
        P99B[$rows]=$(kv p99_us "$line")
        printf '  %-28s %3s rows: %8.0f req/s  P50 %-9s  P99 %-9s\n' "ksv-engine, binary tensors" \
            "$rows" "${RPSB[$rows]}" "$(fmt_us "${P50B[$rows]}")" "$(fmt_us "${P99B[$rows]}")"
    done
fi

# fixed-rate run: half of the target's 1-row peak, open loop
RATE_LINE=""
first_rows=${ROW_LIST[0]}
if [ "$RATE_TARGET" != none ]; then
    target=""
    if [ -n "${RPS[$RATE_TARGET,$first_rows]:-}" ]; then
        target=$RATE_TARGET
    elif [ "$RATE_TARGET" = ksv ] && [ ${#MEASURED[@]} -gt 0 ] &&
        [ -n "${RPS[${MEASURED[0]},$first_rows]:-}" ]; then
        target=${MEASURED[0]}
        echo
        echo "  (no ksv-engine figure: the fixed-rate run goes to $target instead, to show the method)"
    fi
    if [ -n "$target" ]; then
        rate=${RATE:-$(awk -v r="${RPS[$target,$first_rows]}" 'BEGIN { printf "%d", r / 2 }')}
        [ "$rate" -ge 1 ] || rate=1
        echo
        echo "== fixed rate: $rate req/s, $first_rows row, to $target (open loop: bench/http/openloop.c)"
        out=$(timeout $((DURATION + 40)) "${CLIENT_PIN[@]}" "$WORK/openloop" -u "${URL[$target]}" \
            -b "$WORK/req-$first_rows.json" -r "$rate" -d "$DURATION" -w 1 \
            -c "$CONNECTIONS" -t "$THREADS" 2>&1 || true)
        echo "  $out"
        if [[ $out == openloop:* ]]; then
            p99=$(kv p99_us "$out")
            RATE_LINE=$(printf '%s at %s req/s (%s), %s row, open loop: P50 %s, P99 %s, P99.9 %s, errors %s' \
                "${LABEL[$target]}" "$rate" "$([ -n "$RATE" ] && echo "as asked" || echo "half its peak")" "$first_rows" \
                "$(fmt_us "$(kv p50_us "$out")")" "$(fmt_us "$p99")" \
                "$(fmt_us "$(kv p999_us "$out")")" "$(( $(kv errors "$out") + $(kv unfinished "$out") ))")
            [ "$target" != ksv ] || RATE_LINE+=$(awk -v p="$p99" 'BEGIN { print (p < 1000) ? "  [target P99 < 1 ms: met]" : "  [target P99 < 1 ms: NOT met]" }')
        fi
    fi
fi

# ---------------------------------------------------------------------------------------
echo
echo "== results: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) CPUs${SERVER_CPUS:+, servers on CPU $SERVER_CPUS}${CLIENT_CPUS:+, clients on CPU $CLIENT_CPUS}, load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server | rows | req/s | P50 | P99 |"
echo "|---|---:|---:|---:|---:|"
for name in "${MEASURED[@]}"; do
    for rows in "${ROW_LIST[@]}"; do
        [ -n "${RPS[$name,$rows]:-}" ] || continue
        printf '| %s | %s | %.0f | %s | %s |%s\n' "${LABEL[$name]}" "$rows" "${RPS[$name,$rows]}" \
            "$(fmt_us "${P50[$name,$rows]}")" "$(fmt_us "${P99[$name,$rows]}")" \
            "${NOTE[$name,$rows]:+ ${NOTE[$name,$rows]}}"
    done
done

# ratio A B: "2.50x" (or "0.40 = 40%" with a third argument "pct"); "n/a" when B is missing
ratio() {
    awk -v a="$1" -v b="$2" -v pct="${3:-}" 'BEGIN {
        if (b <= 0) printf "n/a (not measured)";
        else if (pct != "") printf "%.2f (%.0f%%)", a / b, 100 * a / b;
        else printf "%.2fx", a / b }'
}
echo
if [ -n "${RPS[ksv,$first_rows]:-}" ]; then
    echo "ratios of req/s (targets: 1 row >= 10x FastAPI 2 workers and >= 0.60 of nginx; 64 rows >= 6x FastAPI; binary 64 rows >= 1.5x JSON):"
    for rows in "${ROW_LIST[@]}"; do
        ksv=${RPS[ksv,$rows]:-}
        [ -n "$ksv" ] || continue
        best=0
        for w in fastapi-1w fastapi-2w; do
            v=${RPS[$w,$rows]:-0}
            best=$(awk -v a="$best" -v b="$v" 'BEGIN { print (b > a) ? b : a }')
        done
        line="  $rows rows: ksv/fastapi-best $(ratio "$ksv" "$best")"
        line+=", ksv/mlserver $(ratio "$ksv" "${RPS[mlserver,$rows]:-0}")"
        line+=", ksv/nginx $(ratio "$ksv" "${RPS[nginx,$rows]:-0}" pct)"
        echo "$line"
    done
else
    echo "ratios: no ksv-engine figure (not built or not measured)"
fi
for rows in "${ROW_LIST[@]}"; do
    [ -n "${RPSB[$rows]:-}" ] && [ -n "${RPS[ksv,$rows]:-}" ] || continue
    printf '  %s rows: ksv binary/JSON %s (binary: %.0f req/s, P50 %s, P99 %s)\n' "$rows" \
        "$(ratio "${RPSB[$rows]}" "${RPS[ksv,$rows]}")" "${RPSB[$rows]}" \
        "$(fmt_us "${P50B[$rows]}")" "$(fmt_us "${P99B[$rows]}")"
done
[ -z "$RATE_LINE" ] || { echo; echo "fixed rate: $RATE_LINE"; }

for name in "${SERVERS[@]}"; do
    [ -z "${CHECK_FAILED[$name]:-}" ] || exit 1
done
exit 0
