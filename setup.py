"""Declares the Cython extension and its compiler directives; metadata lives in pyproject.toml."""

import os
import sys
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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

# gcc stops inlining once inlining has grown the module by a set share
# (inline-unit-growth). The core's small products are copies fixed at each
# size up to 4, which must be inlined to pay; with the default share, any code
# added elsewhere in the module could push some out of line (benchmarks/
# README.md, items 10 and 11). Debug builds, which are not for speed, go
# without it.
INLINE_BUDGET = "--param=inline-unit-growth=2000"
# The kernels promise each multiply and add rounded on its own, the same bits
# on every CPU (_vector_math.h, _vector_product.h). gcc and clang fuse them
# into one rounding where the target has FMA (aarch64, CFLAGS such as
# -march=haswell, or a function compiled for FMA) unless told not to. The
# AVX-512 product and the tiny network's step write out the fused
# multiply-adds they mean as such (_gemm_avx512.h, _tiny_step.h); the tiny
# step's other operations, compiled for FMA, stay unfused only by this flag.
NO_FUSED_MULTIPLY_ADD = "-ffp-contract=off"


def compiler_accepts(compiler, flag):
    """Whether the C compiler builds an empty file with flag, warnings as errors."""
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "empty.c")
        with open(source, "w") as file:
            file.write("int main(void) { return 0; }\n")
        try:
            compiler.compile([source], output_dir=folder, extra_postargs=[flag, "-Werror"])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """build_ext that adds the flags above where the compiler takes them (gcc
    and clang; MSVC neither needs nor knows them, and its default /fp:precise
    does not fuse)."""

    def build_extensions(self):
        flags = [NO_FUSED_MULTIPLY_ADD] + ([] if debug else [INLINE_BUDGET])
        if self.compiler.compiler_type in ("unix", "mingw32", "cygwin"):
            accepted = [flag for flag in flags if compiler_accepts(self.compiler, flag)]
            for extension in self.extensions:
                extension.extra_compile_args = extension.extra_compile_args + [
                    flag for flag in accepted if flag not in extension.extra_compile_args]
        super().build_extensions()


extensions = [
    Extension(
        "cyprop._core",
        sources=["src/cyprop/_core.pyx"],
        depends=["src/cyprop/_vector_math.h", "src/cyprop/_vector_product.h",
                 "src/cyprop/_tiny_step.h", "src/cyprop/_gemm_avx512.h",
                 "src/cyprop/_parallel.h"],
        extra_compile_args=[] if debug else optimize,
        # Linking libm explicitly binds exp and friends to their current
        # versioned symbols instead of glibc's slower compatibility wrappers;
        # the split products' workers (_parallel.h) need libpthread, apart
        # from libc before glibc 2.34.
        libraries=[] if sys.platform == "win32" else ["m", "pthread"],
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["src"]),
    cmdclass={"build_ext": BuildExt},
)
