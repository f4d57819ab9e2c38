"""The :class:`Network`: parameters, checks of user input, and the training driver.

This is the only module that talks to the Cython core. It validates and
converts every input, allocates every buffer the core writes into, and turns
the core's status codes into exceptions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from cyprop import _core
from cyprop._persistence import ModelFileError, read_model, write_model
from cyprop._validation import (
    check_activations,
    check_choice,
    check_dtype,
    check_features,
    check_integer,
    check_layer_sizes,
    check_positive_float,
    check_targets,
)

ACTIVATIONS = tuple(_core.ACTIVATIONS)
LOSSES = tuple(_core.LOSSES)
REDUCTIONS = ("sum", "mean")
INITS = ("glorot", "he", "lesson")

# Row chunks for predict, loss and gradients hold about this many activations,
# and a single call of the training loop covers about this many samples, so
# buffers stay small and control returns to Python regularly.
_CHUNK_ELEMENTS = 1 << 20


class Network:
    """A multilayer perceptron trained by backpropagation.

    Layer ``l`` computes ``A_next = f(A @ W + b)`` with ``W`` of shape
    ``(fan_in, fan_out)`` and ``b`` of shape ``(fan_out,)``, on row-major data
    ``X`` of shape ``(n_samples, n_features)``, as in the lesson.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first: ``[3, 4, 1]`` is the lesson's network
        with 3 inputs, 4 hidden units and 1 output.
    activation : str or sequence of str, default="sigmoid"
        Activation of the hidden layers: one of "sigmoid", "tanh", "relu",
        "identity", or a list with one name per hidden layer.
    output_activation : str, optional
        Activation of the output layer. Defaults to ``activation`` when that
        is a single name.
    loss : {"mse"}, default="mse"
        The per-sample loss. "mse" is ``1/2 * sum_k (output_k - target_k)**2``.
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
        Initial weights. "glorot" draws ``W`` uniformly from
        ``[-r, r]`` with ``r = sqrt(6 / (fan_in + fan_out))``; "he" draws
        ``W`` from a normal with standard deviation ``sqrt(2 / fan_in)``;
        both set biases to zero. "lesson" draws every weight and bias
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
        activations = check_activations(activation, output_activation, len(sizes) - 1, ACTIVATIONS)
        if seed is not None:
            seed = check_integer(seed, "seed", minimum=0)
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
        self._reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self._dtype = check_dtype(dtype)
        self._sizes = np.array(sizes, dtype=np.intp)
        self._activation_codes = np.array(
            [_core.ACTIVATIONS[name] for name in activations], dtype=np.intc
        )
        self._loss_code = _core.LOSSES[self._loss]
        n_params = sum(fan_in * fan_out + fan_out for fan_in, fan_out in self._fans())
        self._params = np.zeros(n_params, dtype=self._dtype)
        self._weights, self._biases = self._layer_views(self._params)
        self._fit_lock = threading.Lock()

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

    def _initialize(self, init: str, seed: int | None, seed_sequence: np.random.SeedSequence) -> None:
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
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                W[...] = rng.uniform(-bound, bound, size=W.shape)
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
        W_arrays = [np.asarray(W) for W in weights]
        b_arrays = [np.asarray(b) for b in biases]
        for index, (W, b) in enumerate(zip(W_arrays, b_arrays)):
            if W.ndim != 2:
                raise ValueError(
                    f"weights[{index}] must be 2-D (fan_in, fan_out), got shape {W.shape}"
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
            all_float32 = all(a.dtype == np.float32 for a in W_arrays + b_arrays)
            dtype = "float32" if all_float32 else "float64"
        activations = check_activations(activation, output_activation, len(sizes) - 1, ACTIVATIONS)
        if seed is not None:
            seed = check_integer(seed, "seed", minimum=0)
        net = cls.__new__(cls)
        net._configure(sizes, activations, loss, reduction, dtype)
        net._rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
        for index, (W, b) in enumerate(zip(W_arrays, b_arrays)):
            net._weights[index][...] = check_features(W, W.shape[1], net._dtype, f"weights[{index}]")
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
        return np.empty(n_rows * sum(self._layer_sizes[1:]), dtype=self._dtype)

    def _chunk_rows(self, n_samples: int) -> int:
        """Rows per chunk so that a chunk's activations stay near _CHUNK_ELEMENTS."""
        return max(1, min(n_samples, _CHUNK_ELEMENTS // sum(self._layer_sizes[1:])))

    def _check_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X = check_features(X, self._layer_sizes[0], self._dtype)
        y = check_targets(y, X.shape[0], self._layer_sizes[-1], self._dtype)
        return X, y

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

        Examples
        --------
        >>> from cyprop import Network
        >>> net = Network([3, 4, 1], seed=0)
        >>> [A.shape for A in net.forward([[0, 1, 1], [1, 1, 0]])]
        [(2, 4), (2, 1)]
        """
        X = check_features(X, self._layer_sizes[0], self._dtype)
        buffer = self._activation_buffer(X.shape[0])
        _core.forward(X, self._params, self._sizes, self._activation_codes, buffer)
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
        X = check_features(X, self._layer_sizes[0], self._dtype)
        n_samples, n_outputs = X.shape[0], self._layer_sizes[-1]
        chunk = self._chunk_rows(n_samples)
        buffer = self._activation_buffer(chunk)
        outputs = np.empty((n_samples, n_outputs), dtype=self._dtype)
        for start in range(0, n_samples, chunk):
            rows = X[start : start + chunk]
            n_rows = rows.shape[0]
            used = buffer[: n_rows * sum(self._layer_sizes[1:])]
            _core.forward(rows, self._params, self._sizes, self._activation_codes, used)
            outputs[start : start + n_rows] = used[used.size - n_rows * n_outputs :].reshape(
                n_rows, n_outputs
            )
        return outputs

    # --- objective and gradients -----------------------------------------

    def loss(self, X: Any, y: Any) -> float:
        """The objective that training minimises, over the samples in ``X``.

        See the class Notes for the convention: the sum of per-sample losses
        ``1/2 * sum_k (a_k - y_k)**2``, divided by ``n_samples`` when
        ``reduction="mean"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_outputs), or (n_samples,) for one output

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
        X, y = self._check_data(X, y)
        chunk = self._chunk_rows(X.shape[0])
        buffer = self._activation_buffer(chunk)
        total = 0.0
        for start in range(0, X.shape[0], chunk):
            rows, targets = X[start : start + chunk], y[start : start + chunk]
            total += _core.loss_sum(
                rows, targets, self._params, self._sizes, self._activation_codes,
                self._loss_code, buffer[: rows.shape[0] * sum(self._layer_sizes[1:])],
            )
        return total / X.shape[0] if self._reduction == "mean" else total

    def gradients(self, X: Any, y: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Exact gradients of :meth:`loss` with respect to the weights and biases.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_outputs), or (n_samples,) for one output

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
        X, y = self._check_data(X, y)
        n_samples = X.shape[0]
        scale = 1.0 / n_samples if self._reduction == "mean" else 1.0
        chunk = self._chunk_rows(n_samples)
        A_work = self._activation_buffer(chunk)
        delta_work = self._activation_buffer(chunk)
        grads = np.zeros_like(self._params)
        chunk_grads = np.empty_like(self._params)
        for start in range(0, n_samples, chunk):
            rows, targets = X[start : start + chunk], y[start : start + chunk]
            used = rows.shape[0] * sum(self._layer_sizes[1:])
            _core.loss_gradient(
                rows, targets, self._params, self._sizes, self._activation_codes,
                self._loss_code, scale, A_work[:used], delta_work[:used], chunk_grads,
            )
            grads += chunk_grads
        return self._layer_views(grads)

    # --- training --------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int = 1,
        learning_rate: float = 0.1,
        batch_size: int | None = None,
        shuffle: bool = True,
        verbose: bool | int = False,
    ) -> np.ndarray:
        """Train by minibatch gradient descent, updating the parameters in place.

        Each epoch splits the samples into batches of ``batch_size`` (the last
        may be smaller) and, for each batch in turn, runs the forward pass,
        backpropagates, and steps ``W -= learning_rate * dL/dW`` on the batch's
        objective ``L`` (see the class Notes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_outputs), or (n_samples,) for one output
        epochs : int, default=1
            Passes over the data.
        learning_rate : float, default=0.1
            Step size, greater than 0.
        batch_size : int, optional
            Samples per gradient step. ``None`` (the default) means the full
            batch: one step per epoch over all samples, as in the lesson.
        shuffle : bool, default=True
            Visit the samples in a new seeded random order each epoch. Has no
            effect with a full batch, whose sum does not depend on order.
        verbose : bool or int, default=False
            Print the loss every ``verbose`` epochs (``True`` means every epoch).

        Returns
        -------
        ndarray of shape (epochs,)
            The loss of each epoch: the objective summed over the epoch's
            batches (averaged over samples under ``reduction="mean"``), each
            batch measured by its forward pass, before its update.

        Raises
        ------
        FloatingPointError
            If the loss or a parameter becomes NaN or infinite. The
            parameters are left as they were at the start of that epoch.
        RuntimeError
            If this network is already being trained in another thread.

        Examples
        --------
        >>> from cyprop import Network
        >>> net = Network([2, 1], activation="identity", seed=0)
        >>> history = net.fit([[0, 1], [1, 0]], [3, -1], epochs=200, learning_rate=0.1)
        >>> bool(history[-1] < 1e-6 < history[0])
        True
        """
        X, y = self._check_data(X, y)
        epochs = check_integer(epochs, "epochs")
        learning_rate = check_positive_float(learning_rate, "learning_rate")
        n_samples = X.shape[0]
        batch_size = n_samples if batch_size is None else check_integer(batch_size, "batch_size")
        batch_size = min(batch_size, n_samples)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        report_every = _check_verbose(verbose)

        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(
                "this network is already being trained in another thread; "
                "train a copy instead (copy.deepcopy(net))"
            )
        try:
            return self._train(X, y, epochs, learning_rate, batch_size,
                               bool(shuffle) and batch_size < n_samples, report_every)
        finally:
            self._fit_lock.release()

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int,
        learning_rate: float,
        batch_size: int,
        shuffle: bool,
        report_every: int,
    ) -> np.ndarray:
        n_samples = X.shape[0]
        n_units = sum(self._layer_sizes[1:])
        # Everything the core writes during training is allocated here, once.
        A_work = np.empty(batch_size * n_units, dtype=self._dtype)
        delta_work = np.empty_like(A_work)
        grads = np.empty_like(self._params)
        backup = np.empty_like(self._params)
        gather_rows = batch_size if shuffle else 0
        X_batch = np.empty((gather_rows, X.shape[1]), dtype=self._dtype)
        y_batch = np.empty((gather_rows, y.shape[1]), dtype=self._dtype)
        history = np.full(epochs, np.nan)

        per_call = max(1, _CHUNK_ELEMENTS // n_samples)
        if report_every:
            per_call = min(per_call, report_every)
        epoch = 0
        while epoch < epochs:
            count = min(per_call, epochs - epoch)
            if report_every:
                count = min(count, report_every - epoch % report_every)
            if shuffle:
                orders = self._rng.permuted(
                    np.broadcast_to(np.arange(n_samples, dtype=np.intp), (count, n_samples)),
                    axis=1,
                )
            else:
                orders = np.empty((count, 0), dtype=np.intp)
            completed = _core.train_epochs(
                X, y, np.ascontiguousarray(orders), batch_size, self._params, self._sizes,
                self._activation_codes, self._loss_code, self._reduction == "mean",
                learning_rate, X_batch, y_batch, A_work, delta_work, grads, backup,
                history[epoch : epoch + count],
            )
            if completed < count:
                failed = epoch + completed + 1
                raise FloatingPointError(
                    f"training diverged in epoch {failed} of {epochs}: the loss or a "
                    "parameter became NaN or infinite. The parameters were restored to "
                    f"their values at the start of epoch {failed}. Try a smaller "
                    f"learning_rate (it was {learning_rate})."
                )
            epoch += count
            if report_every and epoch % report_every == 0:
                print(f"epoch {epoch}/{epochs}  loss {history[epoch - 1]:.10g}", flush=True)
        return history

    # --- persistence -----------------------------------------------------

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

        Parameters
        ----------
        path : str or os.PathLike
        """
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
            ``cyprop.ModelFileError``).
        """
        header, payload = read_model(path)
        name = os.fspath(path)
        try:
            net = cls._from_config(header)
            rng_state = header["rng_state"]
            n_parameters = header["n_parameters"]
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{name} has an invalid header: {error}") from None
        stored = np.dtype(net._dtype.newbyteorder("<"))
        if n_parameters != net.n_parameters or len(payload) != n_parameters * stored.itemsize:
            raise ModelFileError(
                f"{name} is damaged: it holds {len(payload)} bytes of parameters, "
                f"but its layer sizes need {net.n_parameters * stored.itemsize}"
            )
        net._params[...] = np.frombuffer(payload, dtype=stored)
        try:
            net._rng.bit_generator.state = rng_state
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{name} has an invalid generator state: {error}") from None
        return net

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Network:
        """An unparameterised network from the configuration that :meth:`_config` wrote."""
        sizes = check_layer_sizes(config["layer_sizes"])
        activations = config["activations"]
        if not isinstance(activations, list) or len(activations) != len(sizes) - 1:
            raise ValueError("activations must list one name per layer")
        activations = tuple(check_choice(name, "activation", ACTIVATIONS) for name in activations)
        net = cls.__new__(cls)
        net._configure(sizes, activations, config["loss"], config["reduction"], config["dtype"])
        net._rng = np.random.default_rng()
        return net

    def __getstate__(self) -> dict[str, Any]:
        return {
            **self._config(),
            "params": self._params.copy(),
            "rng_state": self._rng.bit_generator.state,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        net = self._from_config(state)
        net._params[...] = state["params"]
        net._rng.bit_generator.state = state["rng_state"]
        self.__dict__.update(net.__dict__)


def _check_verbose(verbose: Any) -> int:
    """Epochs between progress lines, 0 for none."""
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    return check_integer(verbose, "verbose", minimum=0)
