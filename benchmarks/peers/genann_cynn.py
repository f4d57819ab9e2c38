"""genann (double) through cynn: per-sample ``genann_train`` and ``genann_run`` calls.

genann's sigmoid reads a 4096-entry table over [-15, 15) (nearest entry), so
its activations differ from the exact sigmoid by up to about 2e-3; it has one
activation for every layer (no relu, no softmax) and hidden layers of one
size. Its bias is a weight on a constant -1 input, so the file gets -b.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from peers import Unsupported
from peers.fann_files import genann_network_text
from peers.finite_math import import_with_shim

ALLOW_SHIM = True


def _module():
    return import_with_shim("cynn.genann", ALLOW_SHIM)


def load_network(weights, biases):
    module, _ = _module()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.txt")
        with open(path, "w") as handle:
            handle.write(genann_network_text(weights, biases))
        return module.GenannNetwork.load(path)


class Run:
    def __init__(self, workload):
        self.workload = workload
        self.net = load_network(workload.weights, workload.biases)
        X, Y = workload.data(np.float64)
        self.rows = list(zip(X, Y))
        self.note = "table sigmoid; per-sample calls from Python"

    def train(self):
        train = self.net.train
        rate = self.workload.learning_rate
        rows = self.rows
        for _ in range(self.workload.epochs):
            for x, y in rows:
                train(x, y, rate)

    def predict(self, X):
        predict = self.net.predict
        return np.array([predict(row) for row in np.ascontiguousarray(X, dtype=np.float64)])


class InferenceRun:
    dtype = np.dtype(np.float64)

    def __init__(self, workload):
        self.net = load_network(workload.weights, workload.biases)
        self.note = "table sigmoid everywhere (no softmax" + (
            ", no relu)" if workload.hidden == "relu" else ")")

    def predict(self, X):
        predict = self.net.predict
        return [predict(row) for row in X]


class Contender:
    name = "genann (cynn)"

    def version(self):
        from importlib.metadata import version

        _, note = _module()
        return f"cynn {version('cynn')}" + (f"; {note}" if note else "")

    def variants(self, workload):
        if workload.output != "sigmoid_mse" or workload.batch_size != 1:
            raise Unsupported("genann trains one sample at a time, sigmoid outputs only")
        return [("genann (cynn) float64", {})]

    def prepare(self, workload, threads):
        return Run(workload)

    def inference_variants(self, workload):
        return [("genann (cynn) float64", {})]

    def prepare_inference(self, workload, threads):
        return InferenceRun(workload)
