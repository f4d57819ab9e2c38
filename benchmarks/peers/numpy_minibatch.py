"""A plain, efficient numpy minibatch trainer: BLAS products into buffers allocated once.

Every array the loop writes is allocated in ``__init__``; the loop itself
only calls numpy ufuncs and ``matmul`` with ``out=``, so its cost is the
products plus a fixed number of numpy calls per layer and batch.
"""

from __future__ import annotations

import numpy as np


class MinibatchMLP:
    def __init__(self, workload, dtype):
        self.workload = workload
        self.dtype = np.dtype(dtype)
        self.W = [np.array(W, dtype=dtype) for W in workload.weights]
        self.b = [np.array(b, dtype=dtype) for b in workload.biases]
        rows = workload.batch_size
        fans_out = workload.layer_sizes[1:]
        self.A = [np.empty((rows, n), dtype=dtype) for n in fans_out]
        self.delta = [np.empty((rows, n), dtype=dtype) for n in fans_out]
        self.scratch = [np.empty((rows, n), dtype=dtype) for n in fans_out]
        self.mask = [np.empty((rows, n), dtype=bool) for n in fans_out]
        self.dW = [np.empty_like(W) for W in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        self.row_max = np.empty((rows, 1), dtype=dtype)

    # --- activations, in place, from Z to A -----------------------------

    @staticmethod
    def _sigmoid(Z):
        np.negative(Z, out=Z)
        np.exp(Z, out=Z)
        Z += 1.0
        np.reciprocal(Z, out=Z)

    def _softmax(self, Z, m):
        row_max = self.row_max[:m]
        np.max(Z, axis=1, keepdims=True, out=row_max)
        Z -= row_max
        np.exp(Z, out=Z)
        np.sum(Z, axis=1, keepdims=True, out=row_max)
        Z /= row_max

    def forward(self, X, m):
        """Fill A[layer][:m] for every layer from the rows X (m of them)."""
        last = len(self.W) - 1
        A_prev = X
        for layer, (W, b) in enumerate(zip(self.W, self.b)):
            Z = self.A[layer][:m]
            np.matmul(A_prev, W, out=Z)      # Z = A_prev @ W
            Z += b
            if layer < last:
                if self.workload.hidden == "sigmoid":
                    self._sigmoid(Z)
                else:
                    np.maximum(Z, 0.0, out=Z)
            elif self.workload.output == "sigmoid_mse":
                self._sigmoid(Z)
            else:
                self._softmax(Z, m)
            A_prev = Z
        return A_prev

    def step(self, X, Y, labels, m, learning_rate):
        """One gradient step on the m rows X, Y; returns the batch's summed loss."""
        w = self.workload
        last = len(self.W) - 1
        A_out = self.forward(X, m)
        delta = self.delta[last][:m]
        np.subtract(A_out, Y, out=delta)     # a - y
        if w.output == "sigmoid_mse":
            loss = 0.5 * float(np.vdot(delta, delta))
            tmp = self.scratch[last][:m]
            np.subtract(1.0, A_out, out=tmp)
            tmp *= A_out
            delta *= tmp                     # (a - y) * a * (1 - a)
        else:
            # softmax + cross-entropy: dl/dZ = a - y
            loss = -float(np.sum(np.log(A_out[np.arange(m), labels])))
        scale = learning_rate / m if w.reduction == "mean" else learning_rate
        for layer in range(last, -1, -1):
            A_prev = X if layer == 0 else self.A[layer - 1][:m]
            np.matmul(A_prev.T, delta, out=self.dW[layer])      # dW = A_prev.T @ delta
            np.sum(delta, axis=0, out=self.db[layer])           # db = column sums
            if layer > 0:
                delta_prev = self.delta[layer - 1][:m]
                np.matmul(delta, self.W[layer].T, out=delta_prev)   # delta_prev = delta @ W.T
                if w.hidden == "sigmoid":
                    tmp = self.scratch[layer - 1][:m]
                    np.subtract(1.0, A_prev, out=tmp)
                    tmp *= A_prev
                    delta_prev *= tmp
                else:
                    mask = self.mask[layer - 1][:m]
                    np.greater(A_prev, 0.0, out=mask)
                    np.multiply(delta_prev, mask, out=delta_prev)
                delta_next = delta_prev
            self.dW[layer] *= scale
            self.W[layer] -= self.dW[layer]
            self.db[layer] *= scale
            self.b[layer] -= self.db[layer]
            if layer > 0:
                delta = delta_next
        return loss

    def train(self, X, Y, labels):
        w = self.workload
        n, bs = X.shape[0], w.batch_size
        total = 0.0
        for _ in range(w.epochs):
            total = 0.0
            for start in range(0, n, bs):
                stop = min(start + bs, n)
                total += self.step(X[start:stop], Y[start:stop],
                                   None if labels is None else labels[start:stop],
                                   stop - start, w.learning_rate)
        return total

    def predict(self, X):
        out = []
        rows = self.A[0].shape[0]
        for start in range(0, X.shape[0], rows):
            stop = min(start + rows, X.shape[0])
            out.append(self.forward(X[start:stop], stop - start).copy())
        return np.concatenate(out)


class Run:
    def __init__(self, workload, dtype):
        self.mlp = MinibatchMLP(workload, dtype)
        self.X, self.Y = workload.data(dtype)
        self.labels = workload.labels

    def train(self):
        self.mlp.train(self.X, self.Y, self.labels)

    def predict(self, X):
        return self.mlp.predict(np.ascontiguousarray(X, dtype=self.mlp.dtype))


class InferenceRun:
    """Forward passes only, with buffers sized for the largest batch asked."""

    def __init__(self, workload, dtype, max_rows):
        from dataclasses import replace

        self.mlp = MinibatchMLP(replace(workload, batch_size=max_rows), dtype)

    def predict(self, X):
        return self.mlp.forward(X, X.shape[0])


class Contender:
    name = "numpy minibatch"

    def version(self):
        return np.__version__

    def variants(self, workload):
        return [(f"numpy {workload.dtype}", {"dtype": workload.dtype})]

    def prepare(self, workload, threads, dtype):
        return Run(workload, dtype)

    def inference_variants(self, workload):
        return [(f"numpy {workload.dtype}", {"dtype": workload.dtype})]

    def prepare_inference(self, workload, threads, dtype, max_rows=1024):
        return InferenceRun(workload, dtype, max_rows)
