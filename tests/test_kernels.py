"""The core's functions chosen once per dtype (cyprop._kernels)."""

import numpy as np
import pytest

from cyprop import Network, _core
from cyprop._kernels import kernels_for

from .reference import random_network_arrays

DTYPES = [np.float32, np.float64]


def _network_arrays(dtype, rng):
    sizes = [3, 5, 2]
    weights, biases = random_network_arrays(rng, sizes, dtype)
    params = np.concatenate([part.ravel() for pair in zip(weights, biases) for part in pair])
    codes = np.array([_core.ACTIVATIONS["sigmoid"], _core.ACTIVATIONS["identity"]],
                     dtype=np.intc)
    return np.array(sizes, dtype=np.intp), params, codes


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_give_the_fused_functions_bits(dtype):
    rng = np.random.default_rng(0)
    sizes, params, codes = _network_arrays(dtype, rng)
    X = rng.standard_normal((7, 3)).astype(dtype)
    Y = rng.standard_normal((7, 2)).astype(dtype)
    kernels = kernels_for(np.dtype(dtype))

    chosen, fused = np.empty(7 * 7, dtype), np.empty(7 * 7, dtype)
    kernels.forward(X, params, sizes, codes, chosen)
    _core.forward(X, params, sizes, codes, fused)
    assert chosen.tobytes() == fused.tobytes()

    no_weights = np.empty(0, dtype)
    grads = [np.zeros_like(params) for _ in range(2)]
    scratch = [(np.empty(7 * 7, dtype), np.empty(7 * 7, dtype)) for _ in range(2)]
    losses = [
        function(X, Y, no_weights, params, sizes, codes, _core.LOSSES["mse"], 1.0,
                 *work, gradient)
        for function, work, gradient in zip(
            (kernels.loss_gradient, _core.loss_gradient), scratch, grads)
    ]
    assert losses[0] == losses[1]
    assert grads[0].tobytes() == grads[1].tobytes()
    assert kernels.penalty(params, sizes, 0.25) == _core.penalty(params, sizes, 0.25)
    assert kernels.all_finite_values(params)
    params[4] = np.nan
    assert not kernels.all_finite_values(params)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_accept_only_their_dtype(dtype):
    other = np.float32 if dtype == np.float64 else np.float64
    kernels = kernels_for(np.dtype(dtype))
    with pytest.raises(ValueError, match="dtype"):
        kernels.all_finite_values(np.ones(3, dtype=other))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_network_trains_with_its_dtype_kernels(dtype):
    net = Network([2, 3, 1], seed=0, dtype=dtype)
    assert net._kernels is kernels_for(net.dtype)
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    history = net.fit(X, [1.0, 1.0, 0.0], epochs=20, learning_rate=0.5)
    assert history[-1] < history[0]
    assert net.predict(X).dtype == np.dtype(dtype)
