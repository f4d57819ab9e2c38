"""FANN through its own SWIG binding fann2, built on Debian's libfann (doublefann).

W1 runs FANN's batch mode and W2 its incremental mode, both through
``train_on_data``, so the whole training loop runs in C. The network file
written by :mod:`peers.fann_files` sets weights, activations, learning rate
and error function; see there for how FANN's conventions were translated.

Where FANN's math differs from the others: its sigmoid derivative clips the
output to [0.01, 0.99] first, which only matters for saturated units.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from peers import Unsupported
from peers.fann_files import FANN_SIGMOID, TRAIN_BATCH, TRAIN_INCREMENTAL, fann_network_text


def _libfann():
    from fann2 import libfann

    return libfann


def load_network(weights, biases, activations, steepnesses, learning_rate, algorithm):
    libfann = _libfann()
    sizes = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    template = libfann.neural_net()
    template.create_standard_array(sizes)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "template.net")
        template.save(path)
        with open(path) as handle:
            text = fann_network_text(handle.read(), weights, biases, activations,
                                     steepnesses, learning_rate, algorithm)
        with open(path, "w") as handle:
            handle.write(text)
        ann = libfann.neural_net()
        if not ann.create_from_file(path):
            raise RuntimeError("FANN could not read the network file")
    return ann


class Run:
    def __init__(self, workload):
        libfann = _libfann()
        self.workload = workload
        n = len(workload.weights)
        if workload.batch_size == 1:
            algorithm, rate = TRAIN_INCREMENTAL, workload.learning_rate
        else:
            # FANN's batch step is learning_rate / n_samples times the summed gradient.
            algorithm, rate = TRAIN_BATCH, workload.learning_rate * workload.n_samples
        self.ann = load_network(workload.weights, workload.biases, [FANN_SIGMOID] * n,
                                [0.5] * n, rate, algorithm)
        self.data = libfann.training_data()
        self.data.set_train_data(workload.X.tolist(), workload.Y.tolist())
        self.note = ("FANN batch mode" if algorithm == TRAIN_BATCH else
                     "FANN incremental mode") + ", train_on_data (loop in C), double"

    def train(self):
        self.ann.train_on_data(self.data, self.workload.epochs, 0, 0.0)

    def predict(self, X):
        return np.array([self.ann.run(row) for row in np.asarray(X, dtype=np.float64).tolist()])


class InferenceRun:
    def __init__(self, workload):
        n = len(workload.weights)
        # FANN 2.2 has neither relu nor softmax: sigmoid stands in for both.
        self.ann = load_network(workload.weights, workload.biases, [FANN_SIGMOID] * n,
                                [0.5] * n, 0.1, TRAIN_INCREMENTAL)
        self.note = "sigmoid output" + (", sigmoid for relu" if workload.hidden == "relu" else "")

    def predict(self, X):
        run = self.ann.run
        return [run(row) for row in X.tolist()]


class Contender:
    name = "fann2"

    def version(self):
        from importlib.metadata import version

        _libfann()
        return f"{version('fann2')} (libfann {_debian_version('libfann2')})"

    def variants(self, workload):
        if workload.output != "sigmoid_mse":
            raise Unsupported("FANN has no softmax output and no minibatch mode")
        if workload.batch_size not in (1, workload.n_samples):
            raise Unsupported("FANN trains per sample or per full batch only")
        mode = "incremental" if workload.batch_size == 1 else "batch"
        return [(f"fann2 {mode} float64", {})]

    def prepare(self, workload, threads):
        return Run(workload)

    def inference_variants(self, workload):
        return [("fann2 float64", {})]

    def prepare_inference(self, workload, threads):
        return InferenceRun(workload)


def _debian_version(package):
    import subprocess

    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.CalledProcessError):
        return "?"
