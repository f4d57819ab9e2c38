"""Network files for FANN, genann and Tinn holding the workload's exact weights.

None of the three bindings can set a weight from Python, but all three load
their library's own network file. FANN's file also carries the activation
function and steepness of every neuron, the learning rate, the training
algorithm and the error function, which is how the benchmark sets them.

FANN conventions used (FANN 2.2 and later):

- ``FANN_SIGMOID`` (3) computes ``1 / (1 + exp(-2 * s * z))``: steepness
  ``s = 0.5`` is the logistic sigmoid, with derivative ``a * (1 - a)``.
  ``FANN_LINEAR_PIECE_RECT`` (18, in newer FANN only) with ``s = 1`` is relu.
- Every layer ends with a bias neuron of value 1; its outgoing weights are b.
- ``train_error_function=0`` (linear): the output error is ``y - a``, not
  FANN's default tanh-stretched error.
- ``training_algorithm`` 0 (incremental) steps after every sample with the
  learning rate as given, like batch size 1 under reduction "sum". 1 (batch)
  steps once per epoch with ``learning_rate / n_samples`` times the summed
  gradient, so the file gets the workload's rate times ``n_samples``.
"""

from __future__ import annotations

import re

import numpy as np

FANN_SIGMOID = 3
FANN_LINEAR_PIECE_RECT = 18
TRAIN_INCREMENTAL = 0
TRAIN_BATCH = 1


def fann_network_text(template, weights, biases, activations, steepnesses,
                      learning_rate=0.1, training_algorithm=TRAIN_INCREMENTAL):
    """A FANN file for a fully connected network, from a file FANN saved for that shape.

    ``activations``/``steepnesses`` hold one entry per non-input layer.
    """
    sizes = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    neurons = ["(0, 0, 0.00000000000000000000e+00) " * (sizes[0] + 1)]
    for fan_in, fan_out, act, steep in zip(sizes[:-1], sizes[1:], activations, steepnesses):
        neurons.append(f"({fan_in + 1}, {act}, {steep:.20e}) " * fan_out)
        neurons.append("(0, 0, 0.00000000000000000000e+00) ")
    connections = []
    first = 0   # global index of the previous layer's first neuron
    for W, b in zip(weights, biases):
        fan_in = W.shape[0]
        sources = [str(first + i) for i in range(fan_in + 1)]   # last one is the bias neuron
        full = np.vstack([np.asarray(W, dtype=np.float64),
                          np.asarray(b, dtype=np.float64)[None, :]])
        for j in range(W.shape[1]):
            connections.append(" ".join(f"({s}, {w:.20e})" for s, w in zip(sources, full[:, j])))
        first += fan_in + 1
    replace = {
        "learning_rate": f"{learning_rate:f}",
        "learning_momentum": "0.000000",
        "training_algorithm": str(training_algorithm),
        "train_error_function": "0",
        "layer_sizes": " ".join(str(n + 1) for n in sizes) + " ",
    }
    lines = []
    for line in template.splitlines():
        key = line.split("=", 1)[0]
        if key in replace:
            line = f"{key}={replace[key]}"
        elif line.startswith("neurons ("):
            line = line.split("=", 1)[0] + "=" + "".join(neurons)
        elif line.startswith("connections ("):
            line = line.split("=", 1)[0] + "=" + " ".join(connections) + " "
        lines.append(line)
    text = "\n".join(lines) + "\n"
    if not re.search(r"^connections \(", text, re.M):
        raise ValueError("unexpected FANN file layout")
    return text


def genann_network_text(weights, biases):
    """genann's text format: each neuron's weights, bias first, times -1 (genann adds -1 * w0)."""
    sizes = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    hidden = sizes[1:-1]
    if len(set(hidden)) > 1:
        raise ValueError("genann needs hidden layers of one size")
    values = []
    for W, b in zip(weights, biases):
        values.append(np.column_stack([-np.asarray(b, dtype=np.float64),
                                       np.asarray(W, dtype=np.float64).T]).ravel())
    body = " ".join(f"{v:.20e}" for v in np.concatenate(values))
    return f"{sizes[0]} {len(hidden)} {hidden[0] if hidden else 0} {sizes[-1]} {body}\n"


def tinn_network_text(weights, biases):
    """Tinn's text format: sizes, its two scalar biases (set to 0), then W1.T and W2.T."""
    W1, W2 = (np.asarray(W, dtype=np.float64) for W in weights)
    values = np.concatenate([np.zeros(2), W1.T.ravel(), W2.T.ravel()])
    body = "\n".join(f"{v:.9g}" for v in values)
    return f"{W1.shape[0]} {W1.shape[1]} {W2.shape[1]}\n{body}\n"
