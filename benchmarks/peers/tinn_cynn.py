"""Tinn (float) through cynn: one hidden layer, per-sample ``xttrain``/``xtpredict``.

Tinn's biases are one scalar per layer that training never updates; the file
sets both to 0 (the workload's initial biases are all 0), so Tinn trains the
same weights as the others but keeps its biases at 0. The math therefore
differs from the others by the bias updates.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from peers import Unsupported
from peers.fann_files import tinn_network_text
from peers.finite_math import import_with_shim

ALLOW_SHIM = True


def _module():
    return import_with_shim("cynn.tinn", ALLOW_SHIM)


def load_network(weights, biases):
    module, _ = _module()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.txt")
        with open(path, "w") as handle:
            handle.write(tinn_network_text(weights, biases))
        return module.TinnNetwork.load(path)


class Run:
    def __init__(self, workload):
        self.workload = workload
        self.net = load_network(workload.weights, workload.biases)
        X, Y = workload.data(np.float32)
        self.rows = list(zip(X, Y))
        self.note = "math differs: biases fixed at 0; per-sample calls from Python"

    def train(self):
        train = self.net.train
        rate = self.workload.learning_rate
        rows = self.rows
        for _ in range(self.workload.epochs):
            for x, y in rows:
                train(x, y, rate)

    def predict(self, X):
        predict = self.net.predict
        return np.array([predict(row) for row in np.ascontiguousarray(X, dtype=np.float32)])


class InferenceRun:
    def __init__(self, workload):
        self.net = load_network(workload.weights, workload.biases)
        self.note = "sigmoid output (no softmax), scalar biases"

    def predict(self, X):
        predict = self.net.predict
        return [predict(row) for row in X]


class Contender:
    name = "Tinn (cynn)"

    def version(self):
        from importlib.metadata import version

        _, note = _module()
        return f"cynn {version('cynn')}" + (f"; {note}" if note else "")

    def variants(self, workload):
        if workload.output != "sigmoid_mse" or workload.batch_size != 1:
            raise Unsupported("Tinn trains one sample at a time, sigmoid outputs only")
        if len(workload.weights) != 2:
            raise Unsupported("Tinn has exactly one hidden layer")
        return [("Tinn (cynn) float32", {})]

    def prepare(self, workload, threads):
        return Run(workload)

    def inference_variants(self, workload):
        if len(workload.weights) != 2:
            raise Unsupported("Tinn has exactly one hidden layer")
        return [("Tinn (cynn) float32", {})]

    def prepare_inference(self, workload, threads):
        return InferenceRun(workload)
