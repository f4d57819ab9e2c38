#!/usr/bin/env bash
# Runs the whole test suite against cyprop built with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc, Linux).
#
# usage: tools/sanitize.sh [debug] [release] [-- PYTEST_ARGS...]
#
#   debug    CYPROP_DEBUG_CYTHON=1: Cython's bounds, wraparound and
#            initialization checks on, plus both sanitizers.
#   release  the release directives (no Cython checks), plus both sanitizers:
#            the code that ships, where an out-of-bounds access is not caught
#            by Cython and only AddressSanitizer sees it.
#   (default: both, debug first)
#
# Environment: PYTHON, the interpreter to build the virtual environments
# from (default python3); SANITIZE_DIR, the work directory (default: a new
# temporary directory, removed when everything passed).
#
# Each build gets its own virtual environment and its own clean copy of the
# source tree. The script exits non-zero when a test fails, when a process
# under test reports an AddressSanitizer or UndefinedBehaviorSanitizer error
# (the first aborts the process; reports are also collected from the log
# files and the test output after the run, so one from a child process is
# caught even if its test passed), or when the build turns out not to be
# instrumented.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

builds=()
pytest_args=()
while [ $# -gt 0 ]; do
    case $1 in
        debug|release) builds+=("$1") ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (expected debug, release or -- PYTEST_ARGS)" ;;
    esac
    shift
done
[ ${#builds[@]} -gt 0 ] || builds=(debug release)

[ "$(uname -s)" = Linux ] || die "the sanitizer build needs Linux and gcc"
command -v gcc >/dev/null || die "gcc not found"
LIBASAN=$(gcc -print-file-name=libasan.so)
[ -e "$LIBASAN" ] || die "gcc has no AddressSanitizer runtime (libasan.so)"
LIBASAN=$(readlink -f "$LIBASAN")
# Preloaded after the sanitizer runtime so that its C++ exception
# interceptor finds the real __cxa_throw when it starts: otherwise the first
# exception thrown in a C++ extension loaded later (matplotlib's ft2font,
# for one) ends the process with "CHECK failed: real___cxa_throw != 0".
PRELOAD=$LIBASAN
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so)
if [ -e "$LIBSTDCXX" ]; then
    PRELOAD="$LIBASAN $(readlink -f "$LIBSTDCXX")"
fi

WORK=${SANITIZE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cyprop-sanitize.XXXXXX")}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# -fno-sanitize-recover=undefined turns every UB report into an abort.
# The interpreter's own CFLAGS come first: current setuptools replaces them
# with $CFLAGS rather than appending, and the sanitized build should differ
# from the normal one by the sanitizer flags only.
SANITIZER_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"

# Options for every process of the test run (children inherit them):
# - detect_leaks=0: CPython does not free all of its objects at exit, so
#   LeakSanitizer reports every interpreter as leaking, cyprop or not
#   (measured: 53 KB in 826 blocks for a short child process, 385 KB in
#   2,738 blocks for the pytest process). Its stacks stop inside the
#   uninstrumented interpreter after one to three frames (frame-pointer
#   unwinding), so no suppression can tell a leak of cyprop's from CPython's:
#   suppressing CPython's allocators would also hide every Python object
#   leaked by cyprop's Cython code, which is allocated by the same functions.
#   Leaks are measured instead by tests/test_memory.py (here from the
#   sanitizer allocator's own count of live bytes) and tools/valgrind.sh
#   (whose stacks are complete).
# - abort_on_error=1: die by SIGABRT, so that pytest's faulthandler prints the
#   Python stack of the failing test (the input that triggered the error).
# - allocator_may_return_null=1: a huge allocation fails with MemoryError, as
#   it does without the sanitizer, instead of ending the run.
# - detect_stack_use_after_return=1: also catch pointers to dead stack frames.
asan_options() {
    echo "detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=1:log_path=$1/asan"
}
ubsan_options() {
    echo "print_stacktrace=1:halt_on_error=1:abort_on_error=1:report_error_type=1:log_path=$1/ubsan"
}

failed=0
results=()

run_build() {
    local build=$1
    local dir="$WORK/$build" debug=0
    [ "$build" = debug ] && debug=1
    local src="$dir/src" venv="$dir/venv" logs="$dir/reports" python_cflags extension

    log "$build build: CYPROP_DEBUG_CYTHON=$debug, AddressSanitizer + UndefinedBehaviorSanitizer"
    rm -rf "$dir"
    mkdir -p "$dir" "$logs"
    copy_source "$src"
    make_venv "$venv"
    python_cflags=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("CFLAGS") or "")')
    echo "CFLAGS=$python_cflags $SANITIZER_FLAGS"
    (
        cd "$src"
        CYPROP_DEBUG_CYTHON=$debug \
        CFLAGS="$python_cflags $SANITIZER_FLAGS" \
        LDFLAGS="-fsanitize=address,undefined" \
            "$venv/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -v ".[test]" \
            >"$dir/build.log" 2>&1
    ) || { tail -n 40 "$dir/build.log"; die "$build build failed (log: $dir/build.log)"; }
    grep -E '^ *(gcc|cc|x86_64-linux-gnu-gcc) .*_core' "$dir/build.log" || true

    # Refuse to report a clean run of an uninstrumented build.
    extension=$(installed_extension "$venv")
    echo "extension: $extension"
    readelf -d "$extension" | grep -q 'NEEDED.*libasan' || die "$extension is not linked to libasan"
    readelf -d "$extension" | grep -q 'NEEDED.*libubsan' || die "$extension is not linked to libubsan"
    nm -D "$extension" | grep -q '__ubsan_handle_.*_abort' ||
        die "$extension has no aborting UBSan checks (-fno-sanitize-recover missing)"
    if [ $debug = 1 ]; then
        grep -q __Pyx_RaiseBufferIndexError "$src/src/cyprop/_core.c" ||
            die "the debug build's _core.c has no bounds checks"
    else
        ! grep -q __Pyx_RaiseBufferIndexError "$src/src/cyprop/_core.c" ||
            die "the release build's _core.c has bounds checks"
    fi

    log "$build build: running the test suite"
    local status=0
    (
        cd "$src"
        export LD_PRELOAD="$PRELOAD" PYTHONMALLOC=malloc PYTHONFAULTHANDLER=1
        ASAN_OPTIONS=$(asan_options "$logs")
        UBSAN_OPTIONS=$(ubsan_options "$logs")
        export ASAN_OPTIONS UBSAN_OPTIONS
        # The sanitizer runtime must really be in the interpreter's process.
        "$venv/bin/python" -c '
import sys
maps = open("/proc/self/maps").read()
sys.exit(0 if "libasan" in maps else "libasan is not loaded in the test process")'
        # --capture=sys: pytest captures Python's sys.stderr only, so a
        # report written to file descriptor 2 reaches the log even when the
        # process aborts in the middle of a test.
        "$venv/bin/python" -m pytest -p no:cacheprovider --capture=sys "${pytest_args[@]}"
    ) 2>&1 | tee "$dir/pytest.log" || status=$?

    local reports n_reports
    reports=$(find "$logs" -type f | sort)
    if [ -n "$reports" ]; then
        log "$build build: sanitizer reports"
        for report in $reports; do
            echo "--- $report"
            cat "$report"
        done
    fi
    # gcc's UndefinedBehaviorSanitizer ignores log_path next to the address
    # sanitizer and writes to stderr: count its reports in the test log.
    n_reports=$(( $(echo -n "$reports" | grep -c . || true) +
                  $(grep -c -E 'runtime error: |ERROR: AddressSanitizer' "$dir/pytest.log" || true) ))
    [ "$n_reports" = 0 ] || [ "$status" != 0 ] || status=1
    local summary
    summary=$(summary_line "$dir/pytest.log")
    results+=("$build: ${summary:-no pytest summary}; sanitizer reports: $n_reports; exit status $status")
    [ "$status" = 0 ] || failed=1
}

for build in "${builds[@]}"; do
    run_build "$build"
done

log "summary"
printf '%s\n' "${results[@]}"
if [ $failed = 0 ]; then
    [ -n "${SANITIZE_DIR:-}" ] || rm -rf "$WORK"
    echo "sanitize: OK"
else
    echo "sanitize: FAILED (work directory kept: $WORK)"
fi
exit $failed
