"""The lesson's algorithm in plain numpy, generalised to any depth: the oracle
that the Cython core is compared with."""

import numpy as np

ACTIVATIONS = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "identity": lambda z: z,
}

# Derivatives written from the activation's output a, as in the lesson.
DERIVATIVES = {
    "sigmoid": lambda a: a * (1 - a),
    "tanh": lambda a: 1 - a * a,
    "relu": lambda a: (a > 0).astype(a.dtype),
    "identity": lambda a: np.ones_like(a),
}


def forward(X, weights, biases, activations):
    """Every layer's activations, input excluded."""
    layers = []
    A = X
    for W, b, name in zip(weights, biases, activations):
        A = ACTIVATIONS[name](A @ W + b)
        layers.append(A)
    return layers


def loss(X, y, weights, biases, activations, reduction="sum"):
    """1/2 sum of squared errors, summed or averaged over samples."""
    output = forward(X, weights, biases, activations)[-1]
    total = 0.5 * np.sum((output - y) ** 2)
    return total / X.shape[0] if reduction == "mean" else total


def gradients(X, y, weights, biases, activations, reduction="sum"):
    """(dW, db) of `loss` by backpropagation, the lesson's chain rule."""
    layers = forward(X, weights, biases, activations)
    scale = 1.0 / X.shape[0] if reduction == "mean" else 1.0
    delta = (layers[-1] - y) * DERIVATIVES[activations[-1]](layers[-1]) * scale
    dW, db = [None] * len(weights), [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        A_prev = layers[l - 1] if l > 0 else X
        dW[l] = A_prev.T @ delta
        db[l] = delta.sum(axis=0)
        if l > 0:
            delta = (delta @ weights[l].T) * DERIVATIVES[activations[l - 1]](A_prev)
    return dW, db


def sgd_epoch(X, y, weights, biases, activations, learning_rate, batch_size,
              order=None, reduction="sum"):
    """One epoch of minibatch SGD in place; returns the epoch's loss."""
    order = np.arange(X.shape[0]) if order is None else order
    total = 0.0
    for start in range(0, X.shape[0], batch_size):
        rows = order[start : start + batch_size]
        batch_loss = loss(X[rows], y[rows], weights, biases, activations, "sum")
        total += batch_loss
        dW, db = gradients(X[rows], y[rows], weights, biases, activations, reduction)
        for W, b, gW, gb in zip(weights, biases, dW, db):
            W -= learning_rate * gW
            b -= learning_rate * gb
    return total / X.shape[0] if reduction == "mean" else total


def random_network_arrays(rng, layer_sizes, dtype=np.float64, scale=1.0):
    """Random weights and biases for the given layer sizes."""
    weights = [
        (rng.standard_normal((fan_in, fan_out)) * scale / np.sqrt(fan_in)).astype(dtype)
        for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:])
    ]
    biases = [(rng.standard_normal(fan_out) * 0.5).astype(dtype) for fan_out in layer_sizes[1:]]
    return weights, biases
