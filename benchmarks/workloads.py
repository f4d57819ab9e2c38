"""The peer benchmark's workloads: data, initial weights, hyperparameters, flop counts.

Every contender of a workload gets the same samples in the same order, the
same initial weights and the same hyperparameters, written here once. The
per-sample loss convention is cyprop's:

- ``sigmoid_mse``: sigmoid output, ``l = 1/2 * sum_k (a_k - y_k)**2``;
- ``softmax_ce``: softmax output, ``l = -sum_k y_k log a_k`` on one-hot ``y``.

``reduction`` says how a batch's per-sample losses combine into the
objective each gradient step descends ("sum" as in the lesson, "mean" as in
PyTorch and scikit-learn); peers with another convention translate the
learning rate, as their own modules say. :func:`final_loss` measures every
contender the same way after training: the mean per-sample loss over the
training set, computed here in float64 from the contender's own predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SEED = 20261127


@dataclass
class Workload:
    """One workload: what to train, on what, with which hyperparameters."""

    name: str
    title: str
    layer_sizes: tuple[int, ...]
    hidden: str                  # "sigmoid" or "relu", for every hidden layer
    output: str                  # "sigmoid_mse" or "softmax_ce"
    reduction: str               # "sum" or "mean"
    learning_rate: float
    epochs: int
    batch_size: int
    dtype: str                   # the dtype cyprop's reference row uses
    X: np.ndarray
    Y: np.ndarray                # targets, one-hot for softmax_ce
    weights: list[np.ndarray]    # initial W, (fan_in, fan_out), float64
    biases: list[np.ndarray]     # initial b, (fan_out,), float64
    labels: np.ndarray | None = None   # class indices, for softmax_ce
    notes: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def steps(self) -> int:
        """Gradient steps in the whole run."""
        return self.epochs * -(-self.n_samples // self.batch_size)

    def data(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        """X and Y in ``dtype``, C-contiguous; converted before any timing starts."""
        return (np.ascontiguousarray(self.X, dtype=dtype),
                np.ascontiguousarray(self.Y, dtype=dtype))

    def training_flops(self) -> float:
        """Matrix-product flops of the whole run (elementwise work not counted).

        Per sample and layer of shape (fan_in, fan_out): the forward product
        costs 2*fan_in*fan_out; backward, dW = A_prev.T @ delta costs as much
        again, and delta_prev = delta @ W.T too except in the first layer,
        whose input needs no delta.
        """
        per_sample = 0
        for index, (fan_in, fan_out) in enumerate(zip(self.layer_sizes[:-1], self.layer_sizes[1:])):
            products = 3 if index > 0 else 2
            per_sample += products * 2 * fan_in * fan_out
        return float(per_sample) * self.n_samples * self.epochs

    def forward_flops(self, n_rows: int) -> float:
        """Matrix-product flops of a forward pass over ``n_rows`` samples."""
        sizes = self.layer_sizes
        return 2.0 * n_rows * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    def describe(self) -> str:
        sizes = "-".join(str(n) for n in self.layer_sizes)
        output = ("sigmoid output, MSE" if self.output == "sigmoid_mse"
                  else "softmax output, cross-entropy")
        return (f"{self.name}: {self.title}; {sizes}, {self.hidden} hidden, {output}; "
                f"{self.n_samples:,} samples, batch {self.batch_size}, {self.epochs:,} "
                f"epoch(s) = {self.steps:,} steps; learning rate {self.learning_rate} "
                f"on the {self.reduction} of per-sample losses")


def sigmoid(Z):
    return 1.0 / (1.0 + np.exp(-Z))


def forward(workload: Workload, X: np.ndarray, weights=None, biases=None) -> np.ndarray:
    """The network's outputs in float64, from the given (default: initial) parameters."""
    weights = workload.weights if weights is None else weights
    biases = workload.biases if biases is None else biases
    A = np.asarray(X, dtype=np.float64)
    last = len(weights) - 1
    for index, (W, b) in enumerate(zip(weights, biases)):
        Z = A @ np.asarray(W, dtype=np.float64) + np.asarray(b, dtype=np.float64)
        if index < last:
            A = sigmoid(Z) if workload.hidden == "sigmoid" else np.maximum(Z, 0.0)
        elif workload.output == "sigmoid_mse":
            A = sigmoid(Z)
        else:
            Z = Z - Z.max(axis=1, keepdims=True)
            E = np.exp(Z)
            A = E / E.sum(axis=1, keepdims=True)
    return A


def final_loss(workload: Workload, outputs: np.ndarray, rows: slice = slice(None)) -> float:
    """Mean per-sample loss of ``outputs`` against the targets of ``rows``."""
    A = np.asarray(outputs, dtype=np.float64)
    Y = np.asarray(workload.Y[rows], dtype=np.float64)
    if workload.output == "sigmoid_mse":
        return float(0.5 * np.sum((A - Y) ** 2) / A.shape[0])
    picked = A[np.arange(A.shape[0]), workload.labels[rows]]
    return float(-np.mean(np.log(np.maximum(picked, 1e-300))))


def glorot_uniform(rng, sizes):
    """W uniform in +-sqrt(6 / (fan_in + fan_out)) (cyprop's "glorot"), b zero."""
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)))
        biases.append(np.zeros(fan_out))
    return weights, biases


def he_normal(rng, sizes):
    """W normal with standard deviation sqrt(2 / fan_in) (cyprop's "he"), b zero."""
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weights.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out)))
        biases.append(np.zeros(fan_out))
    return weights, biases


def one_hot(labels, n_classes):
    Y = np.zeros((labels.size, n_classes))
    Y[np.arange(labels.size), labels] = 1.0
    return Y


def lesson_xor() -> Workload:
    """W1: the lesson, exactly: XOR, 3-4-1 sigmoid, full batch, sum of losses."""
    X = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=np.float64)
    Y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    # The lesson's initial weights: np.random.seed(1), then rand for W1, b1, W2, b2.
    legacy = np.random.RandomState(1)
    W1, b1 = legacy.rand(3, 4), legacy.rand(1, 4)
    W2, b2 = legacy.rand(4, 1), legacy.rand(1, 1)
    return Workload(
        name="W1", title="the lesson's XOR", layer_sizes=(3, 4, 1), hidden="sigmoid",
        output="sigmoid_mse", reduction="sum", learning_rate=0.1, epochs=10_000,
        batch_size=4, dtype="float64", X=X, Y=Y,
        weights=[W1, W2], biases=[b1[0], b2[0]],
    )


def digits_online() -> Workload:
    """W2: online SGD on scikit-learn's bundled digits, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.data / 16.0
    labels = digits.target.astype(np.intp)
    rng = np.random.default_rng(SEED)
    weights, biases = glorot_uniform(rng, (64, 32, 10))
    return Workload(
        name="W2", title="online SGD on digits", layer_sizes=(64, 32, 10), hidden="sigmoid",
        output="sigmoid_mse", reduction="sum", learning_rate=0.1, epochs=20,
        batch_size=1, dtype="float64", X=X, Y=one_hot(labels, 10),
        weights=weights, biases=biases, labels=labels,
    )


def teacher_classes(rng, X, n_classes):
    """Labels a random linear teacher gives, so the synthetic task is learnable."""
    teacher = rng.standard_normal((X.shape[1], n_classes)).astype(np.float32)
    centred = X - X.mean(axis=0, dtype=np.float64).astype(np.float32)
    return np.argmax(centred @ teacher, axis=1).astype(np.intp)


def mnist_shaped() -> Workload:
    """W3: 60,000 x 784 synthetic float32 data, minibatches of 64."""
    rng = np.random.default_rng(SEED + 3)
    X = rng.random((60_000, 784), dtype=np.float32)
    labels = teacher_classes(rng, X, 10)
    weights, biases = glorot_uniform(rng, (784, 256, 10))
    return Workload(
        name="W3", title="MNIST-shaped minibatches (synthetic data)",
        layer_sizes=(784, 256, 10), hidden="sigmoid", output="softmax_ce",
        reduction="mean", learning_rate=0.1, epochs=1, batch_size=64, dtype="float32",
        X=X, Y=one_hot(labels, 10).astype(np.float32), weights=weights, biases=biases,
        labels=labels,
    )


def wide_layers() -> Workload:
    """W4: 16,384 x 1024 synthetic float32 data through two 1024-wide relu layers."""
    rng = np.random.default_rng(SEED + 4)
    X = rng.standard_normal((16_384, 1024), dtype=np.float32)
    labels = teacher_classes(rng, X, 10)
    weights, biases = he_normal(rng, (1024, 1024, 1024, 10))
    return Workload(
        name="W4", title="wide layers (synthetic data)",
        layer_sizes=(1024, 1024, 1024, 10), hidden="relu", output="softmax_ce",
        reduction="mean", learning_rate=0.01, epochs=1, batch_size=256, dtype="float32",
        X=X, Y=one_hot(labels, 10).astype(np.float32), weights=weights, biases=biases,
        labels=labels,
    )


TRAINING = {"W1": lesson_xor, "W2": digits_online, "W3": mnist_shaped, "W4": wide_layers}
