"""The :class:`Network`: parameters, checks of user input, and the training driver.

This is the only module that talks to the Cython core. It validates and
converts every input, allocates every buffer the core writes into, and turns
the core's status codes into exceptions.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from cyprop import _core
from cyprop._blas_warmup import blas_is_warm, warm_up_blas
from cyprop._kernels import kernels_for
from cyprop._persistence import ModelFileError, check_path, read_model, write_model
from cyprop._validation import (
    MAX_DIMENSION,
    check_activations,
    check_bool,
    check_choice,
    check_dtype,
    check_features,
    check_finite,
    check_integer,
    check_layer_sizes,
    check_non_negative_float,
    check_optimizer_for_dtype,
    check_positive_float,
    check_sample_weight,
    check_split_weights,
    check_targets,
    count_parameters,
)
from cyprop.history import History
from cyprop.optimizers import LBFGS, IRPropMinus, Optimizer, make_optimizer

ACTIVATIONS = tuple(_core.ACTIVATIONS)
HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "softmax")
LOSSES = tuple(_core.LOSSES)
# Losses defined only on the outputs of one activation, whose delta fuses to a - y.
LOSS_OUTPUT_ACTIVATION = {"binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}
REDUCTIONS = ("sum", "mean")
INITS = ("glorot", "he", "lesson")

# Row chunks for predict, loss and gradients hold about this many activations
# (16 MiB in float32): 1,024 rows through 1024-wide layers fit in one, whose
# products ran 10% faster at 2 BLAS threads than three chunks of 342.
_CHUNK_ACTIVATIONS = 1 << 22
# A call of the training loop is handed at most this many sample orders.
_ORDERS_PER_CALL = 1 << 20
# Multiply-adds of training per call of the training loop (about a second at
# most), and between two looks for Ctrl-C inside it (a few milliseconds).
_WORK_PER_CALL = 1 << 30
_WORK_PER_SIGNAL_CHECK = 1 << 22


class Network:
    """A multilayer perceptron trained by backpropagation.

    Layer ``l`` computes ``A_next = f(A @ W + b)`` with ``W`` of shape
    ``(fan_in, fan_out)`` and ``b`` of shape ``(fan_out,)``, on row-major data
    ``X`` of shape ``(n_samples, n_features)``, as in the lesson.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first: ``[3, 4, 1]`` is the lesson's network
        with 3 inputs, 4 hidden units and 1 output. A network has at most
        2**31 - 1 weights and biases in all (8 GiB in float32).
    activation : str or sequence of str, default="sigmoid"
        Activation of the hidden layers: one of "sigmoid", "tanh", "relu",
        "leaky_relu" (slope 0.01), "identity", or a list with one name per
        hidden layer.
    output_activation : str, optional
        Activation of the output layer: one of the above or "softmax".
        Defaults to ``activation`` when that is a single name.
    loss : {"mse", "binary_cross_entropy", "cross_entropy"}, default="mse"
        The per-sample loss. "mse" is ``1/2 * sum_k (a_k - y_k)**2``;
        "binary_cross_entropy" (with a sigmoid output) is
        ``-sum_k [y_k log a_k + (1 - y_k) log(1 - a_k)]``; "cross_entropy"
        (with a softmax output) is ``-sum_k y_k log a_k``. Both
        cross-entropies take targets in [0, 1] and are computed from the
        output's pre-activations, so they stay finite.
    reduction : {"sum", "mean"}, default="sum"
        How per-sample losses combine into the objective of a batch: their
        sum, as in the lesson, or their mean, as in PyTorch and scikit-learn.
        Under "mean" a learning rate behaves the same at any batch size.
    dtype : {"float64", "float32"}, default="float64"
        Floating type of the parameters and of every computation.
    seed : int, optional
        Seeds the initial weights and the shuffling of samples in
        :meth:`fit`. The same seed, data and thread count give the same
        weights, bit for bit.
    init : {"glorot", "he", "lesson"}, default="glorot"
        Initial weights. "glorot" draws ``W`` and ``b`` uniformly from
        ``[-r, r]`` with ``r = sqrt(6 / (fan_in + fan_out))``; "he" draws
        ``W`` from a normal with standard deviation ``sqrt(2 / fan_in)`` and
        sets biases to zero. "lesson" draws every weight and bias
        uniformly from ``[0, 1)`` with ``np.random.RandomState(seed).rand``,
        in the lesson's order (``W1, b1, W2, b2, ...``), so that ``seed=1``
        reproduces the lesson's starting point exactly.

    Notes
    -----
    The objective of a batch of ``n`` samples is ``L = sum_i l_i`` under
    ``reduction="sum"`` and ``L = (1/n) sum_i l_i`` under ``"mean"``, where
    ``l_i = 1/2 * sum_k (a_ik - y_ik)**2`` for "mse". The ``1/2`` makes the
    output error ``a - y`` the exact derivative, so one step of :meth:`fit`
    with ``reduction="sum"`` is the lesson's update ``W -= learning_rate *
    A_prev.T @ delta``. :meth:`loss` returns ``L`` over the samples given,
    :meth:`gradients` returns exactly ``dL/dW`` and ``dL/db``, and :meth:`fit`
    takes gradient steps on ``L`` of each minibatch.

    The lesson prints ``mean((a - y)**2)``; with one output and
    ``reduction="sum"`` that equals ``2 * L / n_samples``.

    Examples
    --------
    >>> import numpy as np
    >>> from cyprop import Network
    >>> X = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]])
    >>> y = np.array([[0], [1], [1], [0]])
    >>> net = Network([3, 4, 1], activation="sigmoid", seed=1, init="lesson")
    >>> history = net.fit(X, y, epochs=10_000, learning_rate=0.1)
    >>> (net.predict(X) > 0.5).astype(int).ravel()
    array([0, 1, 1, 0])
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Sequence[str] = "sigmoid",
        output_activation: str | None = None,
        loss: str = "mse",
        reduction: str = "sum",
        dtype: Any = "float64",
        seed: int | None = None,
        init: str = "glorot",
    ) -> None:
        sizes = check_layer_sizes(layer_sizes)
        activations = check_activations(activation, output_activation, len(sizes) - 1,
                                        HIDDEN_ACTIVATIONS, ACTIVATIONS)
        if seed is not None:
            seed = check_integer(seed, "seed", minimum=0, maximum=None)
        init = check_choice(init, "init", INITS)
        self._configure(sizes, activations, loss, reduction, dtype)
        init_seed, shuffle_seed = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(shuffle_seed)
        self._initialize(init, seed, init_seed)

    # --- construction ----------------------------------------------------

    def _configure(
        self,
        sizes: tuple[int, ...],
        activations: tuple[str, ...],
        loss: str,
        reduction: str,
        dtype: Any,
    ) -> None:
        """Store the configuration and allocate the flat parameter buffer with its views."""
        self._layer_sizes = sizes
        self._activations = activations
        self._loss = check_choice(loss, "loss", LOSSES)
        required = LOSS_OUTPUT_ACTIVATION.get(self._loss)
        if required is not None and activations[-1] != required:
            raise ValueError(
                f"loss {self._loss!r} needs output_activation={required!r}, "
                f"got {activations[-1]!r}"
            )
        if activations[-1] == "softmax" and sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 units; use sigmoid for one")
        self._reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self._dtype = check_dtype(dtype)
        self._kernels = kernels_for(self._dtype)
        self._sizes = np.array(sizes, dtype=np.intp)
        # Per sample: the activations of every layer after the input, and the
        # multiply-adds of the largest layer's product.
        self._n_units = sum(sizes[1:])
        self._largest_layer = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        self._activation_codes = np.array(
            [_core.ACTIVATIONS[name] for name in activations], dtype=np.intc
        )
        self._loss_code = _core.LOSSES[self._loss]
        self._params = np.zeros(count_parameters(self._layer_sizes), dtype=self._dtype)
        self._weights, self._biases = self._layer_views(self._params)
        self._fit_lock = threading.Lock()
        self._optimizer_state: _OptimizerState | None = None

    def _fans(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each layer."""
        return list(zip(self._layer_sizes[:-1], self._layer_sizes[1:]))

    def _layer_views(self, flat: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-layer views (W, b) into a buffer laid out like the parameters."""
        weights, biases = [], []
        offset = 0
        for fan_in, fan_out in self._fans():
            weights.append(flat[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out))
            offset += fan_in * fan_out
            biases.append(flat[offset : offset + fan_out])
            offset += fan_out
        return weights, biases

    def _initialize(
        self, init: str, seed: int | None, seed_sequence: np.random.SeedSequence
    ) -> None:
        if init == "lesson":
            legacy = np.random.RandomState(
                seed if seed is not None else seed_sequence.generate_state(1)[0]
            )
            for W, b in zip(self._weights, self._biases):
                W[...] = legacy.rand(*W.shape)
                b[...] = legacy.rand(1, b.shape[0])[0]
            return
        rng = np.random.default_rng(seed_sequence)
        for W, b in zip(self._weights, self._biases):
            fan_in, fan_out = W.shape
            if init == "glorot":
                # Biases from the same range, as scikit-learn draws them: on
                # friedman1 this gains about 1.3 points of R^2 over zeros
                # (benchmarks/README.md, bench_quality.py).
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                W[...] = rng.uniform(-bound, bound, size=W.shape)
                b[...] = rng.uniform(-bound, bound, size=b.shape)
            else:
                W[...] = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=W.shape)
                b[...] = 0.0

    @classmethod
    def from_weights(
        cls,
        weights: Sequence[Any],
        biases: Sequence[Any],
        activation: str | Sequence[str] = "sigmoid",
        output_activation: str | None = None,
        loss: str = "mse",
        reduction: str = "sum",
        dtype: Any = None,
        seed: int | None = None,
    ) -> Network:
        """Build a network from given weights and biases, which are copied.

        Parameters
        ----------
        weights : sequence of array-like
            One matrix per layer, of shape ``(fan_in, fan_out)``; each layer's
            fan_in is the previous layer's fan_out.
        biases : sequence of array-like
            One vector per layer, of shape ``(fan_out,)`` or ``(1, fan_out)``.
        activation, output_activation, loss, reduction
            As in :class:`Network`.
        dtype : {"float64", "float32"}, optional
            Defaults to float32 when every weight and bias is float32, else
            float64.
        seed : int, optional
            Seeds the shuffling of samples in :meth:`fit`.

        Returns
        -------
        Network

        Examples
        --------
        >>> import numpy as np
        >>> from cyprop import Network
        >>> net = Network.from_weights([np.eye(2)], [np.zeros(2)], activation="identity")
        >>> net.predict(np.array([[1.0, 2.0]]))
        array([[1., 2.]])
        """
        if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
            raise TypeError("weights must be a list of 2-D arrays, one per layer")
        if isinstance(biases, np.ndarray) or not isinstance(biases, Sequence):
            raise TypeError("biases must be a list of arrays, one per layer")
        if len(weights) == 0:
            raise ValueError("weights is empty: a network needs at least one layer")
        if len(biases) != len(weights):
            raise ValueError(
                f"got {len(weights)} weight matrices but {len(biases)} bias vectors"
            )
        W_arrays = [_rectangular(W, f"weights[{index}]") for index, W in enumerate(weights)]
        b_arrays = [_rectangular(b, f"biases[{index}]") for index, b in enumerate(biases)]
        for index, (W, b) in enumerate(zip(W_arrays, b_arrays)):
            if W.ndim != 2:
                raise ValueError(
                    f"weights[{index}] must be 2-D (fan_in, fan_out), got shape {W.shape}"
                )
            if W.size == 0:
                raise ValueError(
                    f"weights[{index}] has shape {W.shape}: a layer needs at least 1 input "
                    "and 1 output"
                )
            if b.shape not in ((W.shape[1],), (1, W.shape[1])):
                raise ValueError(
                    f"biases[{index}] must have shape ({W.shape[1]},) or (1, {W.shape[1]}) "
                    f"to match weights[{index}] of shape {W.shape}, got {b.shape}"
                )
            if index > 0 and W.shape[0] != W_arrays[index - 1].shape[1]:
                raise ValueError(
                    f"weights[{index}] has {W.shape[0]} rows but layer {index - 1} has "
                    f"{W_arrays[index - 1].shape[1]} outputs"
                )
        sizes = check_layer_sizes([W_arrays[0].shape[0]] + [W.shape[1] for W in W_arrays])
        if dtype is None:
            # Either byte order: '>f4' is float32 too.
            all_float32 = all(a.dtype.kind == "f" and a.dtype.itemsize == 4
                              for a in W_arrays + b_arrays)
            dtype = "float32" if all_float32 else "float64"
        activations = check_activations(activation, output_activation, len(sizes) - 1,
                                        HIDDEN_ACTIVATIONS, ACTIVATIONS)
        if seed is not None:
            seed = check_integer(seed, "seed", minimum=0, maximum=None)
        net = cls.__new__(cls)
        net._configure(sizes, activations, loss, reduction, dtype)
        net._rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
        for index, (W, b) in enumerate(zip(W_arrays, b_arrays)):
            net._weights[index][...] = check_features(
                W, W.shape[1], net._dtype, f"weights[{index}]"
            )
            net._biases[index][...] = check_features(
                b.reshape(1, -1), b.size, net._dtype, f"biases[{index}]"
            )[0]
        return net

    # --- configuration and parameters ------------------------------------

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Units per layer, input first."""
        return self._layer_sizes

    @property
    def activations(self) -> tuple[str, ...]:
        """Activation name of each layer, the output layer's last."""
        return self._activations

    @property
    def loss_name(self) -> str:
        """Name of the per-sample loss."""
        return self._loss

    @property
    def reduction(self) -> str:
        """How per-sample losses combine into a batch's objective: "sum" or "mean"."""
        return self._reduction

    @property
    def dtype(self) -> np.dtype:
        """Floating type of the parameters and computations."""
        return self._dtype

    @property
    def n_parameters(self) -> int:
        """Number of weights and biases."""
        return int(self._params.size)

    @property
    def weights(self) -> list[np.ndarray]:
        """Weight matrices, ``(fan_in, fan_out)`` each: live views, writable in place."""
        return list(self._weights)

    @property
    def biases(self) -> list[np.ndarray]:
        """Bias vectors, ``(fan_out,)`` each: live views, writable in place."""
        return list(self._biases)

    def __repr__(self) -> str:
        return (
            f"Network({list(self._layer_sizes)}, activations={list(self._activations)}, "
            f"loss={self._loss!r}, reduction={self._reduction!r}, dtype={self._dtype.name!r})"
        )

    # --- buffers ---------------------------------------------------------

    def _activation_buffer(self, n_rows: int) -> np.ndarray:
        """A flat buffer for every layer's activations over ``n_rows`` samples."""
        return np.empty(n_rows * self._n_units, dtype=self._dtype)

    def _warm_up_blas(self, n_rows: int) -> None:
        """Prepare BLAS when a product over ``n_rows`` rows will reach it."""
        if n_rows * self._largest_layer >= _core.BLAS_MIN_PRODUCT and not blas_is_warm():
            warm_up_blas()

    def _chunk_rows(self, n_samples: int) -> int:
        """Rows per chunk so that a chunk's activations stay near _CHUNK_ACTIVATIONS,
        in chunks of equal size: a remainder would be a slow product of a few
        rows (1,024 rows in chunks of 509 once left one of 6)."""
        most = max(1, min(n_samples, _CHUNK_ACTIVATIONS // self._n_units))
        n_chunks = -(-n_samples // most)
        return -(-n_samples // n_chunks)

    def _check_data(
        self, X: Any, y: Any, sample_weight: Any = None, name: str = "",
        finite_X: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """X, y and sample weights as the core needs them (no weights: an empty array).

        With ``finite_X`` false, X's values are left for the caller to check
        for NaN and infinity (:meth:`_check_X_values`, or the epoch loop).
        """
        X = check_features(X, self._layer_sizes[0], self._dtype, f"{name}X",
                           self._kernels.all_finite_values, finite=finite_X)
        y = check_targets(y, X.shape[0], self._layer_sizes[-1], self._dtype, f"{name}y",
                          self._kernels.all_finite_values)
        if self._loss in LOSS_OUTPUT_ACTIVATION and (y.min() < 0 or y.max() > 1):
            rows = " (one-hot or probability rows)" if self._loss == "cross_entropy" else ""
            raise ValueError(
                f"{name}y must hold targets between 0 and 1 for the {self._loss} loss"
                f"{rows}, got values in [{y.min()}, {y.max()}]"
            )
        if sample_weight is None:
            weights = np.empty(0, dtype=self._dtype)
        else:
            weights = check_sample_weight(sample_weight, X.shape[0], self._dtype,
                                          f"{name}sample_weight")
        # Training writes the parameters while reading the data: data that is
        # a view of them (net.weights[0] as X) would change under it.
        if np.may_share_memory(X, self._params):
            X = X.copy()
        if np.may_share_memory(y, self._params):
            y = y.copy()
        if weights.size and np.may_share_memory(weights, self._params):
            weights = weights.copy()
        return X, y, weights

    def _check_X_values(self, X: np.ndarray) -> None:
        """Raise ValueError, naming the first, if X holds NaN or infinity."""
        check_finite(X, "X", self._kernels.all_finite_values)

    def _check_overflow(self, values: np.ndarray, what: str) -> None:
        """Refuse to hand back NaN or infinity computed from finite inputs."""
        # The fused function: values may be a float64 loss of a float32 network.
        if not _core.all_finite_values(values.reshape(-1)):
            raise FloatingPointError(
                f"{what} produced NaN or infinity from finite inputs: a result "
                f"overflowed the range of {self._dtype.name}. Either the inputs are "
                "extreme (values of X near that range, or sample weights whose sum is "
                "near 0) or the network's weights have grown too large in training, "
                "where a smaller learning rate, weight_decay or float64 can help."
            )

    # --- inference -------------------------------------------------------

    def forward(self, X: Any) -> list[np.ndarray]:
        """Every layer's activations for the samples in ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        list of ndarray
            One array per layer, hidden layers first and the output last:
            ``activations[l]`` has shape ``(n_samples, layer_sizes[l + 1])``.
            The input itself is not included.

        Raises
        ------
        FloatingPointError
            If a layer's activations overflowed to infinity or NaN from
            finite inputs, as :meth:`predict` does.

        Examples
        --------
        >>> from cyprop import Network
        >>> net = Network([3, 4, 1], seed=0)
        >>> [A.shape for A in net.forward([[0, 1, 1], [1, 1, 0]])]
        [(2, 4), (2, 1)]
        """
        X = check_features(X, self._layer_sizes[0], self._dtype, "X",
                           self._kernels.all_finite_values)
        buffer = self._activation_buffer(X.shape[0])
        self._warm_up_blas(X.shape[0])
        self._kernels.forward(X, self._params, self._sizes, self._activation_codes, buffer)
        self._check_overflow(buffer, "forward")
        return self._layer_views_of_activations(buffer, X.shape[0])

    def _layer_views_of_activations(self, buffer: np.ndarray, n_rows: int) -> list[np.ndarray]:
        layers, offset = [], 0
        for size in self._layer_sizes[1:]:
            layers.append(buffer[offset : offset + n_rows * size].reshape(n_rows, size))
            offset += n_rows * size
        return layers

    def predict(self, X: Any) -> np.ndarray:
        """The network's outputs for the samples in ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)

        Examples
        --------
        >>> from cyprop import Network
        >>> Network([3, 4, 1], seed=0).predict([[0, 1, 1]]).shape
        (1, 1)
        """
        X = check_features(X, self._layer_sizes[0], self._dtype, "X",
                           self._kernels.all_finite_values)
        n_samples, n_outputs = X.shape[0], self._layer_sizes[-1]
        chunk = self._chunk_rows(n_samples)
        buffer = self._activation_buffer(chunk)
        self._warm_up_blas(chunk)
        if chunk == n_samples:
            # One chunk (one sample, say): copy its outputs out, and nothing more.
            self._kernels.forward(X, self._params, self._sizes, self._activation_codes, buffer)
            outputs = buffer[buffer.size - n_samples * n_outputs :].reshape(
                n_samples, n_outputs).copy()
        else:
            outputs = np.empty((n_samples, n_outputs), dtype=self._dtype)
            for start in range(0, n_samples, chunk):
                rows = X[start : start + chunk]
                n_rows = rows.shape[0]
                used = buffer[: n_rows * self._n_units]
                self._kernels.forward(rows, self._params, self._sizes, self._activation_codes,
                                      used)
                outputs[start : start + n_rows] = used[used.size - n_rows * n_outputs :].reshape(
                    n_rows, n_outputs
                )
        self._check_overflow(outputs, "predict")
        return outputs

    # --- objective and gradients -----------------------------------------

    def _evaluate(
        self, X: np.ndarray, y: np.ndarray, weights: np.ndarray, weight_decay: float,
        grads: np.ndarray | None = None,
    ) -> float:
        """The objective over all rows of checked data; its flat gradient goes
        into ``grads`` when given."""
        n_samples, n_outputs = X.shape[0], self._layer_sizes[-1]
        total_weight = n_samples if weights.size == 0 else float(weights.sum(dtype=np.float64))
        scale = 1.0 / total_weight if self._reduction == "mean" else 1.0
        chunk = self._chunk_rows(n_samples)
        A_work = self._activation_buffer(chunk)
        self._warm_up_blas(chunk)
        # Deltas for every layer with a gradient; the output pre-activations only without.
        second = self._activation_buffer(chunk) if grads is not None else np.empty(
            chunk * n_outputs, dtype=self._dtype)
        if grads is not None:
            grads[...] = 0
        chunk_grads = np.empty_like(self._params)
        n_units = self._n_units
        total = 0.0
        for start in range(0, n_samples, chunk):
            rows, targets = X[start : start + chunk], y[start : start + chunk]
            row_weights = weights[start : start + chunk] if weights.size else weights
            n_rows = rows.shape[0]
            if grads is not None:
                total += self._kernels.loss_gradient(
                    rows, targets, row_weights, self._params, self._sizes,
                    self._activation_codes, self._loss_code, scale,
                    A_work[: n_rows * n_units], second[: n_rows * n_units], chunk_grads,
                )
                grads += chunk_grads
            else:
                total += self._kernels.loss_sum(
                    rows, targets, row_weights, self._params, self._sizes,
                    self._activation_codes, self._loss_code, A_work[: n_rows * n_units],
                    second[: n_rows * n_outputs],
                )
        penalty = self._kernels.penalty(self._params, self._sizes, weight_decay)
        objective: float = total * scale + penalty
        if grads is not None:
            self._kernels.add_penalty_gradient(self._params, grads, self._sizes, weight_decay)
        return objective

    def loss(self, X: Any, y: Any, sample_weight: Any = None, weight_decay: float = 0.0) -> float:
        """The objective that training minimises, over the samples in ``X``.

        See the class Notes for the convention: the sum of per-sample losses,
        divided by ``n_samples`` (the total sample weight) when
        ``reduction="mean"``, plus ``weight_decay / 2 * sum(W**2)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_outputs), or (n_samples,) for one output
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; a weight of 2 counts a sample twice.
        weight_decay : float, default=0.0
            The L2 penalty's coefficient, as in the optimizers.

        Returns
        -------
        float

        Examples
        --------
        >>> import numpy as np
        >>> from cyprop import Network
        >>> net = Network.from_weights([np.zeros((1, 1))], [np.zeros(1)], activation="identity")
        >>> net.loss([[1.0], [2.0]], [[1.0], [3.0]])  # (1/2)(1 + 9)
        5.0
        """
        X, y, weights = self._check_data(X, y, sample_weight)
        weight_decay = check_non_negative_float(weight_decay, "weight_decay")
        objective = self._evaluate(X, y, weights, weight_decay)
        self._check_overflow(np.array(objective), "loss")
        return objective

    def gradients(
        self, X: Any, y: Any, sample_weight: Any = None, weight_decay: float = 0.0
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Exact gradients of :meth:`loss` with respect to the weights and biases.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_outputs), or (n_samples,) for one output
        sample_weight : array-like of shape (n_samples,), optional
        weight_decay : float, default=0.0

        Returns
        -------
        dW : list of ndarray
            ``dW[l]`` has the shape of ``weights[l]``.
        db : list of ndarray
            ``db[l]`` has the shape of ``biases[l]``.

        Examples
        --------
        >>> import numpy as np
        >>> from cyprop import Network
        >>> net = Network.from_weights([np.zeros((1, 1))], [np.zeros(1)], activation="identity")
        >>> dW, db = net.gradients([[1.0], [2.0]], [[1.0], [3.0]])
        >>> dW[0], db[0]  # sum of (a - y) x and of (a - y)
        (array([[-7.]]), array([-4.]))
        """
        X, y, weights = self._check_data(X, y, sample_weight)
        weight_decay = check_non_negative_float(weight_decay, "weight_decay")
        grads = np.empty_like(self._params)
        self._evaluate(X, y, weights, weight_decay, grads)
        self._check_overflow(grads, "gradients")
        return self._layer_views(grads)

    def check_gradients(
        self, X: Any, y: Any, sample_weight: Any = None, weight_decay: float = 0.0,
        max_per_layer: int | None = None, seed: int = 0,
    ) -> GradientCheck:
        """Compare backpropagation with central finite differences, in float64.

        Each parameter is moved by ``h = 1e-4`` up and down twice and the
        fourth-order central difference of :meth:`loss` is compared with the
        gradient from :meth:`gradients`, both computed on a float64 copy of
        this network. The error of an entry is ``|g - d| / max(|g|, |d|, s)``
        with ``s = 1e-5 * max(1, |loss|)``, so that rounding noise on
        derivatives near zero is measured on the loss's scale. Correct
        gradients give errors around 1e-9; relu's kink at 0 can give a large
        error when a pre-activation lies within ``2h`` of it.

        Parameters
        ----------
        X, y, sample_weight, weight_decay
            As in :meth:`loss`. Keep ``X`` small: each checked parameter
            costs four evaluations of the loss.
        max_per_layer : int, optional
            Check at most this many randomly chosen entries of each weight
            matrix and bias vector (default: all of them).
        seed : int, default=0
            Seeds the choice of entries.

        Returns
        -------
        GradientCheck
            The worst relative error of each layer's weights and biases.

        Examples
        --------
        >>> from cyprop import Network
        >>> net = Network([3, 5, 2], activation="tanh", seed=0)
        >>> X = [[0.1, 0.2, 0.3], [0.3, -0.1, 0.5]]
        >>> bool(net.check_gradients(X, [[0, 1], [1, 0]]).worst < 1e-6)
        True
        """
        X, y, weights = self._check_data(X, y, sample_weight)
        weight_decay = check_non_negative_float(weight_decay, "weight_decay")
        if max_per_layer is not None:
            max_per_layer = check_integer(max_per_layer, "max_per_layer")
        seed = check_integer(seed, "seed", minimum=0, maximum=None)
        net = self._from_config({**self._config(), "dtype": "float64"})
        net._params[...] = self._params
        X, y, weights = (a.astype(np.float64) for a in (X, y, weights))
        flat_grads = np.empty_like(net._params)
        objective = net._evaluate(X, y, weights, weight_decay, flat_grads)
        floor = 1e-5 * max(1.0, abs(objective))
        rng = np.random.default_rng(seed)
        step = 1e-4
        errors = []
        grad_weights, grad_biases = net._layer_views(flat_grads)
        for array, grad in zip(net._weights + net._biases, grad_weights + grad_biases):
            flat, flat_grad = array.reshape(-1), grad.reshape(-1)
            picks = np.arange(flat.size)
            if max_per_layer is not None and flat.size > max_per_layer:
                picks = rng.choice(flat.size, size=max_per_layer, replace=False)
            worst = 0.0
            for index in picks:
                saved = flat[index]
                values = []
                for offset in (2, 1, -1, -2):
                    flat[index] = saved + offset * step
                    values.append(net._evaluate(X, y, weights, weight_decay))
                flat[index] = saved
                numeric = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step)
                analytic = float(flat_grad[index])
                scale = max(abs(analytic), abs(numeric), floor)
                worst = max(worst, abs(analytic - numeric) / scale)
            errors.append(worst)
        n_layers = len(self._weights)
        return GradientCheck(tuple(errors[:n_layers]), tuple(errors[n_layers:]))

    # --- training --------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int = 1,
        learning_rate: float | None = None,
        batch_size: int | None = None,
        shuffle: bool = True,
        verbose: bool | int = False,
        *,
        optimizer: str | Optimizer = "sgd",
        sample_weight: Any = None,
        validation_data: tuple[Any, ...] | None = None,
        validation_fraction: float | None = None,
        early_stopping: bool = False,
        patience: int = 10,
        min_delta: float = 0.0,
        callbacks: Sequence[Callable[..., Any]] | None = None,
    ) -> History:
        """Train by minibatch gradient descent, updating the parameters in place.

        Each epoch splits the samples into batches of ``batch_size`` (the last
        may be smaller) and, for each batch in turn, runs the forward pass,
        backpropagates, and lets the optimizer step on the batch's objective
        ``L`` (see the class Notes). Calling ``fit`` again continues from the
        current weights and, when the optimizer is the same, from its state
        (momentum, moments, step sizes, schedule position).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_outputs), or (n_samples,) for one output
        epochs : int, default=1
            Passes over the data (iterations, for L-BFGS).
        learning_rate : float, optional
            Step size of a named optimizer (default 0.1 for "sgd",
            "momentum" and "nesterov", 0.001 for "adam"). An optimizer
            object carries its own.
        batch_size : int, optional
            Samples per step. ``None`` (the default) means the full batch:
            one step per epoch over all samples, as in the lesson. L-BFGS
            always takes the full batch, and refuses a smaller one.
        shuffle : bool, default=True
            Visit the samples in a new seeded random order each epoch. Has no
            effect with a full batch.
        verbose : bool or int, default=False
            Print the losses every ``verbose`` epochs (``True``: every epoch).
        optimizer : str or optimizer object, default="sgd"
            "sgd", "momentum", "nesterov", "adam", "irprop-", "lbfgs", or an
            object from :mod:`cyprop.optimizers` (which also sets weight
            decay and the learning-rate schedule).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; a weight of 2 counts a sample twice.
        validation_data : tuple, optional
            ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``: its
            objective ``L``, without the weight-decay term, is recorded after
            every epoch.
        validation_fraction : float, optional
            Hold out this fraction of the samples (chosen with the network's
            seeded generator) as validation data instead. The two parts are
            copies of ``X``, held for the length of the call.
        early_stopping : bool, default=False
            Stop when the validation loss has not improved by more than
            ``min_delta`` for ``patience`` epochs, and give the network back
            the weights of its best epoch. Without validation data, 10% of
            the samples are held out.
        patience : int, default=10
        min_delta : float, default=0.0
        callbacks : sequence of callables, optional
            Each is called after every epoch as ``callback(net, logs)``, with
            ``logs`` a dict holding "epoch" (from 1), "loss", "val_loss" and
            "learning_rate"; returning True stops training.

        Returns
        -------
        History
            Behaves as the array of per-epoch training losses: each epoch's
            sum of the batches' objectives (their average weighted by each
            batch's total sample weight under ``reduction="mean"``), each
            batch measured before its update. L-BFGS records the objective
            after each iteration. Also holds ``val_loss``.

        Raises
        ------
        ValueError
            If ``X`` holds NaN or infinity, naming the first such entry. The
            first epoch checks each batch as it reads it, rather than all of
            ``X`` in a pass of its own (unless ``X`` is small beside the
            parameters); a bad value leaves the network as it was before the
            call (parameters, optimizer state, shuffling).
        FloatingPointError
            If the loss or a parameter becomes NaN or infinite. The
            parameters go back to the last values whose loss was measured
            finite (the start of that epoch, or of the one before when its
            first batch already failed), and the optimizer's state is reset.
        RuntimeError
            If this network is already being trained, in another thread or
            by the call whose callback made this one.
        KeyboardInterrupt
            On Ctrl-C, within milliseconds: the parameters are those after the
            last finished batch (L-BFGS: the last accepted iterate), and the
            network can be used and trained further. What another signal's
            handler raises comes out the same way, unchanged.

        Examples
        --------
        >>> from cyprop import Network
        >>> net = Network([2, 1], activation="identity", seed=0)
        >>> history = net.fit([[0, 1], [1, 0]], [3, -1], epochs=200, learning_rate=0.1)
        >>> bool(history[-1] < 1e-6 < history[0])
        True
        """
        X, y, weights = self._check_data(X, y, sample_weight, finite_X=False)
        # Plain ints, floats and bools within range, and the defaults, pass
        # here without a call to their checks, which raise or convert the
        # rest: right after a garbage collection (cold caches) each distinct
        # function a fit calls costs microseconds, and the lesson's whole
        # training takes about 600 (benchmarks/README.md).
        if type(epochs) is not int or not 0 < epochs <= MAX_DIMENSION:
            epochs = check_integer(epochs, "epochs")
        if learning_rate is not None and (type(learning_rate) is not float
                                          or not 0 < learning_rate < math.inf):
            learning_rate = check_positive_float(learning_rate, "learning_rate")
        optimizer = make_optimizer(optimizer, learning_rate)
        check_optimizer_for_dtype(optimizer, self._dtype)
        batch_size = (X.shape[0] if batch_size is None
                      else _check_batch_size(batch_size, X.shape[0]))
        if isinstance(optimizer, LBFGS) and batch_size < X.shape[0]:
            raise ValueError(
                f"the lbfgs optimizer steps on the full batch; leave batch_size None "
                f"(got {batch_size} for {X.shape[0]} samples)"
            )
        if shuffle is not True and shuffle is not False:
            shuffle = check_bool(shuffle, "shuffle")
        if early_stopping is not False:
            early_stopping = check_bool(early_stopping, "early_stopping")
        report_every = 0 if verbose is False else _check_verbose(verbose)
        if patience != 10 or type(patience) is not int:
            patience = check_integer(patience, "patience")
        if min_delta != 0.0 or type(min_delta) is not float:
            min_delta = check_non_negative_float(min_delta, "min_delta")
        callbacks = [] if callbacks is None else _check_callbacks(callbacks)
        if validation_data is not None and validation_fraction is not None:
            raise ValueError("give validation_data or validation_fraction, not both")
        if early_stopping and validation_data is None and validation_fraction is None:
            validation_fraction = 0.1
        # The epoch loop checks X's values as it reads each batch of the first
        # epoch, saving a pass over the data; where it would not read all of X
        # first (L-BFGS, rows held out for validation), they are checked here.
        check_X_in_loop = validation_fraction is None and not isinstance(optimizer, LBFGS)
        if not check_X_in_loop:
            self._check_X_values(X)

        self._start_training()
        try:
            if validation_fraction is not None:
                X, y, weights, validation = self._split_validation(
                    X, y, weights, validation_fraction)
            elif validation_data is not None:
                validation = self._check_validation_data(validation_data)
            else:
                validation = None
            batch_size = min(batch_size, X.shape[0])
            run = _Run(epochs, validation, early_stopping, patience, min_delta,
                       callbacks, report_every)
            if isinstance(optimizer, LBFGS):
                self._fit_lbfgs(X, y, weights, optimizer, run)
            else:
                self._fit_epochs(X, y, weights, optimizer, batch_size,
                                 shuffle and batch_size < X.shape[0], run,
                                 check_X=check_X_in_loop)
            return run.finish(self)
        finally:
            self._fit_lock.release()

    def partial_fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        learning_rate: float | None = None,
        optimizer: str | Optimizer = "sgd",
        batch_size: int | None = None,
    ) -> float:
        """One pass over the samples given, in order, for streaming data.

        Calling ``partial_fit`` on a sequence of batches takes the same steps
        as :meth:`fit` with ``shuffle=False`` over the same batches: the
        optimizer's state carries over between calls. Passes do not count as
        epochs, so they do not advance a learning-rate schedule.

        Parameters
        ----------
        X, y, sample_weight, learning_rate, optimizer
            As in :meth:`fit`; L-BFGS is not available here.
        batch_size : int, optional
            Split the samples given into batches of this size (default: one
            batch of all of them).

        Returns
        -------
        float
            The pass's loss, as one epoch of :meth:`fit` would report it.

        Examples
        --------
        >>> import numpy as np
        >>> from cyprop import Network
        >>> net = Network([2, 1], activation="identity", seed=0)
        >>> for X_part, y_part in [([[0, 1]], [3]), ([[1, 0]], [-1])]:
        ...     loss = net.partial_fit(X_part, y_part, learning_rate=0.5)
        """
        X, y, weights = self._check_data(X, y, sample_weight, finite_X=False)
        if learning_rate is not None:
            learning_rate = check_positive_float(learning_rate, "learning_rate")
        optimizer = make_optimizer(optimizer, learning_rate)
        if isinstance(optimizer, LBFGS):
            raise ValueError("partial_fit does not support the lbfgs optimizer; use fit")
        check_optimizer_for_dtype(optimizer, self._dtype)
        batch_size = _check_batch_size(batch_size, X.shape[0])
        self._start_training()
        try:
            run = _Run(1, None, False, 1, 0.0, [], 0)
            self._fit_epochs(X, y, weights, optimizer, batch_size, False, run,
                             count_epochs=False, check_X=True)
            return float(run.losses[0][0])
        finally:
            self._fit_lock.release()

    def _start_training(self) -> None:
        """Take this network's training lock, to be released in a ``finally``;
        a second trainer is refused."""
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(
                "this network is already being trained (in another thread, or by the "
                "fit or partial_fit whose callback made this call); train a copy "
                "instead (copy.deepcopy(net))"
            )

    def _split_validation(
        self, X: np.ndarray, y: np.ndarray, weights: np.ndarray, fraction: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        fraction = check_positive_float(fraction, "validation_fraction")
        n_samples = X.shape[0]
        n_validation = int(np.ceil(fraction * n_samples))
        if fraction >= 1 or n_validation >= n_samples:
            raise ValueError(
                f"validation_fraction={fraction} leaves no training samples out of {n_samples}"
            )
        rng_state = self._rng.bit_generator.state
        order = self._rng.permutation(n_samples)
        held, kept = np.sort(order[:n_validation]), np.sort(order[n_validation:])
        if weights.size:
            try:
                check_split_weights(weights, held, kept,
                                    f"change validation_fraction={fraction}, or give "
                                    "validation_data")
            except ValueError:
                # A failed fit leaves the network as it was, generator included.
                self._rng.bit_generator.state = rng_state
                raise
        validation = (X[held], y[held], weights[held] if weights.size else weights)
        return X[kept], y[kept], weights[kept] if weights.size else weights, validation

    def _check_validation_data(
        self, data: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise TypeError(
                "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight)"
            )
        sample_weight = data[2] if len(data) == 3 else None
        return self._check_data(data[0], data[1], sample_weight, name="validation_data: ")

    def _state_for(self, optimizer: Optimizer) -> _OptimizerState:
        """The optimizer's state: carried over when the optimizer is unchanged."""
        state = self._optimizer_state
        if state is None or state.optimizer != optimizer or state.buffers.dtype != self._dtype:
            state = _OptimizerState(optimizer, self._params.size, self._dtype)
            self._optimizer_state = state
        return state

    def _fit_epochs(
        self,
        X: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray,
        optimizer: Optimizer,
        batch_size: int,
        shuffle: bool,
        run: _Run,
        count_epochs: bool = True,
        check_X: bool = False,
    ) -> None:
        """Gradient-based training, handing the core as many epochs per call as it can.

        With ``check_X``, X's values have not been checked yet. Unless X is
        small beside the parameters, the core's first epoch checks each batch
        before using it; should one hold NaN or infinity, the parameters, the
        optimizer's state and the random generator go back to what they were
        on entry, and ValueError names the first such value, as if X had been
        checked before training.
        """
        n_samples = X.shape[0]
        if check_X:
            saved_copies = 1 + (0 if self._optimizer_state is None
                                else self._optimizer_state.buffers.shape[0])
            if X.size < 2 * saved_copies * self._params.size:
                # Saving what to put back would cost more than the pass it saves.
                self._check_X_values(X)
                check_X = False
        before = _Saved(self) if check_X else None
        state = self._state_for(optimizer)
        settings = _core_settings(optimizer)
        # Everything the core writes during training is allocated here, once.
        A_work = self._activation_buffer(batch_size)
        delta_work = np.empty(A_work.shape[0], dtype=self._dtype)
        grads = np.empty(self._params.shape[0], dtype=self._dtype)
        backup = np.empty((2, self._params.size), dtype=self._dtype)
        gather_rows = batch_size if shuffle else 0
        X_batch = np.empty((gather_rows, X.shape[1]), dtype=self._dtype)
        y_batch = np.empty((gather_rows, y.shape[1]), dtype=self._dtype)
        weight_batch = np.empty(gather_rows if weights.size else 0, dtype=self._dtype)
        # Empty unless the core splits this network's hidden layer between threads.
        scratch = np.empty(_core.hidden_layer_scratch_size(
            settings, min(batch_size, n_samples), self._sizes, self._activation_codes,
            self._dtype.itemsize, shuffle, weights.size > 0), dtype=self._dtype)
        work_per_sample = self._params.size
        per_call = max(1, min(_ORDERS_PER_CALL // n_samples,
                              _WORK_PER_CALL // (n_samples * work_per_sample)))
        if run.every_epoch:
            per_call = 1
        signal_interval = max(1, _WORK_PER_SIGNAL_CHECK // (batch_size * work_per_sample))
        # Each call's sample orders go into one buffer: 8 bytes a sample and epoch.
        order_buffer = np.empty((min(per_call, run.epochs - run.completed),
                                 n_samples if shuffle else 0), dtype=np.intp)
        self._warm_up_blas(batch_size)
        # After the first call, the second backup row carries the start of the
        # last epoch whose loss was finite into the next call.
        carried = False
        while not run.done:
            count = min(per_call, run.epochs - run.completed)
            if run.report_every:
                count = min(count, run.report_every - run.completed % run.report_every)
            orders = order_buffer[:count]
            if shuffle:
                # 0, 1, ..., n - 1 in every row, without a temporary array of that size.
                orders[0] = 1
                orders[0, 0] = 0
                np.cumsum(orders[0], out=orders[0])
                orders[1:] = orders[0]
                self._rng.permuted(orders, axis=1, out=orders)
            rates = optimizer.schedule.rates(optimizer.learning_rate, state.epoch, count)
            losses = np.empty(count)
            handler_raised: list[BaseException] = []
            completed, status, state.step, good_epoch = self._kernels.train_epochs(
                X, y, weights, orders, batch_size, self._params, self._sizes,
                self._activation_codes, self._loss_code, self._reduction == "mean",
                settings, rates, state.step, state.buffers.reshape(-1), X_batch, y_batch,
                weight_batch, A_work, delta_work, grads, backup, losses, signal_interval,
                before is not None, scratch, resume_known_good=carried,
                signal_exceptions=handler_raised,
            )
            carried = True
            if before is not None:
                # A first epoch that stopped early may not have read all of X.
                if completed == 0 and status != _core.STATUS["interrupted"]:
                    try:
                        self._check_X_values(X)
                    except ValueError:
                        before.restore(self)
                        raise
                    if status == _core.STATUS["input_not_finite"]:
                        raise RuntimeError("the core found a value in X that is not "
                                           "finite, but numpy did not")
                before = None
            if count_epochs:
                state.epoch += completed
            # Whole arrays where all their epochs ran: the history keeps them as they are.
            if completed == count:
                run.record_many(self, losses, rates)
            else:
                run.record_many(self, losses[:completed], rates[:completed])
            if status == _core.STATUS["interrupted"]:
                # The parameters are those of the last finished batch. The
                # exception is the signal handler's own: KeyboardInterrupt for
                # Ctrl-C, or what another handler raised.
                raise handler_raised[0] if handler_raised else KeyboardInterrupt
            if status == _core.STATUS["diverged"]:
                self._optimizer_state = None
                failed = run.completed + 1
                restored = run.completed - completed + good_epoch + 1
                if isinstance(optimizer, IRPropMinus):
                    advice = "Try a smaller max_step or initial_step."
                else:
                    advice = f"Try a smaller learning rate (it was {rates[completed]:g})."
                raise FloatingPointError(
                    f"training diverged in epoch {failed} of {run.epochs}: the loss or a "
                    "parameter became NaN or infinite. The parameters were restored to "
                    + (f"their values at the start of epoch {restored}, the last whose "
                       "loss was finite. " if restored > 0 else
                       "their values before this epoch. ")
                    + advice
                )

    def _fit_lbfgs(
        self, X: np.ndarray, y: np.ndarray, weights: np.ndarray, optimizer: LBFGS, run: _Run
    ) -> None:
        """Full-batch L-BFGS by scipy, fed the core's objective and gradient."""
        from scipy.optimize import minimize

        start = self._params.copy()
        accepted = start.copy()

        grads = np.empty_like(self._params)

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            self._params[...] = flat
            value = self._evaluate(X, y, weights, optimizer.weight_decay, grads)
            return value, grads.astype(np.float64)

        def after_iteration(intermediate_result: Any) -> None:
            self._params[...] = intermediate_result.x
            accepted[...] = self._params
            run.record(self, float(intermediate_result.fun), 1.0)
            if run.done:
                raise StopIteration

        try:
            result = minimize(
                objective, start.astype(np.float64), jac=True, method="L-BFGS-B",
                callback=after_iteration,
                options={"maxiter": run.epochs, "maxcor": optimizer.max_corrections,
                         "ftol": optimizer.tolerance, "gtol": 0.0},
            )
        except BaseException:
            # Ctrl-C, another signal's handler, or a failure inside the objective:
            # the last accepted iterate, not a trial point of the line search.
            self._params[...] = accepted
            raise
        if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
            self._params[...] = start
            raise FloatingPointError(
                f"L-BFGS diverged after {run.completed} iterations: the loss or a "
                "parameter became NaN or infinite. The parameters were restored to "
                "their values before fit."
            )
        self._params[...] = result.x
        if run.completed == 0:
            # Converged before a first iteration (a zero gradient): the history
            # holds the objective where it started.
            run.record(self, float(result.fun), 1.0)
        if run.completed < run.epochs:
            run.converged = True

    # --- persistence -----------------------------------------------------

    def to_onnx(self, path: str | os.PathLike[str]) -> None:
        """Write the network as a standard ONNX model (needs ``cyprop[onnx]``).

        The model maps an input ``X`` of shape ``(batch, n_features)`` in the
        network's dtype to ``Y``, the outputs :meth:`predict` returns, with
        ONNX's MatMul, Add and activation operators (opset 17).

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; an int, which ``open`` would take for a file
            descriptor, raises ``TypeError``.

        Examples
        --------
        >>> import os, tempfile
        >>> from cyprop import Network
        >>> path = os.path.join(tempfile.mkdtemp(), "net.onnx")
        >>> Network([3, 4, 1], seed=0).to_onnx(path)
        >>> os.path.getsize(path) > 0
        True
        """
        from cyprop.export import save_onnx

        save_onnx(self, check_path(path), _core.LEAKY_RELU_SLOPE)

    def _config(self) -> dict[str, Any]:
        return {
            "layer_sizes": list(self._layer_sizes),
            "activations": list(self._activations),
            "loss": self._loss,
            "reduction": self._reduction,
            "dtype": self._dtype.name,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to a file that :meth:`load` reads back exactly.

        The file holds the configuration, the parameters bit for bit, the
        state of the shuffling generator, and a checksum. It is written
        atomically: an interrupted save leaves an existing file untouched.
        It does not hold the optimizer's state (momentum, Adam's moments,
        step sizes, a schedule's position), which a pickle carries.

        Saving over an existing file keeps its permission bits (and its owner
        and group where this process may set them), and saving to a symbolic
        link replaces the file it points to. The new file has a new inode, so
        other hard links to the old one keep the old content.

        Parameters
        ----------
        path : str or os.PathLike

        Raises
        ------
        ValueError
            If a parameter is NaN or infinite (set so through ``weights`` or
            ``biases``): :meth:`load` refuses such a file.
        """
        # The core's check reads the buffer without a boolean copy of its size.
        if not self._kernels.all_finite_values(self._params):
            first = int(np.argmin(np.isfinite(self._params)))
            raise ValueError(
                f"parameter {first} of the network is NaN or infinite; "
                "a model file holds finite parameters only, so it was not saved"
            )
        header = {
            **self._config(),
            "n_parameters": self.n_parameters,
            "rng_state": self._rng.bit_generator.state,
        }
        write_model(path, header, self._params)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Read a network written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        Network

        Raises
        ------
        ValueError
            If the file is not a cyprop model or is damaged (the subclass
            ``cyprop.ModelFileError``), including a file with a valid
            checksum whose header or parameters no saved network has.
        TypeError
            If ``path`` is not a str or os.PathLike (an int would be taken
            for a file descriptor).
        OSError
            If the file cannot be opened or read.
        """
        header, payload = read_model(path)
        name = os.fsdecode(path)
        try:
            # Count the parameters before allocating any: the payload, whose
            # length read_model has checked, must hold exactly that many.
            sizes, _ = cls._config_layers(header)
            n_parameters = header["n_parameters"]
            needed = count_parameters(sizes)
            if needed != n_parameters:
                itemsize = len(payload) // n_parameters
                raise ModelFileError(
                    f"{name} has an invalid header: its layer sizes {list(sizes)} need "
                    f"{needed:,} parameters ({needed * itemsize:,} bytes), but it holds "
                    f"{n_parameters:,} ({len(payload):,} bytes of parameters)"
                )
            net = cls._from_config(header)
            rng_state = header["rng_state"]
        except KeyError as error:
            raise ModelFileError(f"{name} has an invalid header: it has no {error}") from None
        except ModelFileError:
            raise
        except (TypeError, ValueError, OverflowError) as error:
            raise ModelFileError(f"{name} has an invalid header: {error}") from None
        stored = np.dtype(net._dtype.newbyteorder("<"))
        values = np.frombuffer(payload, dtype=stored)
        finite = np.isfinite(values)
        if not finite.all():
            raise ModelFileError(
                f"{name} is damaged: parameter {int(np.argmin(finite))} is NaN or infinite, "
                "which a saved network never holds"
            )
        net._params[...] = values
        try:
            _check_generator_state(rng_state)
            net._rng.bit_generator.state = rng_state
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise ModelFileError(f"{name} has an invalid generator state: {error}") from None
        return net

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Network:
        """An unparameterised network from the configuration that :meth:`_config` wrote."""
        sizes, activations = cls._config_layers(config)
        net = cls.__new__(cls)
        net._configure(sizes, activations, config["loss"], config["reduction"], config["dtype"])
        net._rng = np.random.default_rng()
        return net

    @staticmethod
    def _config_layers(config: dict[str, Any]) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """The checked layer sizes and activations of a configuration, allocating nothing."""
        sizes = check_layer_sizes(config["layer_sizes"])
        activations = config["activations"]
        if not isinstance(activations, list) or len(activations) != len(sizes) - 1:
            raise ValueError("activations must list one name per layer")
        activations = tuple(check_choice(name, "activation", ACTIVATIONS) for name in activations)
        if "softmax" in activations[:-1]:
            raise ValueError("softmax is for the output layer only")
        return sizes, activations

    def __getstate__(self) -> dict[str, Any]:
        optimizer_state = self._optimizer_state
        return {
            **self._config(),
            "params": self._params.copy(),
            "rng_state": self._rng.bit_generator.state,
            "optimizer_state": None if optimizer_state is None else optimizer_state.copy(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        net = self._from_config(state)
        net._params[...] = state["params"]
        net._rng.bit_generator.state = state["rng_state"]
        net._optimizer_state = state.get("optimizer_state")
        self.__dict__.update(net.__dict__)


def _check_generator_state(rng_state: Any) -> None:
    """Refuse a PCG64 state whose integers numpy would wrap rather than reject.

    numpy 1.x converts a negative or oversized value with a deprecation
    warning and keeps its low bits, so the check cannot be left to it.
    """
    if not isinstance(rng_state, dict) or not isinstance(rng_state.get("state"), dict):
        raise TypeError("it is not a mapping with a 'state' mapping")
    bounds = [(rng_state["state"], "state", 2**128), (rng_state["state"], "inc", 2**128),
              (rng_state, "has_uint32", 2), (rng_state, "uinteger", 2**32)]
    for holder, key, bound in bounds:
        value = holder[key]
        if type(value) is not int or not 0 <= value < bound:
            raise ValueError(f"{key} must be an integer from 0 to {bound - 1}, not {value!r}")


class GradientCheck(NamedTuple):
    """Worst relative errors between backpropagation and finite differences.

    Attributes
    ----------
    weights : tuple of float
        One per layer, for its weight matrix.
    biases : tuple of float
        One per layer, for its bias vector.
    """

    weights: tuple[float, ...]
    biases: tuple[float, ...]

    @property
    def worst(self) -> float:
        """The largest error over every layer."""
        return max(self.weights + self.biases)


class _Saved:
    """What training changes in a network, saved to put back should its data
    turn out to be invalid: parameters, optimizer state, random generator."""

    def __init__(self, net: Network) -> None:
        self.params = net._params.copy()
        self.optimizer_state = net._optimizer_state
        self.optimizer_values = (None if net._optimizer_state is None
                                 else net._optimizer_state.copy().__dict__)
        self.rng_state = net._rng.bit_generator.state

    def restore(self, net: Network) -> None:
        net._params[...] = self.params
        net._optimizer_state = self.optimizer_state
        if self.optimizer_state is not None and self.optimizer_values is not None:
            self.optimizer_state.__dict__.update(self.optimizer_values)
        net._rng.bit_generator.state = self.rng_state


class _OptimizerState:
    """An optimizer's buffers (laid out like the parameters), step and epoch counts."""

    def __init__(self, optimizer: Optimizer, n_params: int, dtype: np.dtype) -> None:
        self.optimizer = optimizer
        code = _core.OPTIMIZERS.get(optimizer.kind)
        n_buffers = 0 if code is None else _core.OPTIMIZER_STATE_BUFFERS[code]
        self.buffers = np.zeros((n_buffers, n_params), dtype=dtype)
        if isinstance(optimizer, IRPropMinus):
            self.buffers[1] = optimizer.initial_step
        self.step = 0
        self.epoch = 0

    def copy(self) -> _OptimizerState:
        clone = _OptimizerState.__new__(_OptimizerState)
        clone.__dict__.update(self.__dict__, buffers=self.buffers.copy())
        return clone


def _core_settings(optimizer: Optimizer) -> dict[str, Any]:
    """The core's Optimizer record for ``optimizer``."""
    return {
        "kind": _core.OPTIMIZERS[optimizer.kind],
        "momentum": getattr(optimizer, "momentum", 0.0),
        "beta1": getattr(optimizer, "beta1", 0.0),
        "beta2": getattr(optimizer, "beta2", 0.0),
        "epsilon": getattr(optimizer, "epsilon", 0.0),
        "increase": getattr(optimizer, "increase", 1.0),
        "decrease": getattr(optimizer, "decrease", 1.0),
        "min_step": getattr(optimizer, "min_step", 0.0),
        "max_step": getattr(optimizer, "max_step", 0.0),
        "weight_decay": optimizer.weight_decay,
    }


class _Run:
    """One call to fit: its losses, validation, early stopping, callbacks and reports."""

    def __init__(self, epochs: int,
                 validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                 early_stopping: bool, patience: int, min_delta: float,
                 callbacks: list[Callable[..., Any]], report_every: int) -> None:
        self.epochs = epochs
        self.validation = validation
        self.early_stopping = early_stopping
        self.patience = patience
        self.min_delta = min_delta
        self.callbacks = callbacks
        self.report_every = report_every
        self.every_epoch = validation is not None or early_stopping or bool(callbacks)
        # Chunks of per-epoch values; a whole call of the training loop at a time
        # when no epoch needs Python's attention.
        self.losses: list[np.ndarray] = []
        self.val_losses: list[float] = []
        self.rates: list[np.ndarray] = []
        self.completed = 0
        self.best = np.inf
        self.best_epoch: int | None = None
        self.best_params: np.ndarray | None = None
        self.waited = 0
        self.stopped = False
        self.converged = False

    @property
    def done(self) -> bool:
        return self.stopped or self.completed >= self.epochs

    def record_many(self, net: Network, losses: np.ndarray, rates: np.ndarray) -> None:
        """Account for consecutive finished epochs."""
        if self.every_epoch:
            for loss, rate in zip(losses, rates):
                self.record(net, float(loss), float(rate))
            return
        # Views: the training loop allocates both arrays afresh for each call.
        self.losses.append(losses)
        self.rates.append(rates)
        self.completed += len(losses)
        # Calls of the training loop end on reporting epochs.
        if self.report_every and len(losses) and self.completed % self.report_every == 0:
            print(f"epoch {self.completed}/{self.epochs}  loss {losses[-1]:.10g}", flush=True)

    def record(self, net: Network, loss: float, rate: float) -> None:
        """Account for one finished epoch."""
        self.losses.append(np.array([loss]))
        self.rates.append(np.array([rate]))
        self.completed += 1
        epoch = self.completed
        val_loss = None
        if self.validation is not None:
            val_loss = net._evaluate(*self.validation, 0.0)
            self.val_losses.append(val_loss)
        if self.early_stopping:
            monitored = loss if val_loss is None else val_loss
            if monitored < self.best - self.min_delta:
                self.best, self.best_epoch, self.waited = monitored, epoch, 0
                self.best_params = net._params.copy()
            else:
                self.waited += 1
                self.stopped = self.stopped or self.waited >= self.patience
        if self.report_every and epoch % self.report_every == 0:
            validation = "" if val_loss is None else f"  val_loss {val_loss:.10g}"
            print(f"epoch {epoch}/{self.epochs}  loss {loss:.10g}{validation}", flush=True)
        logs = {"epoch": epoch, "loss": loss, "val_loss": val_loss, "learning_rate": rate}
        for callback in self.callbacks:
            if callback(net, logs):
                self.stopped = True

    def finish(self, net: Network) -> History:
        """Restore the best weights under early stopping; return the history."""
        if self.early_stopping and self.best_params is not None:
            net._params[...] = self.best_params
        return History(
            _joined(self.losses),
            np.array(self.val_losses, dtype=np.float64) if self.validation is not None else None,
            _joined(self.rates),
            best_epoch=self.best_epoch if self.early_stopping else None,
            stopped_early=self.completed < self.epochs,
        )


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    """The chunks end to end, as one array of their own (the one chunk, if one)."""
    if len(chunks) == 1 and chunks[0].base is None:
        return chunks[0]
    return np.concatenate(chunks) if chunks else np.empty(0)


def _rectangular(values: Any, name: str) -> np.ndarray:
    """``values`` as an array, naming ``name`` when its rows differ in length."""
    try:
        return np.asarray(values)
    except ValueError:
        raise ValueError(
            f"{name} is ragged: its rows must all have the same length"
        ) from None


def _check_batch_size(batch_size: Any, n_samples: int) -> int:
    """Samples per step: all of them when ``batch_size`` is None."""
    if batch_size is None:
        return n_samples
    return min(check_integer(batch_size, "batch_size"), n_samples)


def _check_callbacks(callbacks: Any) -> list[Callable[..., Any]]:
    if callbacks is None:
        return []
    if callable(callbacks):
        callbacks = [callbacks]
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise TypeError(
            f"callbacks must be a callable or a list of callables, got {callbacks!r}"
        )
    checked: list[Callable[..., Any]] = list(callbacks)
    for index, callback in enumerate(checked):
        if not callable(callback):
            raise TypeError(
                f"callbacks must be callables, called as callback(net, logs); "
                f"callbacks[{index}] is {callback!r}"
            )
    return checked


def _check_verbose(verbose: Any) -> int:
    """Epochs between progress lines, 0 for none."""
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    return check_integer(verbose, "verbose", minimum=0)
