"""Which BLAS the core's matrix products run on, chosen once, at import.

scipy's wheels bundle an OpenBLAS that lags behind OpenBLAS's releases; the
``scipy-openblas32`` wheel, which cyprop depends on where it has builds,
carries a newer one with the same Fortran interface. On the 2-core AMD EPYC
(Zen 3) machine of benchmarks/README.md, its sgemm (OpenBLAS 0.3.34) ran
the 64-row forward product of the MNIST-shaped benchmark (64 x 784 by
784 x 256) 20-30% faster than scipy 1.17's OpenBLAS 0.3.30, and the other
products of the W3 and W4 benchmarks 2-10% faster. The environment variable
``CYPROP_BLAS`` chooses:

- unset or empty: that wheel's OpenBLAS when scipy's own BLAS is an
  OpenBLAS too and the wheel loads; otherwise scipy's (an Accelerate or MKL
  build of scipy keeps its library, which cyprop has not measured against);
- ``scipy``: the BLAS that scipy itself calls (``scipy.linalg.cython_blas``);
- ``scipy-openblas32``: that wheel's OpenBLAS, and an error if it cannot be
  loaded;
- ``mkl``: Intel's oneMKL from the ``mkl`` wheel (``pip install
  'cyprop[mkl]'``), and an error if it cannot be loaded. Never the default:
  the wheel is large, its licence is not BSD, and it is tuned for Intel's
  CPUs. On the 2-core Intel Xeon (Sapphire Rapids) machine of
  benchmarks/README.md it ran the products of the MNIST-shaped benchmark
  about 25% faster than OpenBLAS 0.3.34.

On a CPU whose 512-bit multiply-adds run at twice the 256-bit rate (Zen 5),
an OpenBLAS that runs narrower kernels there (under
``OPENBLAS_CORETYPE=Haswell``, say) leaves every minibatch product it can
compute to cyprop's own AVX-512 kernel, which then runs them about twice as
fast (``_core.take_every_product``).

The library is loaded privately (``RTLD_LOCAL``) and the package itself is
not imported (its ``__init__`` loads the library into the global namespace,
where scipy's and numpy's extension modules could bind to it): numpy and
scipy keep their own BLAS. Its thread count is set like theirs, with
``threadpoolctl.threadpool_limits`` or ``OPENBLAS_NUM_THREADS``.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable

import numpy as np

from cyprop import _core

ENVIRONMENT_VARIABLE = "CYPROP_BLAS"
SCIPY = "scipy"
SCIPY_OPENBLAS32 = "scipy-openblas32"
MKL = "mkl"

# The symbols of the scipy-openblas builds (the Fortran interface and OpenBLAS's
# own functions) carry this prefix.
_SYMBOL_PREFIX = "scipy_"
_FUNCTIONS = ("sgemm_", "dgemm_", "sgemv_", "dgemv_")

# OpenBLAS's names for the cores whose kernels use 512-bit vectors
# (openblas_get_corename); on any other core, its kernels are narrower.
_AVX512_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})

# Set by _select(), at import.
_description = ""
_in_use = ""  # the setting whose library the core calls, for benchmarks/
# Each library loaded so far, by setting: (description, handle, function addresses,
# whether its kernels use vectors narrower than 512 bits where the CPU has AVX-512).
_Opened = tuple[str, ctypes.CDLL, tuple[int, ...], bool]
_loaded: dict[str, _Opened] = {}

# mkl_set_interface_layer's value for 32-bit integers, the width the core passes.
_MKL_INTERFACE_LP64 = 0


def _library_path() -> str:
    """The shared library inside the installed scipy-openblas32 wheel, found
    without importing the package."""
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or spec.origin is None:
        raise ImportError("scipy-openblas32 is not installed")
    directory = os.path.join(os.path.dirname(spec.origin), "lib")
    suffix = ".dll" if sys.platform == "win32" else ""
    names = sorted(
        name for name in os.listdir(directory)
        if name.startswith("libscipy_openblas") and name.endswith(suffix)
        and not name.endswith((".a", ".lib"))
    )
    if not names:
        raise ImportError(f"scipy-openblas32: no OpenBLAS library in {directory}")
    return os.path.join(directory, names[0])


def _addresses(library: ctypes.CDLL, path: str, prefix: str) -> tuple[int, ...]:
    """Where the four Fortran-interface functions the core calls are in library."""
    addresses = []
    for name in _FUNCTIONS:
        address = ctypes.cast(getattr(library, prefix + name), ctypes.c_void_p).value
        if not address:
            raise OSError(f"{path}: {prefix + name} is at address 0")
        addresses.append(address)
    return tuple(addresses)


def _open_scipy_openblas32() -> _Opened:
    """scipy-openblas32's OpenBLAS: its description, handle and function addresses."""
    path = _library_path()
    library = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    # The thread count as well: at one thread the core's AVX-512 kernel takes the
    # minibatch products it runs faster than this OpenBLAS (_gemm_avx512.h).
    threads = ctypes.cast(getattr(library, _SYMBOL_PREFIX + "openblas_get_num_threads"),
                          ctypes.c_void_p).value or 0
    addresses = _addresses(library, path, _SYMBOL_PREFIX) + (threads,)
    config = getattr(library, _SYMBOL_PREFIX + "openblas_get_config")
    config.restype = ctypes.c_char_p
    # The kernels it chose for this CPU, or was told to by OPENBLAS_CORETYPE.
    core = getattr(library, _SYMBOL_PREFIX + "openblas_get_corename")
    core.restype = ctypes.c_char_p
    narrow = _narrower_than_avx512(core().decode())
    version = importlib.metadata.version("scipy-openblas32")
    return (f"{SCIPY_OPENBLAS32} {version} ({config().decode()}), {path}", library, addresses,
            narrow)


def _narrower_than_avx512(core: str) -> bool:
    """Whether OpenBLAS's kernels for the core it names (openblas_get_corename)
    use vectors narrower than 512 bits."""
    return core.lower() not in _AVX512_CORES


def _mkl_library_path() -> str:
    """libmkl_rt (mkl_rt on Windows) from the installed mkl wheel, which puts its
    libraries beside the environment's, not inside site-packages."""
    try:
        files = importlib.metadata.distribution("mkl").files or []
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            "the mkl package is not installed (pip install 'cyprop[mkl]')") from None
    for file in files:
        name = file.name
        if (name.startswith(("libmkl_rt.", "mkl_rt.")) and not name.endswith((".a", ".lib"))
                and (".so" in name or name.endswith((".dll", ".dylib")))):
            return os.path.normpath(str(file.locate()))
    raise ImportError("mkl is installed, but without its mkl_rt library")


def _open_mkl() -> _Opened:
    """oneMKL through its single dynamic library, on 32-bit integers."""
    path = _mkl_library_path()
    library = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    # Before any other call: the core passes 32-bit integers, and MKL_INTERFACE_LAYER
    # in the environment, or an earlier user of the same library, could ask for 64.
    set_layer = library.MKL_Set_Interface_Layer
    set_layer.restype = ctypes.c_int
    set_layer.argtypes = [ctypes.c_int]
    layer = set_layer(_MKL_INTERFACE_LP64)
    if layer != _MKL_INTERFACE_LP64:
        raise ImportError(f"{path}: MKL's interface layer is {layer}, not LP64 (32-bit "
                          "integers): another user of MKL in this process chose it first")
    addresses = _addresses(library, path, "")
    text = ctypes.create_string_buffer(256)
    library.MKL_Get_Version_String(text, ctypes.c_int(len(text)))
    version = importlib.metadata.version("mkl")
    # MKL chooses its kernels by CPU and does not say: taken as full width.
    return (f"{MKL} {version} ({text.value.decode().strip()}), {path}", library, addresses,
            False)


def _use(setting: str, opener: Callable[[], _Opened]) -> str:
    """Point the core at the library that opener loads (once a process); returns
    its description."""
    global _in_use
    if setting not in _loaded:
        _loaded[setting] = opener()
    description, _, addresses, narrow = _loaded[setting]
    _core.use_blas(*addresses)
    # Twice as fast as such kernels, the AVX-512 kernel takes every product it can.
    _core.take_every_product(narrow and _core.full_width_avx512())
    _in_use = setting
    return description


def _scipys_blas() -> str:
    """The name of the BLAS scipy was built against ("" when scipy does not say)."""
    try:
        from scipy import __config__

        return str(__config__.CONFIG["Build Dependencies"]["blas"]["name"])
    except (ImportError, AttributeError, KeyError, TypeError):
        return ""


def _select(setting: str | None = None) -> None:
    """Point the core at the library that setting (by default, CYPROP_BLAS) asks for,
    and describe it. Benchmarks call it again to compare libraries in one process."""
    global _description, _in_use
    if setting is None:
        setting = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if setting not in ("", SCIPY, SCIPY_OPENBLAS32, MKL):
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE}={setting!r}: use {SCIPY_OPENBLAS32!r}, {SCIPY!r} or "
            f"{MKL!r}, or leave it unset for the first that loads"
        )
    if setting == MKL:
        try:
            _description = _use(MKL, _open_mkl)
        except (ImportError, OSError, AttributeError) as error:
            raise ImportError(f"{ENVIRONMENT_VARIABLE}={MKL} but MKL did not load: "
                              f"{error}") from error
        return
    scipys = _scipys_blas()
    if setting == SCIPY:
        reason = f" ({ENVIRONMENT_VARIABLE}={SCIPY})"
    elif setting == "" and "openblas" not in scipys.lower():
        reason = (f"; scipy's BLAS is {scipys!r}, not OpenBLAS" if scipys
                  else "; scipy does not say which BLAS it was built against")
    else:
        try:
            _description = _use(SCIPY_OPENBLAS32, _open_scipy_openblas32)
            return
        except (ImportError, OSError, AttributeError) as error:
            if setting == SCIPY_OPENBLAS32:
                raise ImportError(
                    f"{ENVIRONMENT_VARIABLE}={SCIPY_OPENBLAS32} but its OpenBLAS did not "
                    f"load: {error}"
                ) from error
            reason = f"; {SCIPY_OPENBLAS32} did not load: {error}"
            if importlib.util.find_spec("scipy_openblas32") is not None:
                warnings.warn(f"cyprop: {SCIPY_OPENBLAS32} is installed but its OpenBLAS did "
                              f"not load ({error}); using scipy's BLAS", RuntimeWarning,
                              stacklevel=2)
    _core.use_blas()
    # scipy's BLAS gives the core no thread count, so the kernel takes nothing
    _core.take_every_product(False)
    _in_use = SCIPY
    _description = f"{SCIPY}'s own BLAS (scipy.linalg.cython_blas){reason}"


def blas_library() -> str:
    """The BLAS that cyprop's matrix products run on, as a sentence.

    Products of layers of at least ``4,096`` multiply-adds per batch go to
    BLAS, or on CPUs with AVX-512 to cyprop's own kernel where it runs them
    faster (all of them where this library's kernels use narrower vectors
    than the CPU's; README.md says when); smaller ones run in cyprop's own
    loops. The environment variable
    ``CYPROP_BLAS`` chooses the library when cyprop is imported:
    ``scipy-openblas32`` (the default when it loads and scipy's own BLAS is
    OpenBLAS too), ``scipy``, or ``mkl`` (oneMKL, from ``pip install
    'cyprop[mkl]'``).

    Returns
    -------
    str
        The library's name, version and configuration (or why the default
        did not load), and its path.
    """
    return _description


def warm_up_product() -> None:
    """One 512 x 512 x 512 float32 product through the core, on the library it calls."""
    n = 512
    ones = np.ones((n, n), dtype=np.float32)
    params = np.zeros(n * n + n, dtype=np.float32)
    activations = np.array([_core.ACTIVATIONS["identity"]], dtype=np.intc)
    _core.forward(ones, params, np.array([n, n], dtype=np.intp), activations,
                  np.empty(n * n, dtype=np.float32))


_select()
