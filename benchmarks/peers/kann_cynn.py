"""KANN (float) through cynn.

cynn trains KANN networks only with RMSprop (``kann_RMSprop`` after each
minibatch, samples shuffled by KANN) and sets no weights from Python, so its
training rows are not the same math as the others': same architecture, same
batch size, same matrix products per step, but another update rule, KANN's
own initial weights and its own sample order. They are timed as a reference
for the cost of KANN's forward and backward passes, and labelled so.
Inference (``kann_apply1``, one sample per call) is the same math up to the
weights.
"""

from __future__ import annotations

import numpy as np

from peers import Unsupported

RMSPROP_RATE = 1e-3


def _module():
    import cynn.kann

    return cynn.kann


def build(workload):
    kann = _module()
    kann.set_seed(1)
    sizes = workload.layer_sizes
    if workload.hidden == "relu":
        return kann.KannNeuralNetwork.mlp(sizes[0], list(sizes[1:-1]), sizes[-1],
                                          cost_type=kann.COST_MULTI_CROSS_ENTROPY)
    graph = kann.GraphBuilder()
    t = graph.input(sizes[0])
    for size in sizes[1:-1]:
        t = graph.sigmoid(graph.dense(t, size))
    return graph.build(graph.softmax_cross_entropy(t, sizes[-1]))


class Run:
    def __init__(self, workload, threads):
        self.workload = workload
        self.net = build(workload)
        if threads > 1:
            self.net.enable_multithreading(threads, workload.batch_size)
        self.X, self.Y = workload.data(np.float32)
        self.note = "math differs: RMSprop, KANN's own init and sample order"

    def train(self):
        cache = None
        for _ in range(self.workload.epochs):
            _, _, _, cache = self.net.train_single_epoch(
                self.X, self.Y, learning_rate=RMSPROP_RATE,
                mini_batch_size=self.workload.batch_size, rmsprop_cache=cache)

    def final_loss(self):
        return float(self.net.cost(self.X, self.Y))


class InferenceRun:
    def __init__(self, workload):
        self.net = build(workload)
        self.note = "KANN's own weights"

    def predict(self, X):
        apply = self.net.apply
        return [apply(row) for row in X]


class Contender:
    name = "KANN (cynn)"

    def version(self):
        from importlib.metadata import version

        _module()
        return f"cynn {version('cynn')}"

    def variants(self, workload):
        if workload.output != "softmax_ce":
            raise Unsupported("cynn's KANN trains only with RMSprop and cannot build a "
                              "sigmoid output with MSE")
        return [("KANN (cynn) RMSprop float32", {})]

    def prepare(self, workload, threads):
        return Run(workload, threads)

    def inference_variants(self, workload):
        return [("KANN (cynn) float32", {})]

    def prepare_inference(self, workload, threads):
        return InferenceRun(workload)
