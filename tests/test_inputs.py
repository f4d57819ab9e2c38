"""Any memory layout, dtype and container of valid data gives the results of a
contiguous float copy; invalid data raises, never crashes."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cyprop import Network

NET = Network([5, 7, 3], activation="tanh", output_activation="sigmoid", seed=0)
rng = np.random.default_rng(0)
BASE_X = rng.standard_normal((12, 5))
BASE_Y = rng.uniform(0, 1, (12, 3))


def layouts(array):
    """The same values in many memory layouts."""
    wide = np.zeros((array.shape[0] * 2, array.shape[1] * 3))
    wide[::2, ::3] = array
    read_only = array.copy()
    read_only.flags.writeable = False
    # C-contiguous but one byte off the alignment of a double.
    raw = np.zeros(array.nbytes + 1, dtype=np.uint8)
    misaligned = raw[1:].view(np.float64).reshape(array.shape)
    misaligned[...] = array
    assert not misaligned.flags.aligned and misaligned.flags.c_contiguous
    return {
        "fortran": np.asfortranarray(array),
        "strided": wide[::2, ::3],
        "negative-row-stride": np.ascontiguousarray(array[::-1])[::-1],
        "negative-strides": np.ascontiguousarray(array[::-1, ::-1])[::-1, ::-1],
        "read-only": read_only,
        "misaligned": misaligned,
        "big-endian": array.astype(">f8"),
        "list": array.tolist(),
        "float32-source": array.astype(np.float32).astype(np.float64),
    }


@pytest.mark.parametrize("layout", list(layouts(BASE_X)))
# The plain loops, and BLAS (12 x 5 x 700 multiply-adds); both dtypes.
@pytest.mark.parametrize("sizes", [[5, 7, 3], [5, 700, 3]])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_layouts_give_the_results_of_a_contiguous_copy(layout, sizes, dtype):
    X = layouts(BASE_X)[layout]
    y = layouts(BASE_Y)[layout]
    reference = np.ascontiguousarray(X, dtype=dtype)
    target = np.ascontiguousarray(y, dtype=dtype)
    net = Network(sizes, activation="tanh", output_activation="sigmoid", seed=0, dtype=dtype)
    assert net.predict(X).tobytes() == net.predict(reference).tobytes()
    assert net.loss(X, y) == net.loss(reference, target)
    a, b = (Network(sizes, seed=1, dtype=dtype) for _ in range(2))
    a.fit(X, y, epochs=3, batch_size=5)
    b.fit(reference, target, epochs=3, batch_size=5)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        assert p.tobytes() == q.tobytes()
    a.partial_fit(X, y)
    b.partial_fit(reference, target)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        assert p.tobytes() == q.tobytes()
    gradients = (a.gradients(X, y), b.gradients(reference, target))
    for p, q in zip(gradients[0][0] + gradients[0][1], gradients[1][0] + gradients[1][1]):
        assert p.tobytes() == q.tobytes()


def test_a_big_endian_dtype_names_the_native_one():
    net = Network([5, 7, 3], activation="tanh", output_activation="sigmoid", dtype=">f8",
                  seed=0)
    assert net.dtype == np.float64 and net.dtype.isnative
    assert net.predict(BASE_X).tobytes() == NET.predict(BASE_X).tobytes()


def test_inputs_are_not_modified():
    X = BASE_X.copy()
    y = BASE_Y.copy()
    Network([5, 7, 3], seed=1).fit(X, y, epochs=2, batch_size=4)
    assert np.array_equal(X, BASE_X) and np.array_equal(y, BASE_Y)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint16, np.int64, np.float16,
                                   np.float32])
def test_integer_boolean_and_other_float_inputs_are_converted(dtype):
    X = (BASE_X > 0).astype(dtype) if dtype is np.bool_ else (BASE_X * 3).astype(dtype)
    expected = NET.predict(X.astype(np.float64))
    assert NET.predict(X).tobytes() == expected.tobytes()


def test_object_arrays_of_numbers_are_converted():
    X = BASE_X.astype(object)
    assert NET.predict(X).tobytes() == NET.predict(BASE_X).tobytes()
    with pytest.raises(TypeError, match="object array that does not convert"):
        NET.predict(np.array([["a"] * 5], dtype=object))
    with pytest.raises(ValueError, match="NaN"):  # numpy turns None into NaN
        NET.predict(np.array([[None] * 5], dtype=object))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    X=hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.int32, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
        elements={"allow_nan": True, "allow_infinity": True},
    ),
)
def test_any_array_is_predicted_or_refused_clearly(X):
    try:
        output = NET.predict(X)
    except (ValueError, TypeError) as error:
        assert str(error)
        valid = X.ndim == 2 and X.shape[1] == 5 and X.shape[0] > 0
        if valid:
            assert "NaN or infinity" in str(error)
    else:
        assert X.ndim == 2 and X.shape[1] == 5 and X.shape[0] > 0
        assert output.shape == (X.shape[0], 3)
        assert np.isfinite(output).all()


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=2, max_size=5),
    n_samples=st.integers(1, 20),
    batch_size=st.one_of(st.none(), st.integers(1, 25)),
    dtype=st.sampled_from(["float32", "float64"]),
    activation=st.sampled_from(["sigmoid", "tanh", "relu", "leaky_relu", "identity"]),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**16),
)
def test_training_any_shape_gives_finite_results_or_a_clear_error(
        sizes, n_samples, batch_size, dtype, activation, scale, seed):
    data = np.random.default_rng(seed)
    X = data.standard_normal((n_samples, sizes[0])) * scale
    y = data.uniform(0, 1, (n_samples, sizes[-1]))
    net = Network(sizes, activation=activation, output_activation="sigmoid",
                  loss="binary_cross_entropy", reduction="mean", dtype=dtype, seed=seed)
    try:
        history = net.fit(X, y, epochs=3, learning_rate=0.1, batch_size=batch_size)
    except FloatingPointError as error:
        assert "diverged in epoch" in str(error)
    else:
        assert np.isfinite(history.loss).all()
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)
    try:
        outputs = net.predict(X)
    except FloatingPointError as error:  # finite weights can still overflow float32
        assert "overflowed the range of" in str(error)
    else:
        assert np.isfinite(outputs).all()


@pytest.mark.parametrize("seed", range(5))
def test_float32_gives_no_nan_where_float64_gives_none(seed):
    data = np.random.default_rng(seed)
    X = data.standard_normal((200, 8)) * 50
    labels = data.integers(0, 4, 200)
    Y = np.eye(4)[labels]
    results = {}
    for dtype in ("float64", "float32"):
        net = Network([8, 32, 32, 4], activation="relu", output_activation="softmax",
                      loss="cross_entropy", reduction="mean", dtype=dtype, seed=seed)
        history = net.fit(X, Y, epochs=20, batch_size=16, optimizer="adam",
                          learning_rate=0.01)
        results[dtype] = history.loss
        assert np.isfinite(net.predict(X)).all()
    assert np.isfinite(results["float64"]).all() and np.isfinite(results["float32"]).all()


# --- targets and sample weights of any shape, dtype and value -------------------

N_SAMPLES = BASE_X.shape[0]
NON_FINITE = st.sampled_from([np.nan, np.inf, -np.inf])


def element_arrays(shape, valid=False):
    """Arrays of ``shape`` in several dtypes, with values that train without
    overflowing and, unless ``valid``, negative values, NaN and infinity."""
    def of(dtype):
        kind = np.dtype(dtype).kind
        if kind == "b":
            elements = st.booleans()
        elif kind == "f":
            elements = st.floats(0 if valid else -100, 100, width=32)
            elements = elements if valid else st.one_of(elements, NON_FINITE)
        else:
            elements = st.integers(0 if valid or kind == "u" else -100, 100)
        return hnp.arrays(dtype=dtype, shape=shape, elements=elements)

    return st.sampled_from([np.float64, np.float32, np.int32, np.uint8, np.bool_]).flatmap(of)


def shapes_near(*valid):
    """Mostly the valid shapes, sometimes any other."""
    return st.one_of(st.sampled_from(valid),
                     hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=13))


def as_container(array, kind):
    return array.tolist() if kind == "list" else array


def small_network(n_outputs, dtype):
    return Network([5, 4, n_outputs], activation="tanh", output_activation="sigmoid",
                   reduction="mean", dtype=dtype, seed=0)


def train_both_ways(net, y, sample_weight):
    """fit, then partial_fit; the error raised by either, or None."""
    for train in (lambda: net.fit(BASE_X, y, epochs=2, learning_rate=0.01, batch_size=5,
                                  sample_weight=sample_weight),
                  lambda: net.partial_fit(BASE_X, y, sample_weight, learning_rate=0.01)):
        before = [p.copy() for p in net.weights + net.biases]
        try:
            train()
        except (ValueError, TypeError) as error:
            for p, q in zip(before, net.weights + net.biases):  # refused before any step
                assert p.tobytes() == q.tobytes()
            return error
    return None


def assert_trained_or_refused(net, error, valid, argument_pattern):
    """Valid data trained to finite weights; invalid data raised naming the argument."""
    event("valid" if valid else "invalid")
    if valid:
        assert error is None
        assert all(np.isfinite(p).all() for p in net.weights + net.biases)
    else:
        assert error is not None
        assert re.search(argument_pattern, str(error)), str(error)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n_outputs=st.sampled_from([1, 3]),
       dtype=st.sampled_from(["float64", "float32"]),
       container=st.sampled_from(["array", "list"]))
def test_any_targets_train_or_are_refused_naming_y(data, n_outputs, dtype, container):
    valid_shapes = [(N_SAMPLES, n_outputs)] + ([(N_SAMPLES,)] if n_outputs == 1 else [])
    y = data.draw(st.one_of(
        element_arrays(st.sampled_from(valid_shapes), valid=True),
        element_arrays(shapes_near(*valid_shapes, (N_SAMPLES - 1, n_outputs),
                                   (N_SAMPLES, n_outputs + 1)))))
    net = small_network(n_outputs, dtype)
    error = train_both_ways(net, as_container(y, container), None)
    valid = y.shape in valid_shapes and np.isfinite(y.astype(np.float64)).all()
    assert_trained_or_refused(net, error, valid, r"\by\b")


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["float64", "float32"]),
       container=st.sampled_from(["array", "list"]))
def test_any_sample_weight_trains_or_is_refused_naming_it(data, dtype, container):
    weights = data.draw(st.one_of(
        element_arrays((N_SAMPLES,), valid=True),
        element_arrays(shapes_near((N_SAMPLES,), (N_SAMPLES - 1,), (N_SAMPLES, 1)))))
    net = small_network(3, dtype)
    error = train_both_ways(net, BASE_Y, as_container(weights, container))
    values = weights.astype(np.float64)
    valid = (weights.shape == (N_SAMPLES,) and np.isfinite(values).all()
             and (values >= 0).all() and (values > 0).any())
    assert_trained_or_refused(net, error, valid, r"\bsample_weight\b")
