"""The BLAS the core's matrix products run on: the choice at import, and its controls."""

import ctypes
import importlib.metadata
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import cyprop
from cyprop import Network, _core

# The wheel is a dependency on the platforms it has builds for (pyproject.toml).
HAS_WHEEL = importlib.util.find_spec("scipy_openblas32") is not None
needs_wheel = pytest.mark.skipif(not HAS_WHEEL, reason="scipy-openblas32 has no build here")

# Hides the scipy-openblas32 wheel from cyprop's search for it, in a child process.
HIDE_WHEEL = (
    "import importlib.util\n"
    "find_spec = importlib.util.find_spec\n"
    "importlib.util.find_spec = (lambda name, *args:\n"
    "    None if name == 'scipy_openblas32' else find_spec(name, *args))\n"
)

# Trains a network whose products go to BLAS, in a child process, and prints
# the library and the trained parameters.
TRAIN = (
    "import numpy as np\n"
    "import cyprop\n"
    "from threadpoolctl import threadpool_limits\n"
    "rng = np.random.default_rng(3)\n"
    "X, y = rng.standard_normal((96, 40)), rng.standard_normal((96, 3))\n"
    "net = cyprop.Network([40, 64, 3], activation='tanh', output_activation='identity',\n"
    "                     seed=2)\n"
    "with threadpool_limits(1):\n"
    "    net.fit(X, y, epochs=3, batch_size=32, learning_rate=0.01)\n"
    "print(cyprop.blas_library())\n"
    "print(' '.join(repr(float(v)) for p in net.weights + net.biases for v in p.ravel()))\n"
)


def run_child(code, setting=None):
    environment = dict(os.environ)
    environment.pop("CYPROP_BLAS", None)
    if setting is not None:
        environment["CYPROP_BLAS"] = setting
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment)


def trained(setting=None, prefix=""):
    result = run_child(prefix + TRAIN, setting)
    assert result.returncode == 0, result.stderr
    library, values = result.stdout.strip().split("\n")
    return library, np.array([float(v) for v in values.split()])


def openblas32_path():
    return cyprop.blas_library().rsplit(", ", 1)[1]


@needs_wheel
def test_the_newer_openblas_is_the_default():
    """scipy-openblas32 is a dependency: without CYPROP_BLAS the core runs on it."""
    version = importlib.metadata.version("scipy-openblas32")
    assert tuple(int(part) for part in version.split(".")[:3]) >= (0, 3, 31)
    if os.environ.get("CYPROP_BLAS", "") == "scipy":
        pytest.skip("CYPROP_BLAS=scipy is set for this run")
    description = cyprop.blas_library()
    assert description.startswith(f"scipy-openblas32 {version} (OpenBLAS ")
    assert os.path.isfile(openblas32_path())


def library_addresses(path):
    """The addresses of the four functions in the OpenBLAS at path (loaded once more,
    which gives the same handle and addresses in this process)."""
    library = ctypes.CDLL(path, mode=os.RTLD_LOCAL)
    return tuple(ctypes.cast(getattr(library, f"scipy_{name}_"), ctypes.c_void_p).value
                 for name in ("sgemm", "dgemm", "sgemv", "dgemv"))


def scipy_addresses():
    """The addresses behind scipy.linalg.cython_blas's sgemm, dgemm, sgemv and dgemv."""
    from scipy.linalg import cython_blas

    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    capsules = [cython_blas.__pyx_capi__[name] for name in ("sgemm", "dgemm", "sgemv", "dgemv")]
    return tuple(get_pointer(capsule, get_name(capsule)) for capsule in capsules)


def test_the_core_calls_the_library_it_names():
    if cyprop.blas_library().startswith("scipy-openblas32"):
        assert _core.blas_in_use() == library_addresses(openblas32_path())
        assert _core.blas_in_use() != scipy_addresses()
    else:
        assert _core.blas_in_use() == scipy_addresses()


def test_the_core_can_go_back_to_scipys_blas():
    before = _core.blas_in_use()
    try:
        _core.use_blas()
        assert _core.blas_in_use() == scipy_addresses()
    finally:
        _core.use_blas(*before)
    assert _core.blas_in_use() == before


def test_threadpoolctl_sets_the_thread_count_of_the_library_in_use():
    """The documented thread control reaches the library the products run on."""
    if not cyprop.blas_library().startswith("scipy-openblas32"):
        pytest.skip("the core runs on scipy's BLAS in this run")
    path = os.path.realpath(openblas32_path())

    def threads():
        found = [info["num_threads"] for info in threadpool_info()
                 if os.path.realpath(info["filepath"]) == path]
        assert len(found) == 1, threadpool_info()
        return found[0]

    initial = threads()
    with threadpool_limits(1):
        assert threads() == 1
    assert threads() == initial


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_products_through_the_library_in_use(dtype, tolerance):
    """predict on layers that reach BLAS, with a row and a column of one (gemv) and
    without, against numpy in float64."""
    rng = np.random.default_rng(5)
    sizes = [70, 90, 80]
    weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.standard_normal(b) for b in sizes[1:]]
    net = Network.from_weights(weights, biases, activation="identity",
                               output_activation="identity", dtype=dtype)
    for n_rows in (1, 64):
        X = rng.standard_normal((n_rows, sizes[0]))
        expected = (X @ weights[0] + biases[0]) @ weights[1] + biases[1]
        got = net.predict(X.astype(dtype))
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


@needs_wheel
def test_scipys_blas_on_request_trains_to_the_same_result():
    default_library, default_params = trained()
    scipy_library, scipy_params = trained("scipy")
    assert default_library.startswith("scipy-openblas32 ")
    assert scipy_library == "scipy's own BLAS (scipy.linalg.cython_blas) (CYPROP_BLAS=scipy)"
    # Two OpenBLAS versions may add in different orders: float64 rounding apart.
    np.testing.assert_allclose(scipy_params, default_params, rtol=1e-11, atol=1e-13)


@needs_wheel
def test_without_the_wheel_the_default_falls_back_to_scipys_blas():
    library, params = trained(prefix=HIDE_WHEEL)
    assert library.startswith("scipy's own BLAS (scipy.linalg.cython_blas); "
                              "scipy-openblas32 did not load: ")
    assert "not installed" in library
    np.testing.assert_allclose(params, trained()[1], rtol=1e-11, atol=1e-13)


def test_asking_for_the_wheel_without_it_fails_at_import():
    result = run_child(HIDE_WHEEL + "import cyprop\n", "scipy-openblas32")
    assert result.returncode != 0
    assert "ImportError: CYPROP_BLAS=scipy-openblas32 but its OpenBLAS did not load" in \
        result.stderr


@pytest.mark.parametrize("setting", ["mkl", "SCIPY", "scipy_openblas32"])
def test_an_unknown_setting_fails_at_import(setting):
    result = run_child("import cyprop\n", setting)
    assert result.returncode != 0
    assert f"ValueError: CYPROP_BLAS='{setting}': use 'scipy-openblas32' or 'scipy'" in \
        result.stderr


@needs_wheel
def test_an_empty_setting_is_the_default():
    assert trained("")[0].startswith("scipy-openblas32 ")
