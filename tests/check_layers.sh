#!/bin/sh
# check_layers.sh: fails when a file of src/ reaches across the layers docs/ARCHITECTURE.md
# draws (make check runs it; `sh tests/check_layers.sh [TREE]` checks TREE, default the
# source tree):
#   - src/cli and src/tui include, of the rest of ksv, only common/ and control/control.h,
#     and call no ksv_store_* function;
#   - each folder includes only the folders below it (common <- store, remote, engine, http;
#     control <- store, remote, http; cli, tui <- control);
#   - a *_internal.h is included only inside its own folder;
#   - <sqlite3.h> only in src/store, <curses.h>/<ncurses.h> only in src/tui, <curl/curl.h>
#     only in the HTTP client (src/http), <xgboost/...> only in a runtime
#     (src/engine/runtime_*.c: the engine learns versions through ksv_runtime_ops);
#   - comments cite documents in the tree (docs/, README.md), never DESIGN.md's sections:
#     that file is not in the repository.
# It first proves, on a scratch tree, that each rule catches a violation.
set -u

check_tree() {
    root=$1
    bad=0
    complain() { echo "check_layers: $*"; bad=1; }
    for f in $(cd "$root" && find src -name '*.[ch]' | sort); do
        folder=$(echo "$f" | cut -d/ -f2)
        # "folder/file.h" includes of ksv's own headers ("config.h" is the build's).
        for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' \
                         "$root/$f"); do
            dir=${inc%%/*}
            [ "$dir" = "$inc" ] && continue
            case "$inc" in
            *_internal.h) [ "$dir" = "$folder" ] ||
                complain "$f includes $inc, internal to src/$dir" ;;
            esac
            [ "$dir" = "$folder" ] && continue
            case "$folder:$dir" in
            common:*) ok=no ;;
            store:common | remote:common | engine:common | http:common) ok=yes ;;
            remote:http | engine:http) ok=yes ;;
            control:common | control:store | control:remote | control:http) ok=yes ;;
            cli:common | tui:common) ok=yes ;;
            cli:control | tui:control) [ "$inc" = control/control.h ] && ok=yes || ok=no ;;
            *) ok=no ;;
            esac
            [ $ok = yes ] || complain "$f (src/$folder) includes $inc"
        done
        sys=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*<\([^>]*\)>.*/\1/p' "$root/$f")
        for inc in $sys; do
            case "$inc" in
            sqlite3.h) [ "$folder" = store ] || complain "$f includes <$inc> outside src/store" ;;
            curses.h | ncurses.h | ncursesw/*) [ "$folder" = tui ] ||
                complain "$f includes <$inc> outside src/tui" ;;
            xgboost/*) case "$f" in src/engine/runtime_*.c) ;; *)
                complain "$f includes <$inc> outside a runtime (src/engine/runtime_*.c)" ;; esac ;;
            curl/*) [ "$folder" = http ] ||
                complain "$f includes <$inc> outside the HTTP client (src/http)" ;;
            esac
        done
        if grep -n 'DESIGN\(\.md\)\{0,1\}[[:space:]]*\(§\|section\)' "$root/$f" >/dev/null; then
            complain "$f cites DESIGN.md, which is not in the tree (cite docs/ instead)"
        fi
        case "$folder" in
        cli | tui)
            if grep -n 'ksv_store_[a-z_0-9]*[[:space:]]*(' "$root/$f" >/dev/null; then
                complain "$f calls the store directly: $(grep -o 'ksv_store_[a-z_0-9]*[[:space:]]*(' \
                    "$root/$f" | head -1) (use control.h)"
            fi ;;
        esac
    done
    return $bad
}

self_test() {
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    n=0
    for case in \
        'src/cli/a.c:#include "control/control_internal.h"' \
        'src/cli/a.c:#include "control/loadgen.h"' \
        'src/tui/a.c:#include "store/store.h"' \
        'src/engine/a.c:#include "remote/engine_client.h"' \
        'src/common/a.c:#include "store/store.h"' \
        'src/control/a.c:#include <sqlite3.h>' \
        'src/control/a.c:#include <curses.h>' \
        'src/remote/a.c:#include <curl/curl.h>' \
        'src/engine/admin_api.c:#include <xgboost/c_api.h>' \
        'src/cli/a.c:int f(void) { return ksv_store_node_list(0, 0, 0); }' \
        'src/engine/a.c:/* as DESIGN.md section 4 says */' \
        'src/engine/a.c:/* as DESIGN §4 says */'; do
        file=${case%%:*}
        rm -rf "$scratch/src"
        mkdir -p "$scratch/$(dirname "$file")"
        printf '%s\n' "${case#*:}" >"$scratch/$file"
        if check_tree "$scratch" >/dev/null; then
            echo "check_layers: self-test: not caught: $case"
            return 1
        fi
        n=$((n + 1))
    done
    rm -rf "$scratch/src"
    mkdir -p "$scratch/src/cli"
    printf '#include "control/control.h"\n#include "common/error.h"\n#include "cli/cli.h"\n' \
        >"$scratch/src/cli/a.c"
    if ! check_tree "$scratch"; then
        echo "check_layers: self-test: a clean file was refused"
        return 1
    fi
    echo "check_layers: self-test: $n violations caught, a clean file passes"
}

self_test || exit 1
root=${1:-${KSV_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}}
check_tree "$root" || exit 1
echo "check_layers: src/ keeps its layers"
