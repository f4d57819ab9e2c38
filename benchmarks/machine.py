"""A description of the machine and libraries, printed beside every benchmark."""

import ctypes
import os
import platform
import sys


def cpu_model():
    """The CPU's name, with its family and model numbers and whether it has AVX2
    where /proc/cpuinfo says (a VM may name only the vendor: "AMD EPYC")."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
                if not line.strip():
                    break
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    avx2 = "avx2" if "avx2" in fields.get("flags", "").split() else "no avx2"
    return (f"{fields['model name']}, family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}, {avx2}")


def describe():
    """Lines describing the CPU, the Python stack and the BLAS in use."""
    import numpy
    import scipy

    import cyprop
    from cyprop import _core

    lines = [
        f"cpu: {cpu_model()} ({os.cpu_count()} logical cores)",
        f"os: {platform.platform()}",
        f"python {platform.python_version()}, numpy {numpy.__version__}, "
        f"scipy {scipy.__version__}, cyprop {cyprop.__version__}",
        f"cyprop's BLAS: {cyprop.blas_library()}",
        "cyprop's AVX-512 kernel takes: "
        + ("every product it can (its BLAS runs narrower kernels)"
           if _core.kernel_takes_every_product() else "the shapes it beats OpenBLAS's AVX-512 at"),
    ]
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                 "OMP_NUM_THREADS"):
        if name in os.environ:
            lines.append(f"{name}={os.environ[name]}")
    if os.environ.get("OPENBLAS_CORETYPE"):
        lines.append(
            "note: OPENBLAS_CORETYPE makes every OpenBLAS in this process run the kernels "
            "it names, and the peak matmul rate is theirs; cyprop's AVX-512 code does not "
            "follow it, so its rows can pass 100% of that limit. For the kernels this CPU "
            "has, run the same command under env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append("blas: threadpoolctl not installed (pip install 'cyprop[bench]')")
    else:
        for pool in threadpool_info():
            lines.append(
                f"blas: {pool.get('internal_api')} {pool.get('version')} "
                f"{pool.get('architecture')}, {pool.get('num_threads')} threads, "
                f"{os.path.basename(pool.get('filepath', ''))}"
            )
    return lines


def sgemm_functions():
    """sgemm of scipy's BLAS and of every other library cyprop has loaded (its default,
    and MKL once a benchmark has asked for it): a dict of name to function(alpha, a, b,
    c, beta=0.0, trans_a=0, trans_b=0), which sets c = alpha op(a) @ op(b) + beta c in
    place on Fortran-ordered float32 arrays, as scipy.linalg.blas.sgemm does with
    overwrite_c."""
    from scipy.linalg.blas import sgemm as scipy_sgemm

    from cyprop import _blas_library

    def through_scipy(alpha, a, b, c, beta=0.0, trans_a=0, trans_b=0):
        scipy_sgemm(alpha, a, b, beta=beta, c=c, trans_a=trans_a, trans_b=trans_b,
                    overwrite_c=1)

    functions = {"scipy": through_scipy}
    for setting, (_, library, *_) in _blas_library._loaded.items():
        prefix = _blas_library._SYMBOL_PREFIX if setting == "scipy-openblas32" else ""
        functions[setting] = _cblas_sgemm(getattr(library, prefix + "cblas_sgemm"))
    return functions


def _cblas_sgemm(cblas_sgemm):
    """A sgemm_functions() entry calling the C interface's cblas_sgemm."""
    cblas_sgemm.restype = None
    cblas_sgemm.argtypes = [ctypes.c_int] * 6 + [
        ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
        ctypes.c_float, ctypes.c_void_p, ctypes.c_int,
    ]
    column_major, no_transpose, transpose = 102, 111, 112

    def through_library(alpha, a, b, c, beta=0.0, trans_a=0, trans_b=0):
        assert a.flags.f_contiguous and b.flags.f_contiguous and c.flags.f_contiguous
        m, k = a.shape[::-1] if trans_a else a.shape
        n = b.shape[0] if trans_b else b.shape[1]
        assert c.shape == (m, n)
        cblas_sgemm(column_major, transpose if trans_a else no_transpose,
                    transpose if trans_b else no_transpose, m, n, k, alpha, a.ctypes.data,
                    a.shape[0], b.ctypes.data, b.shape[0], beta, c.ctypes.data, m)

    return through_library


def load_mkl():
    """Load oneMKL beside cyprop's default BLAS, warm it up, and return its description
    (None when the mkl wheel is not installed or does not load, with the reason
    printed). Called before threads are limited, so that the limits reach it too;
    cyprop's products go back to the default library."""
    from cyprop import _blas_library

    try:
        _blas_library._select("mkl")
    except ImportError as error:
        print(f"cyprop MKL rows: not run ({error})")
        return None
    _blas_library.warm_up_product()
    description = _blas_library.blas_library()
    _blas_library._select()
    return description


def limit_threads(n_threads=1):
    """Pin BLAS threads when threadpoolctl is available; returns a context manager."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        print("warning: threadpoolctl missing, BLAS threads not pinned", file=sys.stderr)
        return contextlib.nullcontext()
    return threadpool_limits(limits=n_threads)


def peer_versions(contenders):
    """One line per peer of bench_peers.py: its version, or why it cannot be imported."""
    lines = []
    for contender in contenders:
        if contender.failure:
            lines.append(f"peer {contender.name}: {contender.failure}")
        else:
            lines.append(f"peer {contender.name}: {contender.version_text}")
    try:
        import torch
    except ImportError:
        pass
    else:
        mkl = torch.backends.mkl.is_available()
        lines.append(f"torch BLAS: {'MKL' if mkl else 'no MKL'}, oneDNN "
                     f"{'on' if torch.backends.mkldnn.is_available() else 'off'} "
                     "(linked into torch; threads set with torch.set_num_threads)")
    return lines
