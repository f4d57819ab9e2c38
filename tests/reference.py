"""The lesson's algorithm in plain numpy, generalised: the oracle that the
Cython core is compared with."""

import numpy as np

LEAKY_SLOPE = 0.01


def _softmax(z):
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


ACTIVATIONS = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
    "identity": lambda z: z,
    "softmax": _softmax,
}

# Derivatives written from the activation's output a, as in the lesson.
DERIVATIVES = {
    "sigmoid": lambda a: a * (1 - a),
    "tanh": lambda a: 1 - a * a,
    "relu": lambda a: (a > 0).astype(a.dtype),
    "leaky_relu": lambda a: np.where(a > 0, 1, LEAKY_SLOPE).astype(a.dtype),
    "identity": lambda a: np.ones_like(a),
}


def forward(X, weights, biases, activations, with_logits=False):
    """Every layer's activations, input excluded (and the output's pre-activations)."""
    layers = []
    A = X
    for W, b, name in zip(weights, biases, activations):
        Z = A @ W + b
        A = ACTIVATIONS[name](Z)
        layers.append(A)
    return (layers, Z) if with_logits else layers


def per_sample_loss(A, Z, y, loss):
    """l_i for each row, from outputs A, pre-activations Z and targets y."""
    if loss == "mse":
        return 0.5 * np.sum((A - y) ** 2, axis=1)
    if loss == "binary_cross_entropy":
        return np.sum(np.logaddexp(0, Z) - y * Z, axis=1)
    top = Z.max(axis=1, keepdims=True)
    log_normalizer = top + np.log(np.exp(Z - top).sum(axis=1, keepdims=True))
    return np.sum(y * (log_normalizer - Z), axis=1)


def _weights_and_scale(n_samples, sample_weight, reduction):
    w = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, float)
    return w, (1.0 / w.sum() if reduction == "mean" else 1.0)


def loss(X, y, weights, biases, activations, reduction="sum", loss="mse",
         sample_weight=None, weight_decay=0.0):
    """The objective: weighted sum (or mean) of per-sample losses plus the L2 penalty."""
    layers, Z = forward(X, weights, biases, activations, with_logits=True)
    w, scale = _weights_and_scale(X.shape[0], sample_weight, reduction)
    data = scale * np.sum(w * per_sample_loss(layers[-1], Z, y, loss))
    return data + 0.5 * weight_decay * sum(np.sum(W.astype(float) ** 2) for W in weights)


def output_delta(A, y, activation, loss):
    """dl/dZ of the output layer."""
    if loss == "binary_cross_entropy":
        return A - y
    if loss == "cross_entropy":
        return A * y.sum(axis=1, keepdims=True) - y
    g = A - y
    if activation == "softmax":
        return A * (g - np.sum(g * A, axis=1, keepdims=True))
    return g * DERIVATIVES[activation](A)


def gradients(X, y, weights, biases, activations, reduction="sum", loss="mse",
              sample_weight=None, weight_decay=0.0):
    """(dW, db) of `loss` by backpropagation, the lesson's chain rule."""
    layers = forward(X, weights, biases, activations)
    w, scale = _weights_and_scale(X.shape[0], sample_weight, reduction)
    delta = output_delta(layers[-1], y, activations[-1], loss) * (scale * w)[:, None]
    delta = delta.astype(layers[-1].dtype)
    dW, db = [None] * len(weights), [None] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        A_prev = layers[layer - 1] if layer > 0 else X
        dW[layer] = A_prev.T @ delta + weight_decay * weights[layer]
        db[layer] = delta.sum(axis=0)
        if layer > 0:
            delta = (delta @ weights[layer].T) * DERIVATIVES[activations[layer - 1]](A_prev)
    return dW, db


def sgd_epoch(X, y, weights, biases, activations, learning_rate, batch_size,
              order=None, reduction="sum", loss="mse"):
    """One epoch of minibatch SGD in place; returns the epoch's loss."""
    order = np.arange(X.shape[0]) if order is None else order
    total = 0.0
    for start in range(0, X.shape[0], batch_size):
        rows = order[start : start + batch_size]
        total += globals()["loss"](X[rows], y[rows], weights, biases, activations, "sum", loss)
        dW, db = gradients(X[rows], y[rows], weights, biases, activations, reduction, loss)
        for W, b, gW, gb in zip(weights, biases, dW, db):
            W -= learning_rate * gW
            b -= learning_rate * gb
    return total / X.shape[0] if reduction == "mean" else total


# --- optimizer steps, one update of flat parameters p with gradient g ---------

def momentum_step(p, g, velocity, learning_rate, momentum, nesterov):
    velocity[:] = momentum * velocity - learning_rate * g
    p += momentum * velocity - learning_rate * g if nesterov else velocity


def adam_step(p, g, m, v, learning_rate, beta1, beta2, epsilon, t):
    m[:] = beta1 * m + (1 - beta1) * g
    v[:] = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    p -= learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)


def irprop_minus_step(p, g, previous, steps, increase, decrease, min_step, max_step):
    g = g.copy()
    product = g * previous
    steps[product > 0] = np.minimum(steps[product > 0] * increase, max_step)
    steps[product < 0] = np.maximum(steps[product < 0] * decrease, min_step)
    g[product < 0] = 0
    previous[:] = g
    p -= np.sign(g) * steps


def random_network_arrays(rng, layer_sizes, dtype=np.float64, scale=1.0):
    """Random weights and biases for the given layer sizes."""
    weights = [
        (rng.standard_normal((fan_in, fan_out)) * scale / np.sqrt(fan_in)).astype(dtype)
        for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:])
    ]
    biases = [(rng.standard_normal(fan_out) * 0.5).astype(dtype) for fan_out in layer_sizes[1:]]
    return weights, biases
