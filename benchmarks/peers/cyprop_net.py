"""cyprop itself: ``Network.fit`` and ``Network.predict``, in float64 and float32."""

from __future__ import annotations

import numpy as np

from peers import NotYetAvailable


def _network(workload, dtype):
    from cyprop import Network

    if workload.name == "W1":
        # The lesson's starting point, as the README shows it.
        return Network(list(workload.layer_sizes), activation="sigmoid", init="lesson",
                       seed=1, dtype=dtype)
    if workload.output == "sigmoid_mse":
        extra = {"output_activation": "sigmoid", "loss": "mse"}
    else:
        extra = {"output_activation": "softmax", "loss": "cross_entropy"}
    try:
        return Network.from_weights(
            workload.weights, workload.biases, activation=workload.hidden,
            reduction=workload.reduction, dtype=dtype, **extra,
        )
    except (ValueError, TypeError) as error:
        if workload.output == "softmax_ce" and ("softmax" in str(error)
                                                or "cross_entropy" in str(error)):
            raise NotYetAvailable("cyprop: not available yet (softmax/cross_entropy)") from None
        raise


class Run:
    def __init__(self, workload, dtype):
        self.workload = workload
        self.net = _network(workload, dtype)
        self.X, self.Y = workload.data(dtype)

    def train(self):
        w = self.workload
        self.history = self.net.fit(self.X, self.Y, epochs=w.epochs,
                                    learning_rate=w.learning_rate,
                                    batch_size=w.batch_size, shuffle=False)

    def predict(self, X):
        return self.net.predict(X)


class InferenceRun:
    def __init__(self, workload, dtype):
        self.net = _network(workload, dtype)
        self.dtype = np.dtype(dtype)

    def predict(self, X):
        return self.net.predict(X)


class Contender:
    name = "cyprop"

    def version(self):
        import cyprop

        return cyprop.__version__

    def variants(self, workload):
        order = ("float64", "float32") if workload.dtype == "float64" else ("float32", "float64")
        return [(f"cyprop {dtype}", {"dtype": dtype}) for dtype in order]

    def prepare(self, workload, threads, dtype):
        return Run(workload, dtype)

    inference_variants = variants

    def prepare_inference(self, workload, threads, dtype):
        return InferenceRun(workload, dtype)
