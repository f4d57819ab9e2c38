"""scikit-learn's MLPRegressor / MLPClassifier with solver="sgd".

Plain SGD: no momentum, constant learning rate, alpha=0, no early stopping,
no shuffling, and a stopping rule that can never fire in the epochs asked
(``n_iter_no_change`` above ``max_iter``).

Conventions translated:

- scikit-learn divides every gradient by the batch size (its objective is
  the mean over the batch of ``1/2 sum_k (a_k - y_k)**2``, or of the
  cross-entropy), so under the workload's "sum" reduction its learning rate
  is the workload's times the batch size.
- Same initial weights: a one-epoch fit on one row per class sets up the
  estimator (untimed); its ``coefs_``/``intercepts_`` are then overwritten in
  place with the workload's initial weights, and the timed fit continues from
  them (``warm_start=True``).

What cannot be matched: MLPRegressor's output layer is always the identity
and MLPClassifier pairs a logistic output with log-loss, so no estimator
offers the sigmoid output with squared error of W1 and W2. There the row runs
MLPRegressor (identity output, squared error), the nearest model, and its
note says the math differs.
"""

from __future__ import annotations

import warnings

import numpy as np


def _setup_rows(workload):
    """A few rows that contain every class, for the untimed set-up fit."""
    if workload.labels is None:
        return np.arange(min(workload.n_samples, workload.batch_size))
    _, first = np.unique(workload.labels, return_index=True)
    return np.sort(first)


class Run:
    def __init__(self, workload, dtype):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        self.workload = workload
        self.ConvergenceWarning = ConvergenceWarning
        classify = workload.output == "softmax_ce"
        learning_rate = workload.learning_rate
        if workload.reduction == "sum":
            learning_rate *= workload.batch_size
        Estimator = MLPClassifier if classify else MLPRegressor
        self.est = Estimator(
            hidden_layer_sizes=tuple(workload.layer_sizes[1:-1]),
            activation="logistic" if workload.hidden == "sigmoid" else "relu",
            solver="sgd", alpha=0.0, batch_size=workload.batch_size,
            learning_rate="constant", learning_rate_init=learning_rate,
            momentum=0.0, nesterovs_momentum=False, shuffle=False,
            early_stopping=False, tol=0.0, n_iter_no_change=workload.epochs + 1,
            max_iter=1, warm_start=True, random_state=0,
        )
        X, Y = workload.data(dtype)
        self.X = X
        # One output: scikit-learn wants a 1-D y (and predicts one).
        self.y = workload.labels if classify else (Y[:, 0] if Y.shape[1] == 1 else Y)
        rows = _setup_rows(workload)
        with warnings.catch_warnings():
            # The set-up fit on a few rows warns about its batch size and convergence.
            warnings.simplefilter("ignore")
            self.est.fit(X[rows], self.y[rows])
        for W, coef in zip(workload.weights, self.est.coefs_):
            coef[...] = W
        for b, intercept in zip(workload.biases, self.est.intercepts_):
            intercept[...] = b
        self.est.set_params(max_iter=workload.epochs)
        self.est.loss_curve_ = []
        self.est._no_improvement_count = 0
        self.est.best_loss_ = np.inf
        self.note = (None if classify else
                     "math differs: identity output (no sigmoid output with squared error "
                     "in scikit-learn)")

    def train(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self.ConvergenceWarning)
            self.est.fit(self.X, self.y)

    def predict(self, X):
        X = np.ascontiguousarray(X, dtype=self.X.dtype)
        if self.workload.output == "softmax_ce":
            return self.est.predict_proba(X)
        out = self.est.predict(X)
        return out.reshape(X.shape[0], -1)


class InferenceRun:
    def __init__(self, workload, dtype):
        self.run = Run(workload, dtype)

    def predict(self, X):
        return self.run.est.predict_proba(X)


class Contender:
    name = "scikit-learn"

    def version(self):
        import sklearn

        return sklearn.__version__

    def variants(self, workload):
        kind = "MLPClassifier" if workload.output == "softmax_ce" else "MLPRegressor"
        return [(f"sklearn {kind} {workload.dtype}", {"dtype": workload.dtype})]

    def prepare(self, workload, threads, dtype):
        return Run(workload, dtype)

    def inference_variants(self, workload):
        return [(f"sklearn MLPClassifier {workload.dtype}", {"dtype": workload.dtype})]

    def prepare_inference(self, workload, threads, dtype):
        return InferenceRun(workload, dtype)
