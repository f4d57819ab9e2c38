"""PyTorch on the CPU: nn.Linear layers, torch.optim.SGD without momentum.

Batches are slices of one tensor that shares memory with the numpy data (a
DataLoader would add per-batch Python work the other contenders do not pay).
For cross-entropy the output layer stays linear and ``F.cross_entropy`` fuses
softmax and log, which is the same math as a softmax output with cross-entropy
loss. For MSE the loss is written out as ``1/2 * sum (a - y)**2`` over the
batch (divided by the batch size under reduction "mean"), cyprop's convention,
so the learning rate needs no translation.
"""

from __future__ import annotations

import numpy as np


def _torch():
    import torch

    return torch


def build(workload, dtype):
    torch = _torch()
    nn = torch.nn
    tdtype = getattr(torch, dtype)
    layers = []
    last = len(workload.weights) - 1
    for index, (W, b) in enumerate(zip(workload.weights, workload.biases)):
        linear = nn.Linear(W.shape[0], W.shape[1], dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))   # (fan_out, fan_in)
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if index < last:
            layers.append(nn.Sigmoid() if workload.hidden == "sigmoid" else nn.ReLU())
        elif workload.output == "sigmoid_mse":
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class Run:
    def __init__(self, workload, dtype, threads):
        torch = _torch()
        torch.set_num_threads(threads)
        self.torch = torch
        self.workload = workload
        self.model = build(workload, dtype)
        X, Y = workload.data(dtype)
        self.X = torch.from_numpy(X)
        self.Y = torch.from_numpy(Y)
        self.labels = None if workload.labels is None else torch.from_numpy(workload.labels).long()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=workload.learning_rate,
                                         momentum=0.0)

    def train(self):
        torch, w = self.torch, self.workload
        model, optimizer = self.model, self.optimizer
        F = torch.nn.functional
        X, Y, labels = self.X, self.Y, self.labels
        n, bs = X.shape[0], w.batch_size
        mse = w.output == "sigmoid_mse"
        mean = w.reduction == "mean"
        for _ in range(w.epochs):
            for start in range(0, n, bs):
                stop = min(start + bs, n)
                out = model(X[start:stop])
                if mse:
                    loss = 0.5 * (out - Y[start:stop]).square().sum()
                    if mean:
                        loss = loss / (stop - start)
                else:
                    loss = F.cross_entropy(out, labels[start:stop],
                                           reduction="mean" if mean else "sum")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def predict(self, X):
        torch = self.torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(X, dtype=self.X.numpy().dtype)))
            if self.workload.output == "softmax_ce":
                out = torch.softmax(out, dim=1)
        return out.numpy()


class InferenceRun:
    def __init__(self, workload, dtype, threads):
        torch = _torch()
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = build(workload, dtype).eval()
        self.softmax = workload.output == "softmax_ce"

    def predict(self, X):
        torch = self.torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(X))
            if self.softmax:
                out = torch.softmax(out, dim=1)
        return out.numpy()


class Contender:
    name = "torch"

    def version(self):
        torch = _torch()
        return f"{torch.__version__} ({torch.backends.cpu.get_cpu_capability()})"

    def variants(self, workload):
        return [(f"torch {workload.dtype}", {"dtype": workload.dtype})]

    def prepare(self, workload, threads, dtype):
        return Run(workload, dtype, threads)

    inference_variants = variants

    def prepare_inference(self, workload, threads, dtype):
        return InferenceRun(workload, dtype, threads)
