"""Lets cynn's Tinn and genann modules import on a current glibc.

Both were compiled with ``-ffast-math`` against an old glibc, whose headers
turn ``exp``/``expf`` into calls to ``__exp_finite``/``__expf_finite``.
glibc 2.31 stopped exporting those names to new links (they survive only as
versioned compatibility symbols), and the modules reference them without a
version and without listing libm as a dependency, so ``import`` fails with
"undefined symbol: __expf_finite". Loading a two-function library that
defines the names globally, before the import, resolves them to ordinary
``exp``/``expf``, which compute the same values for finite arguments.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile

SOURCE = """\
#include <math.h>
double __exp_finite(double x) { return exp(x); }
float __expf_finite(float x) { return expf(x); }
"""

_loaded = None
_notes = {}   # module name -> its plain import error, or None


def load():
    """Compile (once per process) and load the library globally; returns its path."""
    global _loaded
    if _loaded is not None:
        return _loaded
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler found to build the exp shim")
    folder = tempfile.mkdtemp(prefix="bench-exp-shim-")
    source = os.path.join(folder, "shim.c")
    library = os.path.join(folder, "libexpshim.so")
    with open(source, "w") as handle:
        handle.write(SOURCE)
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", source, "-o", library, "-lm"],
                   check=True, capture_output=True)
    ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
    shutil.rmtree(folder, ignore_errors=True)   # the loaded library stays mapped
    _loaded = library
    return library


def plain_import_error(module_name):
    """Why ``module_name`` fails to import in a fresh interpreter without the shim, or None."""
    import sys

    result = subprocess.run([sys.executable, "-c", f"import {module_name}"],
                            capture_output=True, text=True)
    if result.returncode == 0:
        return None
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {result.returncode}"


def import_with_shim(module_name, allow_shim):
    """Import ``module_name``; on the missing-symbol error, retry with the shim if allowed.

    Returns ``(module, note)`` where note says whether the shim was needed.
    """
    import importlib

    if module_name not in _notes:
        _notes[module_name] = plain_import_error(module_name)
    error = _notes[module_name]
    if error is None:
        return importlib.import_module(module_name), None
    if "_finite" not in error or not allow_shim:
        raise ImportError(error.removeprefix("ImportError: "))
    load()
    symbol = error.rsplit(": ", 1)[-1]
    return (importlib.import_module(module_name),
            f"plain import fails (undefined symbol: {symbol}); imported with the exp shim")
