"""FANN (float) through cynn, which exposes only per-sample ``fann_train``.

So it runs W2 (online SGD) with one call per sample from Python, and
inference with one call per sample. Weights, activations, learning rate and
error function come from a network file (:mod:`peers.fann_files`); FANN's
sigmoid derivative clips outputs to [0.01, 0.99], as in fann2.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from peers import Unsupported
from peers.fann_files import (
    FANN_LINEAR_PIECE_RECT,
    FANN_SIGMOID,
    TRAIN_INCREMENTAL,
    fann_network_text,
)


def _module():
    import cynn.fann

    return cynn.fann


def load_network(weights, biases, activations, steepnesses, learning_rate):
    fann = _module()
    sizes = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "template.net")
        fann.FannNetwork(sizes).save(path)
        with open(path) as handle:
            text = fann_network_text(handle.read(), weights, biases, activations,
                                     steepnesses, learning_rate, TRAIN_INCREMENTAL)
        with open(path, "w") as handle:
            handle.write(text)
        return fann.FannNetwork.load(path)


class Run:
    def __init__(self, workload):
        n = len(workload.weights)
        self.workload = workload
        self.net = load_network(workload.weights, workload.biases, [FANN_SIGMOID] * n,
                                [0.5] * n, workload.learning_rate)
        X, Y = workload.data(np.float32)
        self.rows = list(zip(X, Y))
        self.note = "per-sample calls from Python, float32"

    def train(self):
        train = self.net.train
        rows = self.rows
        for _ in range(self.workload.epochs):
            for x, y in rows:
                train(x, y)

    def predict(self, X):
        predict = self.net.predict
        return np.array([predict(row) for row in np.ascontiguousarray(X, dtype=np.float32)])


class InferenceRun:
    def __init__(self, workload):
        n = len(workload.weights)
        relu = workload.hidden == "relu"
        hidden_act, hidden_steep = (FANN_LINEAR_PIECE_RECT, 1.0) if relu else (FANN_SIGMOID, 0.5)
        self.net = load_network(workload.weights, workload.biases,
                                [hidden_act] * (n - 1) + [FANN_SIGMOID],
                                [hidden_steep] * (n - 1) + [0.5], 0.1)
        self.note = "sigmoid output (no softmax), float32"

    def predict(self, X):
        predict = self.net.predict
        return [predict(row) for row in X]


class Contender:
    name = "FANN (cynn)"

    def version(self):
        from importlib.metadata import version

        _module()
        return f"cynn {version('cynn')}"

    def variants(self, workload):
        if workload.output != "sigmoid_mse" or workload.batch_size != 1:
            raise Unsupported("cynn exposes only FANN's per-sample training "
                              "(no batch mode, no softmax)")
        return [("FANN (cynn) float32", {})]

    def prepare(self, workload, threads):
        return Run(workload)

    def inference_variants(self, workload):
        return [("FANN (cynn) float32", {})]

    def prepare_inference(self, workload, threads):
        return InferenceRun(workload)
