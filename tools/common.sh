# shellcheck shell=bash
# Shared by tools/sanitize.sh and tools/valgrind.sh; sourced, not run.
#
# Both scripts build cyprop from a clean copy of the source tree, never in
# the checkout itself: pip builds in the source directory, and a _core.c or
# object file left there by an earlier build would be reused silently. A .c
# generated without CYPROP_DEBUG_CYTHON=1 has no bounds checks, and an object
# compiled without the sanitizers' flags has no instrumentation.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/tools"
export ROOT TOOLS

log() { printf '\n=== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

# copy_source DEST: the files of the working tree (tracked and untracked, not
# ignored) without build artefacts.
copy_source() {
    local dest=$1
    mkdir -p "$dest"
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' path; do
                [ -f "$path" ] && printf '%s\0' "$path"
            done | tar --null -T - -cf -) | tar -xf - -C "$dest"
    else
        tar -C "$ROOT" --exclude=./build --exclude=./dist --exclude='*.egg-info' \
            --exclude=./.venv --exclude='*.so' --exclude='*.pyd' -cf - . | tar -xf - -C "$dest"
    fi
    rm -f "$dest"/src/cyprop/*.c "$dest"/src/cyprop/*.so "$dest"/src/cyprop/*.html
    rm -rf "$dest/build"
}

# real_python: the interpreter binary itself (pyenv's `python` is a shell script).
real_python() {
    local python=${PYTHON:-python3}
    "$python" -c 'import os, sys; print(os.path.realpath(sys.executable))' ||
        die "cannot run $python (set PYTHON to an interpreter)"
}

# make_venv DIR: a fresh virtual environment from real_python.
make_venv() {
    local dir=$1 python
    python=$(real_python)
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
}

# installed_extension VENV: path of the installed cyprop._core shared object,
# found without importing cyprop (a sanitized build cannot load without its
# runtime preloaded).
installed_extension() {
    "$1/bin/python" - <<'PYTHON'
import importlib.machinery, importlib.util, os, sys
package = importlib.util.find_spec("cyprop")
if package is None:
    sys.exit("cyprop is not installed")
for directory in package.submodule_search_locations:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(directory, "_core" + suffix)
        if os.path.exists(path):
            print(path)
            sys.exit(0)
sys.exit("cyprop._core not found")
PYTHON
}

# summary_line LOG: pytest's final "N passed, ..." line.
summary_line() {
    { grep -E '(passed|failed|error|no tests ran).* in [0-9.]+s' "$1" || true; } | tail -n 1 |
        sed -e 's/=//g' -e 's/^ *//' -e 's/ *$//'
}
