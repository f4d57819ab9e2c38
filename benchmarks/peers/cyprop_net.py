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
        rows = [(f"cyprop {dtype}", {"dtype": dtype}) for dtype in order]
        # Only W3, W4 and inference reach BLAS; MKL rows when load_mkl() loaded it.
        if workload.name in ("W3", "W4") and "mkl" in _blas_library()._loaded:
            rows += [(f"cyprop {dtype} MKL", {"dtype": dtype, "blas": "mkl"})
                     for dtype in order]
        return rows

    def prepare(self, workload, threads, dtype, blas=None):
        return _on_blas(Run(workload, dtype), blas)

    inference_variants = variants

    def prepare_inference(self, workload, threads, dtype, blas=None):
        return _on_blas(InferenceRun(workload, dtype), blas)


def _blas_library():
    from cyprop import _blas_library

    return _blas_library


class _OnBlas:
    """A run whose train() and predict() send cyprop's products to another BLAS, and
    then back to the default (a switch of four function pointers)."""

    def __init__(self, run, setting):
        self.run, self.setting = run, setting

    def _call(self, method, *args):
        library = _blas_library()
        library._select(self.setting)
        try:
            return getattr(self.run, method)(*args)
        finally:
            library._select()

    def train(self):
        return self._call("train")

    def predict(self, X):
        return self._call("predict", X)


def _on_blas(run, setting):
    return run if setting is None else _OnBlas(run, setting)
