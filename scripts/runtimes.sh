#!/bin/sh
# runtimes.sh: installs what the shipped external runtimes (data/runtimes/) run, into one
# virtual environment outside the source tree, cached per machine:
#   ${KSV_RUNTIMES_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ksv/venv-runtimes}
# - MLServer with its sklearn and LightGBM runtimes (PyPI wheels);
# - llama.cpp's own OpenAI-compatible server, llama-server, compiled from the llama.cpp
#   sources that PyPI's llama-cpp-python sdist vendors. Only the server target is built
#   (no Python bindings, tools, tests or web UI), which is what keeps the compile inside
#   CI's budget on a 2-core machine;
# - gguf (gguf-py), which the tests use to write a tiny llama model.
#
#   scripts/runtimes.sh install   install what is missing (a second run does nothing)
#   scripts/runtimes.sh path      print the virtual environment's directory
#   scripts/runtimes.sh check     exit 0 when everything is installed
#
# The core build never needs Python; only these runtimes (and their tests) do.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/venv.sh"
venv=${KSV_RUNTIMES_VENV:-$(ksv_venv_dir runtimes)}

# Pinned so that a cache filled today and a clean machine tomorrow run the same code.
MLSERVER_VERSION=1.7.1
LLAMA_CPP_PYTHON_VERSION=0.3.36
GGUF_VERSION=0.19.0
PIP_PACKAGES="mlserver==$MLSERVER_VERSION mlserver-sklearn==$MLSERVER_VERSION \
 mlserver-lightgbm==$MLSERVER_VERSION gguf==$GGUF_VERSION"
pip_stamp="$venv/.ksv-pip-$(echo "$PIP_PACKAGES" | cksum | cut -d' ' -f1)"
llama_stamp="$venv/.ksv-llama-server-$LLAMA_CPP_PYTHON_VERSION"

say() { printf 'runtimes: %s\n' "$*"; }
now() { date +%s; }

ensure_system_packages() {
    # cmake and g++ for llama.cpp.
    . "$top/scripts/deps.sh"
    ksv_install_deps cmake g++
}

install_venv() {
    if [ -f "$pip_stamp" ]; then
        say "MLServer $MLSERVER_VERSION, gguf $GGUF_VERSION: already installed"
        return 0
    fi
    t0=$(now)
    say "installing $PIP_PACKAGES"
    # pip's own progress (one line per package) is the progress shown.
    ksv_venv_install "$venv" "$(basename "$pip_stamp")" $PIP_PACKAGES ||
        { say "installing the python packages failed"; exit 1; }
    say "python packages installed in $(( $(now) - t0 )) s"
}

install_llama_server() {
    if [ -f "$llama_stamp" ] && [ -x "$venv/bin/llama-server" ]; then
        say "llama-server (llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sources): already built"
        return 0
    fi
    command -v cmake >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || ensure_system_packages
    work="$venv/src"
    src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION"
    t0=$(now)
    if [ ! -d "$src/vendor/llama.cpp" ]; then
        say "downloading llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sources (PyPI sdist)"
        mkdir -p "$work"
        # The sdist only: its build dependencies come as wheels (pip prepares metadata).
        "$venv/bin/python" -m pip download --no-deps --no-binary llama-cpp-python \
            --progress-bar off -d "$work" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
        tar -xzf "$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$work"
    fi
    build="$work/llama-build"
    jobs=${KSV_RUNTIMES_JOBS:-$(nproc)}
    say "compiling llama-server with $jobs jobs (a few minutes per core)"
    # Static, CPU only, native instructions; no web UI (its prebuilt assets would be
    # downloaded), no HTTPS, no tests/examples/other tools.
    cmake -S "$src/vendor/llama.cpp" -B "$build" -G "Unix Makefiles" \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
        >"$work/cmake-configure.log" 2>&1 ||
        { tail -40 "$work/cmake-configure.log"; say "cmake configure failed"; exit 1; }
    # Progress: make prints "[ NN%] Building ..." per object.
    cmake --build "$build" --target llama-server -j "$jobs" 2>&1 |
        grep --line-buffered -E '^\[ *[0-9]+%\]|error|Error' || true
    [ -x "$build/bin/llama-server" ] || { say "llama-server build failed"; exit 1; }
    install -m 0755 "$build/bin/llama-server" "$venv/bin/llama-server"
    touch "$llama_stamp"
    say "llama-server built in $(( $(now) - t0 )) s"
    # The object files are not needed again; the sources are kept for a rebuild.
    rm -rf "$build"
}

case "${1:-}" in
    install)
        # One install at a time per venv: a second caller waits for the first to finish.
        ksv_venv_lock "$venv"
        install_venv
        install_llama_server
        say "ready: $venv"
        ;;
    path)
        echo "$venv"
        ;;
    check)
        [ -f "$pip_stamp" ] && [ -f "$llama_stamp" ] && [ -x "$venv/bin/llama-server" ]
        ;;
    *)
        echo "usage: scripts/runtimes.sh install|path|check" >&2
        exit 2
        ;;
esac
