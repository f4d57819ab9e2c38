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
from cyprop import Network, _blas_library, _core

from .blas_addresses import library_addresses, scipy_addresses

# The wheel is a dependency on the platforms it has builds for (pyproject.toml),
# and the default where scipy's own BLAS is an OpenBLAS as well.
HAS_WHEEL = importlib.util.find_spec("scipy_openblas32") is not None
needs_wheel = pytest.mark.skipif(not HAS_WHEEL, reason="scipy-openblas32 has no build here")
SCIPY_ON_OPENBLAS = "openblas" in _blas_library._scipys_blas().lower()
needs_default_wheel = pytest.mark.skipif(
    not (HAS_WHEEL and SCIPY_ON_OPENBLAS),
    reason="scipy-openblas32 is not the default here (not installed, or scipy's BLAS is not "
           "OpenBLAS)")

# oneMKL, an optional extra (cyprop[mkl]); .ci/run installs it for these tests.
try:
    importlib.metadata.distribution("mkl")
    HAS_MKL = True
except importlib.metadata.PackageNotFoundError:
    HAS_MKL = False
needs_mkl = pytest.mark.skipif(not HAS_MKL, reason="the mkl wheel is not installed")

# Hides the mkl wheel's metadata, by which cyprop finds its library, in a child process.
HIDE_MKL = (
    "import importlib.metadata\n"
    "distribution = importlib.metadata.distribution\n"
    "def hidden(name):\n"
    "    if name == 'mkl':\n"
    "        raise importlib.metadata.PackageNotFoundError(name)\n"
    "    return distribution(name)\n"
    "importlib.metadata.distribution = hidden\n"
)

# Hides the scipy-openblas32 wheel from cyprop's search for it, in a child process.
HIDE_WHEEL = (
    "import importlib.util\n"
    "find_spec = importlib.util.find_spec\n"
    "importlib.util.find_spec = (lambda name, *args:\n"
    "    None if name == 'scipy_openblas32' else find_spec(name, *args))\n"
)

# Trains a network whose products go to BLAS, in a child process, and prints
# the library, whether the core calls scipy's BLAS, and the trained parameters.
TRAIN = (
    "import sys\n"
    f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
    "import numpy as np\n"
    "import cyprop\n"
    "from cyprop import _core\n"
    "from blas_addresses import scipy_addresses\n"
    "from threadpoolctl import threadpool_limits\n"
    "rng = np.random.default_rng(3)\n"
    "X, y = rng.standard_normal((96, 40)), rng.standard_normal((96, 3))\n"
    "net = cyprop.Network([40, 64, 3], activation='tanh', output_activation='identity',\n"
    "                     seed=2, dtype=DTYPE)\n"
    "with threadpool_limits(1):\n"
    "    net.fit(X, y, epochs=3, batch_size=32, learning_rate=0.01)\n"
    "print(cyprop.blas_library())\n"
    "print(_core.blas_in_use() == scipy_addresses())\n"
    "print(' '.join(repr(float(v)) for p in net.weights + net.biases for v in p.ravel()))\n"
)

# Makes the scipy in a child process say it was built against another BLAS.
OTHER_SCIPY_BLAS = (
    "from scipy import __config__\n"
    "__config__.CONFIG['Build Dependencies']['blas']['name'] = 'accelerate'\n"
)

# Points cyprop's search for the wheel at a folder whose library is not one.
BROKEN_WHEEL = (
    "import importlib.machinery, importlib.util, os, tempfile\n"
    "folder = tempfile.mkdtemp()\n"
    "os.makedirs(os.path.join(folder, 'lib'))\n"
    "open(os.path.join(folder, 'lib', 'libscipy_openblas.so'), 'wb').write(b'not a library')\n"
    "find_spec = importlib.util.find_spec\n"
    "fake = importlib.machinery.ModuleSpec('scipy_openblas32', None,\n"
    "                                      origin=os.path.join(folder, '__init__.py'))\n"
    "importlib.util.find_spec = (lambda name, *args:\n"
    "    fake if name == 'scipy_openblas32' else find_spec(name, *args))\n"
)


def run_child(code, setting=None):
    environment = dict(os.environ)
    environment.pop("CYPROP_BLAS", None)
    if setting is not None:
        environment["CYPROP_BLAS"] = setting
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment)


def trained(setting=None, prefix="", dtype="float64"):
    """(library description, whether the core calls scipy's BLAS, trained parameters)."""
    result = run_child(prefix + TRAIN.replace("DTYPE", repr(dtype)), setting)
    assert result.returncode == 0, result.stderr
    library, on_scipy, values = result.stdout.strip().split("\n")
    return library, on_scipy == "True", np.array([float(v) for v in values.split()])


def library_path():
    return cyprop.blas_library().rsplit(", ", 1)[1]


@needs_default_wheel
def test_the_newer_openblas_is_the_default():
    """scipy-openblas32 is a dependency: without CYPROP_BLAS the core runs on it."""
    version = importlib.metadata.version("scipy-openblas32")
    assert tuple(int(part) for part in version.split(".")[:3]) >= (0, 3, 31)
    if os.environ.get("CYPROP_BLAS", "") in ("scipy", "mkl"):
        pytest.skip(f"CYPROP_BLAS={os.environ['CYPROP_BLAS']} is set for this run")
    description = cyprop.blas_library()
    assert description.startswith(f"scipy-openblas32 {version} (OpenBLAS ")
    assert os.path.isfile(library_path())


def test_the_core_calls_the_library_it_names():
    if cyprop.blas_library().startswith("scipy-openblas32"):
        assert _core.blas_in_use() == library_addresses(library_path())
        assert _core.blas_in_use() != scipy_addresses()
    elif cyprop.blas_library().startswith("mkl "):
        assert _core.blas_in_use() == library_addresses(library_path(), prefix="")
    else:
        assert _core.blas_in_use() == scipy_addresses()


def test_the_core_can_go_back_to_scipys_blas():
    before = _core.blas_in_use()
    threads = _core.blas_threads_function()
    try:
        _core.use_blas()
        assert _core.blas_in_use() == scipy_addresses()
        # scipy's BLAS does not tell its thread count: no product goes to AVX-512.
        assert _core.blas_threads_function() == 0
        assert not _core.takes_avx512_product(64, 256, 784, 4)
    finally:
        _core.use_blas(*before, threads)
    assert _core.blas_in_use() == before
    assert _core.blas_threads_function() == threads


def test_openblas_cores_whose_kernels_are_narrower_than_avx512():
    for core in ("Haswell", "Zen", "Sandybridge", "Prescott"):
        assert _blas_library._narrower_than_avx512(core)
    for core in ("SkylakeX", "Cooperlake", "SAPPHIRERAPIDS"):
        assert not _blas_library._narrower_than_avx512(core)


def test_the_kernel_takes_every_product_where_openblas_runs_narrower_kernels():
    """With scipy-openblas32 on kernels narrower than 512 bits, on a CPU whose
    512-bit units run at full width, and only then."""
    if cyprop.blas_library().startswith("scipy-openblas32"):
        library = ctypes.CDLL(library_path(), mode=ctypes.RTLD_LOCAL)
        core = library.scipy_openblas_get_corename
        core.restype = ctypes.c_char_p
        narrow = _blas_library._narrower_than_avx512(core().decode())
    else:
        narrow = False
    expected = narrow and _core.full_width_avx512() and _core.blas_threads_function() != 0
    assert _core.kernel_takes_every_product() == expected


@pytest.mark.parametrize("setting", ["scipy", pytest.param("mkl", marks=needs_mkl)])
def test_other_libraries_leave_the_kernel_its_measured_shapes(setting):
    result = run_child("from cyprop import _core\n"
                       "print(_core.kernel_takes_every_product())\n", setting)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_threadpoolctl_sets_the_thread_count_of_the_library_in_use():
    """The documented thread control reaches the library the products run on."""
    if not cyprop.blas_library().startswith(("scipy-openblas32", "mkl ")):
        pytest.skip("the core runs on scipy's BLAS in this run")
    path = os.path.realpath(library_path())

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


TOLERANCES = {"float64": 1e-11, "float32": 1e-4}


@needs_default_wheel
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scipys_blas_on_request_trains_to_the_same_result(dtype):
    default_library, default_on_scipy, default_params = trained(dtype=dtype)
    scipy_library, scipy_on_scipy, scipy_params = trained("scipy", dtype=dtype)
    assert default_library.startswith("scipy-openblas32 ")
    assert not default_on_scipy
    assert scipy_library == "scipy's own BLAS (scipy.linalg.cython_blas) (CYPROP_BLAS=scipy)"
    assert scipy_on_scipy
    # Two OpenBLAS versions may add in different orders: rounding apart.
    np.testing.assert_allclose(scipy_params, default_params, rtol=TOLERANCES[dtype],
                               atol=TOLERANCES[dtype] / 100)


@needs_default_wheel
def test_without_the_wheel_the_default_falls_back_to_scipys_blas():
    library, on_scipy, params = trained(prefix=HIDE_WHEEL)
    assert library.startswith("scipy's own BLAS (scipy.linalg.cython_blas); "
                              "scipy-openblas32 did not load: ")
    assert "not installed" in library
    assert on_scipy
    np.testing.assert_allclose(params, trained()[2], rtol=1e-11, atol=1e-13)


@pytest.mark.skipif(not SCIPY_ON_OPENBLAS, reason="scipy's BLAS is not OpenBLAS here")
def test_a_wheel_that_does_not_load_falls_back_with_a_warning():
    result = run_child(BROKEN_WHEEL + TRAIN.replace("DTYPE", "'float64'"))
    assert result.returncode == 0, result.stderr
    library, on_scipy, _ = result.stdout.strip().split("\n")
    assert library.startswith("scipy's own BLAS (scipy.linalg.cython_blas); "
                              "scipy-openblas32 did not load: ")
    assert on_scipy == "True"
    assert "RuntimeWarning: cyprop: scipy-openblas32 is installed but its OpenBLAS did " \
        "not load" in result.stderr


def test_a_scipy_built_with_another_blas_keeps_it():
    library, on_scipy, _ = trained(prefix=OTHER_SCIPY_BLAS)
    assert library == ("scipy's own BLAS (scipy.linalg.cython_blas); "
                       "scipy's BLAS is 'accelerate', not OpenBLAS")
    assert on_scipy


@needs_wheel
def test_asking_for_the_wheel_takes_it_whatever_scipys_blas():
    library, on_scipy, _ = trained("scipy-openblas32", prefix=OTHER_SCIPY_BLAS)
    assert library.startswith("scipy-openblas32 ")
    assert not on_scipy


def test_asking_for_the_wheel_without_it_fails_at_import():
    result = run_child(HIDE_WHEEL + "import cyprop\n", "scipy-openblas32")
    assert result.returncode != 0
    assert "ImportError: CYPROP_BLAS=scipy-openblas32 but its OpenBLAS did not load" in \
        result.stderr


@pytest.mark.parametrize("setting", ["MKL", "SCIPY", "scipy_openblas32", "openblas"])
def test_an_unknown_setting_fails_at_import(setting):
    result = run_child("import cyprop\n", setting)
    assert result.returncode != 0
    assert (f"ValueError: CYPROP_BLAS='{setting}': use 'scipy-openblas32', 'scipy' or "
            "'mkl'") in result.stderr


@needs_default_wheel
def test_an_empty_setting_is_the_default():
    assert trained("")[0].startswith("scipy-openblas32 ")


def test_the_core_refuses_a_thread_count_function_without_its_library():
    before, threads = _core.blas_in_use(), _core.blas_threads_function()
    with pytest.raises(ValueError, match="thread-count function only with"):
        _core.use_blas(0, 0, 0, 0, 12345)
    assert _core.blas_in_use() == before
    assert _core.blas_threads_function() == threads


@pytest.mark.parametrize("given", [1, 2, 3])
def test_the_core_refuses_some_addresses_without_the_others(given):
    before = _core.blas_in_use()
    addresses = list(before[:given]) + [0] * (4 - given)
    with pytest.raises(ValueError, match="four addresses, or none"):
        _core.use_blas(*addresses)
    assert _core.blas_in_use() == before


@needs_mkl
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mkl_on_request_trains_to_the_same_result(dtype):
    """CYPROP_BLAS=mkl sends the products to oneMKL; the training agrees with the
    default library's to rounding, and repeats bit for bit."""
    library, on_scipy, params = trained("mkl", dtype=dtype)
    assert library.startswith("mkl ")
    assert "Math Kernel Library" in library
    assert not on_scipy
    _, _, again = trained("mkl", dtype=dtype)
    np.testing.assert_array_equal(again, params)
    _, _, default_params = trained(dtype=dtype)
    np.testing.assert_allclose(params, default_params, rtol=TOLERANCES[dtype],
                               atol=TOLERANCES[dtype] / 100)


# In a child process on MKL: the addresses the core calls against MKL's own, then
# MKL's thread count as threadpoolctl reports it inside and after a limit of 1.
ON_MKL = (
    "import ctypes, os, sys\n"
    f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
    "import cyprop\n"
    "from cyprop import _core\n"
    "from threadpoolctl import threadpool_info, threadpool_limits\n"
    "path = cyprop.blas_library().rsplit(', ', 1)[1]\n"
    "library = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)\n"
    "mine = tuple(ctypes.cast(getattr(library, name + '_'), ctypes.c_void_p).value\n"
    "             for name in ('sgemm', 'dgemm', 'sgemv', 'dgemv'))\n"
    "print(_core.blas_in_use() == mine)\n"
    "def threads():\n"
    "    found = [i['num_threads'] for i in threadpool_info()\n"
    "             if os.path.realpath(i['filepath']) == os.path.realpath(path)]\n"
    "    assert len(found) == 1, threadpool_info()\n"
    "    return found[0]\n"
    "initial = threads()\n"
    "with threadpool_limits(1):\n"
    "    print(threads())\n"
    "print(threads() == initial)\n"
)


@needs_mkl
def test_mkl_is_the_library_the_core_calls_and_threadpoolctl_reaches_it():
    result = run_child(ON_MKL, "mkl")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "1", "True"]


@needs_mkl
def test_mkl_runs_on_32_bit_integers_whatever_the_environment_asks():
    """MKL_INTERFACE_LAYER=ILP64 would have MKL read the core's 32-bit sizes as 64-bit
    ones; cyprop sets the interface itself, before MKL's first call."""
    code = ("import numpy as np, cyprop\n"
            "rng = np.random.default_rng(1)\n"
            "W, b = rng.standard_normal((70, 90)), rng.standard_normal(90)\n"
            "X = rng.standard_normal((64, 70))\n"
            "net = cyprop.Network.from_weights([W], [b], output_activation='identity')\n"
            "print(np.abs(net.predict(X) - (X @ W + b)).max())\n")
    environment = dict(os.environ, CYPROP_BLAS="mkl", MKL_INTERFACE_LAYER="ILP64")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environment)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 1e-12


def test_asking_for_mkl_without_it_fails_at_import():
    result = run_child(HIDE_MKL + "import cyprop\n", "mkl")
    assert result.returncode != 0
    assert "ImportError: CYPROP_BLAS=mkl but MKL did not load: the mkl package is not " \
        "installed (pip install 'cyprop[mkl]')" in result.stderr
