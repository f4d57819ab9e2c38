"""Where scipy.linalg.cython_blas's functions are, for tests of the BLAS the core calls.

A module of its own, importing nothing from cyprop, so that a child process
can use it before or after importing cyprop.
"""

import ctypes

FUNCTIONS = ("sgemm", "dgemm", "sgemv", "dgemv")


def scipy_addresses():
    """The addresses behind scipy.linalg.cython_blas's sgemm, dgemm, sgemv and dgemv."""
    from scipy.linalg import cython_blas

    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    capsules = [cython_blas.__pyx_capi__[name] for name in FUNCTIONS]
    return tuple(get_pointer(capsule, get_name(capsule)) for capsule in capsules)


def library_addresses(path, prefix="scipy_"):
    """The addresses of the four functions in the library at path, whose symbols carry
    prefix (scipy-openblas builds: "scipy_"; MKL: none), loaded once more, which in
    the same process gives the same handle and addresses."""
    library = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    return tuple(ctypes.cast(getattr(library, f"{prefix}{name}_"), ctypes.c_void_p).value
                 for name in FUNCTIONS)
