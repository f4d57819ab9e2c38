#!/usr/bin/env bash
# Runs tests under valgrind's memcheck against a normal build of cyprop.
#
# usage: tools/valgrind.sh [-- PYTEST_ARGS...]
#
# Default selection: tests/test_core.py (the kernels, called directly, in
# both dtypes, on shapes that run in plain loops and shapes that reach BLAS),
# tests/test_network.py and tests/test_persistence.py (the Network API over
# the core, and save/load), with -k "not test_loss_gradient or -tanh-": of
# test_loss_gradient's 800 cases it keeps the 240 whose hidden or output
# activation is tanh, which still cover every shape, dtype, loss pairing and
# sample weighting (the other hidden activations change the arithmetic of
# one elementwise loop, not which memory it touches, and test_forward runs
# each of them). All cases of these files take about 18 minutes here, the
# selection about 10. PYTEST_ARGS replace the selection, e.g.
#   tools/valgrind.sh -- tests/test_core.py
#   tools/valgrind.sh -- tests/test_core.py -k "float64 and train_epochs"
#
# Environment: PYTHON, the interpreter to build the virtual environment from
# (default python3); VALGRIND_DIR, the work directory (default: a new
# temporary directory, removed when everything passed).
#
# Fails (non-zero exit) when a test fails, when memcheck reports an error
# that the suppression files do not suppress (invalid reads or writes, use of
# uninitialised values, bad frees), or when a block that memcheck finds
# definitely lost at exit was allocated by cyprop's extension at run time.
# Leaks elsewhere are not errors: CPython leaves objects behind at exit.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

pytest_args=(tests/test_core.py tests/test_network.py tests/test_persistence.py
             -k "not test_loss_gradient or -tanh-")
while [ $# -gt 0 ]; do
    case $1 in
        --) shift; [ $# -eq 0 ] || pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (expected -- PYTEST_ARGS)" ;;
    esac
    shift
done

command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
WORK=${VALGRIND_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cyprop-valgrind.XXXXXX")}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
src="$WORK/src" venv="$WORK/venv" log="$WORK/memcheck.log"

log "normal build (release directives, the interpreter's compiler flags)"
rm -rf "$src" "$venv"
copy_source "$src"
make_venv "$venv"
(cd "$src" && env -u CFLAGS -u LDFLAGS -u CYPROP_DEBUG_CYTHON \
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -v ".[test]" \
    >"$WORK/build.log" 2>&1) ||
    { tail -n 40 "$WORK/build.log"; die "build failed (log: $WORK/build.log)"; }
extension=$(installed_extension "$venv")
echo "extension: $extension"

# valgrind must start the interpreter itself, not a wrapper script (pyenv's
# `python` is one). The venv's python is a symlink to the binary, and running
# it by that path keeps the venv's site-packages.
python_binary="$venv/bin/python"
[ "$(head -c 4 "$(readlink -f "$python_binary")" | od -An -c | tr -d ' ')" = '177ELF' ] ||
    die "$python_binary is not an executable binary: set PYTHON to the interpreter itself"
python_version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
suppressions=(--suppressions="$TOOLS/valgrind.supp")
if [ -f "$TOOLS/valgrind-python$python_version.supp" ]; then
    suppressions+=(--suppressions="$TOOLS/valgrind-python$python_version.supp")
    echo "note: CPython $python_version: uninitialised-value reports outside cyprop's extension" \
         "are suppressed (tools/valgrind-python$python_version.supp says why);" \
         "PYTHON=python3.12 checks everything"
fi
echo "python: $python_binary -> $(readlink -f "$python_binary") ($python_version); $(valgrind --version)"
printf 'suppressions: %s\n' "${suppressions[@]#--suppressions=}"

log "memcheck: pytest ${pytest_args[*]}"
# PYTHONMALLOC=malloc: every Python object comes from malloc, so memcheck
# sees each one's bounds and lifetime (pymalloc's pools would hide them).
status=0
(
    cd "$src"
    PYTHONMALLOC=malloc valgrind --tool=memcheck \
        --error-exitcode=99 --num-callers=40 --track-origins=yes \
        --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=none \
        "${suppressions[@]}" --log-file="$log" \
        "$python_binary" -m pytest -p no:cacheprovider "${pytest_args[@]}"
) 2>&1 | tee "$WORK/pytest.log" || status=$?

log "memcheck report ($log)"
{ grep -E 'ERROR SUMMARY|definitely lost:|indirectly lost:|possibly lost:|still reachable:|suppressed:' "$log" || true; } |
    sed -E 's/^==[0-9]+== +//'

# Error contexts, and definitely-lost blocks allocated at run time, whose
# stack passes through cyprop's extension (its Cython functions are named
# __pyx_..._6cyprop_5_core_...). Blocks allocated while the module was being
# imported are left out: importing it imports scipy.linalg.cython_blas, and
# whatever CPython keeps of that import is allocated once, with the
# module's initialisation on the stack, and never freed at exit.
"$venv/bin/python" - "$log" "$WORK/cyprop-reports.txt" <<'PYTHON'
import re, sys
log, out = sys.argv[1], sys.argv[2]
lines = [re.sub(r"^==\d+== ?", "", line) for line in open(log).read().splitlines()]
blocks, block = [], []
for line in lines:
    if line.strip():
        block.append(line)
    elif block:
        blocks.append(block)
        block = []
ours = re.compile(r"6cyprop_5_core|cyprop/_core|\(_core\.c:|_core\.pyx:")
importing = re.compile(r"__pyx_pymod_exec__core|PyInit__core")
error = re.compile(r"^(Invalid |Conditional jump|Use of uninitialised|Syscall param|"
                   r"Mismatched free|Source and destination overlap|Argument '.*' of function)")
leak = re.compile(r"are definitely lost in loss record")
reports, at_import = [], 0
for block in blocks:
    if not any(ours.search(line) for line in block):
        continue
    if error.match(block[0]):
        reports.append(block)
    elif leak.search(block[0]):
        if any(importing.search(line) for line in block):
            at_import += 1
        else:
            reports.append(block)
with open(out, "w") as stream:
    for block in reports:
        stream.write("\n".join(block) + "\n\n")
print(f"definitely-lost records allocated while importing cyprop._core (not counted): {at_import}")
PYTHON
cyprop_reports=$(cat "$WORK/cyprop-reports.txt")
if [ -n "$cyprop_reports" ]; then
    log "reports involving cyprop's extension"
    echo "$cyprop_reports"
fi

errors=$({ grep -E 'ERROR SUMMARY' "$log" || true; } | sed -E 's/.*ERROR SUMMARY: ([0-9]+) errors.*/\1/' | tail -n 1)
summary=$(summary_line "$WORK/pytest.log")
log "summary"
echo "pytest: ${summary:-no pytest summary}"
echo "memcheck: ${errors:-?} unsuppressed errors; $(grep -c 'are definitely lost' "$log" || true) definitely-lost records at exit, $(echo -n "$cyprop_reports" | grep -c 'are definitely lost' || true) of them allocated by cyprop's extension at run time"
failed=0
[ "$status" = 0 ] || failed=1
[ "${errors:-1}" = 0 ] || failed=1
[ -z "$cyprop_reports" ] || failed=1
if [ $failed = 0 ]; then
    [ -n "${VALGRIND_DIR:-}" ] || rm -rf "$WORK"
    echo "valgrind: OK"
else
    echo "valgrind: FAILED (exit status $status; log: $log)"
fi
exit $failed
