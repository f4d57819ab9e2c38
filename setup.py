"""Declares the Cython extension and its compiler directives; metadata lives in pyproject.toml."""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

# CYPROP_DEBUG_CYTHON=1 turns Cython's bounds, wraparound and initialization checks back on.
debug = os.environ.get("CYPROP_DEBUG_CYTHON") == "1"

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
    "cpow": True,
    "embedsignature": True,
}

# The compiler's defaults plus optimisation only: wheels must run on any CPU of their platform.
optimize = ["/O2"] if sys.platform == "win32" else ["-O3"]

extensions = [
    Extension(
        "cyprop._core",
        sources=["src/cyprop/_core.pyx"],
        depends=["src/cyprop/_vector_math.h"],
        extra_compile_args=[] if debug else optimize,
        # Linking libm explicitly binds exp and friends to their current
        # versioned symbols instead of glibc's slower compatibility wrappers.
        libraries=[] if sys.platform == "win32" else ["m"],
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["src"]))
