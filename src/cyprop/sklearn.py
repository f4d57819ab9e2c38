"""scikit-learn estimators backed by :class:`cyprop.Network`.

:class:`NetworkClassifier` and :class:`NetworkRegressor` follow scikit-learn's
estimator API (``fit``, ``predict``, ``score``, ``partial_fit``, ``get_params``)
and its conventions: parameters are stored untouched by ``__init__`` and
checked in ``fit``, input is checked with scikit-learn's own helpers, and
everything learnt ends in an underscore. A call of ``fit``, or a first call
of ``partial_fit``, that raises leaves the estimator as it was; a later
``partial_fit`` that raises leaves its network as
:meth:`cyprop.Network.partial_fit` does. They work in pipelines, grid
searches and cross-validation, and pickle.

This module needs scikit-learn (``pip install "cyprop[sklearn]"``); importing
:mod:`cyprop` alone never imports it.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from cyprop.sklearn import NetworkClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = NetworkClassifier(learning_rate=0.01, random_state=0)
>>> model = make_pipeline(StandardScaler(), clf)
>>> bool(model.fit(X, y).score(X, y) > 0.95)
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_array, check_consistent_length, check_scalar
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import (
        check_is_fitted,
        check_non_negative,
        check_random_state,
        column_or_1d,
        validate_data,
    )
except ImportError as error:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "cyprop.sklearn needs scikit-learn 1.6 or newer; install it with "
        '`pip install "cyprop[sklearn]"`'
    ) from error

from cyprop._validation import check_split_weights
from cyprop.network import Network
from cyprop.optimizers import LBFGS, SGD, Adam, IRPropMinus, make_optimizer

__all__ = ["NetworkClassifier", "NetworkRegressor"]

# Hidden activations by name; "logistic" is scikit-learn's name for the sigmoid.
_ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
}
_OPTIMIZER_NAMES = ("adam", "sgd", "momentum", "nesterov", "irprop-", "lbfgs")
_OPTIMIZER_TYPES = (SGD, Adam, IRPropMinus, LBFGS)
# Optimizers that always step on the full batch: batch_size does not apply to them.
_FULL_BATCH = ("irprop-", "lbfgs")
# Samples per step when batch_size="auto" (fewer when there are fewer samples).
_AUTO_BATCH_SIZE = 200


def _check_real(value: Any, name: str, **bounds: Any) -> float:
    """``check_scalar`` for a real number, which also refuses NaN and infinity.

    ``check_scalar``'s bounds are comparisons, which NaN passes.
    """
    check_scalar(value, name, numbers.Real, **bounds)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@contextlib.contextmanager
def _unchanged_on_failure(estimator: Any) -> Iterator[None]:
    """Give ``estimator`` back its attributes if the block raises.

    ``fit`` sets what it learns (``classes_``, ``n_features_in_``, ...) as it
    checks the input, before training; without this, a call that fails
    half-way would leave those describing the new data beside the old network.
    """
    saved = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


def _why_not_partial_fit(estimator: Any) -> str | None:
    """Why partial_fit is unavailable (it needs a stepping optimizer and no
    validation split), or None when it is available."""
    optimizer = estimator.optimizer
    if (isinstance(optimizer, str) and optimizer == "lbfgs") or isinstance(optimizer, LBFGS):
        return ("L-BFGS cannot train incrementally, since it needs every sample at once; "
                "use fit, or an optimizer such as 'adam' or 'sgd'")
    if estimator.early_stopping is True:
        return ("early_stopping=True holds out samples within one call to fit; "
                "set early_stopping=False to train incrementally")
    return None


class _AvailableUnless:
    """A method that exists only when ``why_not(estimator)`` is None.

    As scikit-learn's ``available_if`` (and its MLP's ``partial_fit``):
    ``hasattr(estimator, name)`` is False when the method is unavailable,
    which scikit-learn's estimator checks rely on. Unlike ``available_if``,
    whose message is only "has no attribute", the AttributeError says why.
    """

    def __init__(self, method: Callable[..., Any],
                 why_not: Callable[[Any], str | None]) -> None:
        self.method = method
        self.why_not = why_not
        # What doctest, help() and Sphinx read from a method.
        self.__doc__ = method.__doc__
        self.__module__ = method.__module__
        self.__name__ = method.__name__
        self.__wrapped__ = method

    def __get__(self, estimator: Any, owner: type | None = None) -> Any:
        if estimator is None:
            return self.method  # on the class: the function, for docs and signatures
        reason = self.why_not(estimator)
        if reason is not None:
            raise AttributeError(
                f"This {type(estimator).__name__!r} has no attribute "
                f"{self.method.__name__!r}: {reason}"
            )
        return types.MethodType(self.method, estimator)


def _partial_fit_if_possible(method: Callable[..., Any]) -> _AvailableUnless:
    return _AvailableUnless(method, _why_not_partial_fit)


class _BaseNetwork(BaseEstimator):
    """What the classifier and the regressor share: parameters, checks and training."""

    # Set by the subclasses.
    _output_kind: str

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        optimizer: Any = "adam",
        learning_rate: float | None = None,
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        dtype: Any = "float64",
        verbose: bool | int = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.verbose = verbose

    # --- parameters --------------------------------------------------------

    def _check_params(self) -> dict[str, Any]:
        """Every hyperparameter checked, in the form training uses."""
        sizes: Any = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
            raise TypeError(
                "hidden_layer_sizes must be an integer or a sequence of integers, "
                f"got {self.hidden_layer_sizes!r}"
            )
        sizes = tuple(
            check_scalar(size, f"hidden_layer_sizes[{index}]", numbers.Integral, min_val=1)
            for index, size in enumerate(sizes)
        )
        if not isinstance(self.activation, str) or self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )
        if isinstance(self.dtype, str) and self.dtype in ("float32", "float64"):
            dtype = np.dtype(self.dtype)
        elif self.dtype in (np.float32, np.float64):
            dtype = np.dtype(self.dtype)
        else:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.batch_size != "auto":
            check_scalar(self.batch_size, "batch_size", numbers.Integral, min_val=1)
        for name in ("shuffle", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.verbose, (bool, np.bool_)):
            check_scalar(self.verbose, "verbose", numbers.Integral, min_val=0)
        return {
            "sizes": sizes,
            "activation": _ACTIVATIONS[self.activation],
            "dtype": dtype,
            "alpha": _check_real(self.alpha, "alpha", min_val=0.0),
            "max_iter": check_scalar(self.max_iter, "max_iter", numbers.Integral, min_val=1),
            "tol": _check_real(self.tol, "tol", min_val=0.0),
            "n_iter_no_change": check_scalar(
                self.n_iter_no_change, "n_iter_no_change", numbers.Integral, min_val=1
            ),
            "validation_fraction": _check_real(
                self.validation_fraction, "validation_fraction",
                min_val=0.0, max_val=1.0, include_boundaries="neither",
            ),
            "verbose": int(self.verbose),
        }

    def _optimizer_kind(self) -> str:
        """The optimizer's name, checked ("adam", "sgd", ..., "lbfgs")."""
        optimizer = self.optimizer
        if isinstance(optimizer, str):
            if optimizer not in _OPTIMIZER_NAMES:
                raise ValueError(
                    f"optimizer must be one of {list(_OPTIMIZER_NAMES)} or an optimizer "
                    f"object from cyprop.optimizers, got {optimizer!r}"
                )
            return optimizer
        if isinstance(optimizer, _OPTIMIZER_TYPES):
            return optimizer.kind
        raise TypeError(
            f"optimizer must be one of {list(_OPTIMIZER_NAMES)} or an optimizer object "
            f"from cyprop.optimizers, got {optimizer!r}"
        )

    def _make_optimizer(self, kind: str, weight_decay: float) -> Any:
        """The optimizer object for training, with the learning rate and penalty set."""
        optimizer, learning_rate = self.optimizer, self.learning_rate
        if isinstance(learning_rate, str):
            raise TypeError(
                f"learning_rate is the step size, a number, got {learning_rate!r}; for a "
                "schedule, pass an optimizer object such as "
                "SGD(schedule=InverseScaling()) from cyprop.optimizers"
            )
        if learning_rate is not None:
            _check_real(learning_rate, "learning_rate", min_val=0.0,
                        include_boundaries="neither")
            if kind in _FULL_BATCH:
                raise ValueError(
                    f"learning_rate does not apply to the {kind} optimizer; leave it None"
                )
            learning_rate = float(learning_rate)
        if isinstance(optimizer, str):
            optimizer = make_optimizer(optimizer, learning_rate)
        else:
            if optimizer.weight_decay != 0:
                raise ValueError(
                    "set the L2 penalty with alpha: the optimizer object's weight_decay "
                    f"must be 0, got {optimizer.weight_decay}"
                )
            if learning_rate is not None:
                optimizer = dataclasses.replace(optimizer, learning_rate=learning_rate)
        return dataclasses.replace(optimizer, weight_decay=weight_decay)

    @staticmethod
    def _weight_decay(alpha: float, batch_size: int, weights: np.ndarray | None) -> float:
        """cyprop's weight_decay for ``alpha``: alpha / (batch_size * mean sample weight)."""
        mean_weight = 1.0 if weights is None else float(np.mean(weights))
        if alpha == 0 or mean_weight == 0:
            return 0.0
        return float(alpha) / (batch_size * mean_weight)

    def _batch_size(self, kind: str, n_samples: int) -> int:
        """Samples per step: all of them for the full-batch optimizers."""
        if kind in _FULL_BATCH:
            return n_samples
        if self.batch_size == "auto":
            return min(_AUTO_BATCH_SIZE, n_samples)
        return min(int(self.batch_size), n_samples)

    def _seed(self, random_state: np.random.RandomState) -> int:
        """A seed for the network (weights and shuffling) drawn from ``random_state``."""
        return int(random_state.randint(np.iinfo(np.int32).max))

    # --- data ----------------------------------------------------------------

    def _check_sample_weight(
        self, sample_weight: Any, X: np.ndarray, dtype: np.dtype
    ) -> np.ndarray | None:
        if sample_weight is None:
            return None
        if isinstance(sample_weight, numbers.Number):
            sample_weight = np.full(X.shape[0], sample_weight, dtype=dtype)
        sample_weight = check_array(
            sample_weight, ensure_2d=False, dtype=dtype, input_name="sample_weight"
        )
        if sample_weight.ndim != 1:
            raise ValueError(
                f"sample_weight must be 1-D of shape (n_samples,), got shape "
                f"{sample_weight.shape}"
            )
        check_consistent_length(X, sample_weight)
        check_non_negative(sample_weight, "sample_weight")
        if not sample_weight.any():
            raise ValueError("sample_weight is all zero: at least one weight must be positive")
        return np.asarray(sample_weight)

    # Implemented by the subclasses.
    def _check_targets(self, y: np.ndarray, first: bool, classes: Any = None) -> np.ndarray:
        raise NotImplementedError

    def _encode(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _decode(self, outputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score_outputs(self, outputs: np.ndarray, y: np.ndarray,
                       sample_weight: np.ndarray | None) -> float:
        raise NotImplementedError

    def _output_layer(self) -> tuple[int, str, str]:
        raise NotImplementedError

    def _stratify(self, y: np.ndarray, n_held: int) -> np.ndarray | None:
        return None

    # --- training ------------------------------------------------------------

    def _new_network(self, params: dict[str, Any], n_features: int, seed: int) -> Network:
        n_outputs, output_activation, loss = self._output_layer()
        network = Network(
            [n_features, *params["sizes"], n_outputs],
            activation=params["activation"] if params["sizes"] else output_activation,
            output_activation=output_activation,
            loss=loss,
            reduction="mean",
            dtype=params["dtype"],
            seed=seed,
        )
        self.out_activation_ = output_activation
        self.n_outputs_ = n_outputs
        return network

    def _fit(self, X: Any, y: Any, sample_weight: Any) -> _BaseNetwork:
        with _unchanged_on_failure(self):
            return self._fit_new_network(X, y, sample_weight)

    def _fit_new_network(self, X: Any, y: Any, sample_weight: Any) -> _BaseNetwork:
        params = self._check_params()
        kind = self._optimizer_kind()
        X, y = validate_data(self, X, y, multi_output=True, dtype=params["dtype"],
                             y_numeric=self._output_kind == "regression")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y = self._check_targets(y, first=True)
        sample_weight = self._check_sample_weight(sample_weight, X, params["dtype"])
        Y = self._encode(y)
        random_state = check_random_state(self.random_state)
        seed = self._seed(random_state)

        validation = None
        if self.early_stopping:
            n_held = int(np.ceil(params["validation_fraction"] * X.shape[0]))
            if n_held < 2 or n_held >= X.shape[0]:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} holds out {n_held} "
                    f"of {X.shape[0]} samples; early stopping needs at least 2 held out "
                    "and 1 left to train on"
                )
            train, held = train_test_split(
                np.arange(X.shape[0]), test_size=n_held, random_state=random_state,
                stratify=self._stratify(y, n_held),
            )
            train, held = np.sort(train), np.sort(held)
            if sample_weight is not None:
                check_split_weights(sample_weight, held, train,
                                    "change random_state or validation_fraction, or fit "
                                    "without early_stopping")
            validation = (X[held], y[held],
                          None if sample_weight is None else sample_weight[held])
            X, Y = X[train], Y[train]
            sample_weight = None if sample_weight is None else sample_weight[train]

        batch_size = self._batch_size(kind, X.shape[0])
        optimizer = self._make_optimizer(
            kind, self._weight_decay(params["alpha"], batch_size, sample_weight))
        network = self._new_network(params, X.shape[1], seed)
        monitor = _Monitor(self, network, validation, params["tol"],
                           params["n_iter_no_change"], params["verbose"])
        history = network.fit(
            X, Y, epochs=params["max_iter"], batch_size=batch_size,
            shuffle=bool(self.shuffle), verbose=params["verbose"], optimizer=optimizer,
            sample_weight=sample_weight, callbacks=[monitor],
        )
        monitor.restore_best()

        self.network_ = network
        self.optimizer_ = optimizer
        self.batch_size_ = batch_size
        self.loss_curve_ = [float(loss) for loss in history.loss]
        self.n_iter_ = len(self.loss_curve_)
        if self.loss_curve_:
            self.loss_ = self.loss_curve_[-1]
        else:
            # L-BFGS stops before its first iteration when it starts where the
            # gradient is exactly zero.
            self.loss_ = float(network.loss(X, Y, sample_weight,
                                            weight_decay=optimizer.weight_decay))
        self.best_loss_: float | None
        if validation is None:
            self.best_loss_ = min(self.loss_curve_, default=self.loss_)
            self.validation_scores_ = None
            self.best_validation_score_ = None
        else:
            self.best_loss_ = None
            self.validation_scores_ = monitor.scores
            self.best_validation_score_ = monitor.best_score if monitor.scores else None
        if self.n_iter_ == params["max_iter"] and not monitor.stopped:
            warnings.warn(
                f"{type(self).__name__} reached max_iter={params['max_iter']} epochs before "
                "its stopping rule: the "
                + ("validation score" if validation is not None else "training loss")
                + f" had not gone more than n_iter_no_change={params['n_iter_no_change']} "
                f"epochs without improving by more than tol={params['tol']}. Raise max_iter "
                "or tol.",
                ConvergenceWarning,
                stacklevel=4,  # the caller of fit (fit, _fit, here)
            )
        return self

    def _partial_fit(self, X: Any, y: Any, sample_weight: Any, first: bool,
                     classes: Any = None) -> _BaseNetwork:
        if not first:
            # Nothing but the network changes before a later pass trains.
            return self._train_one_pass(X, y, sample_weight, first, classes)
        with _unchanged_on_failure(self):
            return self._train_one_pass(X, y, sample_weight, first, classes)

    def _train_one_pass(self, X: Any, y: Any, sample_weight: Any, first: bool,
                        classes: Any = None) -> _BaseNetwork:
        params = self._check_params()
        kind = self._optimizer_kind()
        dtype = params["dtype"] if first else self.network_.dtype
        X, y = validate_data(self, X, y, multi_output=True, dtype=dtype,
                             y_numeric=self._output_kind == "regression", reset=first)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y = self._check_targets(y, first=first, classes=classes)
        sample_weight = self._check_sample_weight(sample_weight, X, dtype)
        Y = self._encode(y)
        batch_size = self._batch_size(kind, X.shape[0])
        if first:
            seed = self._seed(check_random_state(self.random_state))
            self.network_ = self._new_network(params, X.shape[1], seed)
            # The penalty is fixed on the first call so that the optimizer, and with it
            # its state (moments, step count), stays the same from call to call.
            self.optimizer_ = self._make_optimizer(
                kind, self._weight_decay(params["alpha"], batch_size, sample_weight))
            self.batch_size_ = batch_size
            self.loss_curve_ = []
            self.n_iter_ = 0
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {Y.shape[1]} outputs but {type(self).__name__} was first fitted "
                f"with {self.n_outputs_}"
            )
        loss = self.network_.partial_fit(
            X, Y, sample_weight, optimizer=self.optimizer_, batch_size=batch_size)
        self.loss_curve_.append(float(loss))
        self.loss_ = float(loss)
        self.best_loss_ = self.loss_ if self.best_loss_ is None else min(self.best_loss_,
                                                                         self.loss_)
        self.n_iter_ += 1
        if params["verbose"]:
            print(f"partial_fit pass {self.n_iter_}  loss {loss:.10g}", flush=True)
        return self

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs for ``X``, checked against the fitted features."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype)
        return self.network_.predict(X)

    # --- fitted parameters ---------------------------------------------------

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices, ``(fan_in, fan_out)`` each: live views into the network."""
        return self.network_.weights

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors, ``(fan_out,)`` each: live views into the network."""
        return self.network_.biases

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class _Monitor:
    """The per-epoch callback: validation scores, best weights and the tol rule.

    Training stops when the monitored quantity has not improved by more than
    ``tol`` for more than ``n_iter_no_change`` epochs in a row: the validation
    score (higher is better) when there is validation data, else the
    training loss.
    """

    def __init__(self, estimator: _BaseNetwork, network: Network,
                 validation: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None,
                 tol: float, n_iter_no_change: int, verbose: int) -> None:
        self.estimator = estimator
        self.network = network
        self.validation = validation
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.verbose = verbose
        self.scores: list[float] = []
        self.best_score = -np.inf
        self.best_loss = np.inf
        self.best_params: list[np.ndarray] | None = None
        self.waited = 0
        self.stopped = False

    def __call__(self, network: Network, logs: dict[str, Any]) -> bool:
        if self.validation is None:
            loss = logs["loss"]
            improved = loss < self.best_loss - self.tol
            self.best_loss = min(self.best_loss, loss)
        else:
            X_val, y_val, weights_val = self.validation
            score = float(self.estimator._score_outputs(network.predict(X_val), y_val,
                                                        weights_val))
            self.scores.append(score)
            if self.verbose and logs["epoch"] % self.verbose == 0:
                print(f"epoch {logs['epoch']}  validation score {score:.6f}", flush=True)
            improved = score > self.best_score + self.tol
            if score > self.best_score:
                self.best_score = score
                self.best_params = [array.copy() for array in network.weights + network.biases]
        self.waited = 0 if improved else self.waited + 1
        # As in scikit-learn's MLP: n_iter_no_change epochs without improvement
        # are allowed, and the next one stops.
        self.stopped = self.waited > self.n_iter_no_change
        return self.stopped

    def restore_best(self) -> None:
        """Give the network back the weights of its best validation score."""
        if self.best_params is not None:
            for array, best in zip(self.network.weights + self.network.biases,
                                   self.best_params):
                array[...] = best


class NetworkClassifier(ClassifierMixin, _BaseNetwork):
    """A multilayer perceptron classifier trained by cyprop.

    Binary problems get one sigmoid output trained on binary cross-entropy,
    multiclass problems a softmax output over the classes trained on
    cross-entropy, and multilabel problems (a 0/1 indicator matrix ``y``) one
    sigmoid output per label. Each step minimises the mean loss of a batch
    (cyprop's ``reduction="mean"``) plus the L2 penalty.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; ``()`` fits a model with no hidden layer.
    activation : {"relu", "tanh", "logistic", "sigmoid", "identity", "leaky_relu"}, \
default="relu"
        Activation of the hidden layers ("logistic" and "sigmoid" are the same).
    optimizer : str or optimizer object, default="adam"
        "adam", "sgd", "momentum" (0.9), "nesterov" (0.9), "irprop-", "lbfgs",
        or an object from :mod:`cyprop.optimizers` (for its momentum, betas
        or learning-rate schedule); its ``weight_decay`` must be 0, since
        ``alpha`` sets the penalty. "irprop-" and "lbfgs" step on the full
        batch.
    learning_rate : float, optional
        Step size. None keeps the optimizer's own (0.001 for "adam", 0.1 for
        the SGD family); a number replaces it, also in an optimizer object.
        Does not apply to "irprop-" and "lbfgs".
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights (not the biases), counted
        against a batch's summed loss as in scikit-learn's MLP: each step
        minimises ``mean batch loss + alpha / (2 * batch_size) * sum(W**2)``,
        which is cyprop's ``weight_decay = alpha / batch_size``. With sample
        weights, ``batch_size`` is scaled by the mean weight.
    batch_size : int or "auto", default="auto"
        Samples per step; "auto" is ``min(200, n_samples)``.
    max_iter : int, default=200
        Epochs at most (iterations, for "lbfgs").
    shuffle : bool, default=True
        Visit the samples in a new seeded order each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling and the validation split.
    tol : float, default=1e-4
        Training stops when the training loss (or, with early stopping, the
        validation accuracy) has not improved by more than ``tol`` for more than
        ``n_iter_no_change`` epochs in a row.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the samples (stratified), score
        the network on them after every epoch, stop by the ``tol`` rule on
        that score and keep the weights of the best-scoring epoch.
    validation_fraction : float, default=0.1
        Share of the samples held out when ``early_stopping`` is True.
    n_iter_no_change : int, default=10
        Epochs in a row without improvement that training allows; the next
        such epoch stops it, as in scikit-learn's MLP. Unlike scikit-learn,
        the rule applies to "lbfgs" too, iteration by iteration.
    dtype : {"float64", "float32"}, default="float64"
        Floating type of the network's parameters and computations.
    verbose : bool or int, default=False
        Print the loss every ``verbose`` epochs (``True``: every epoch).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (the label indices ``0..n_labels-1`` for multilabel ``y``).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when ``X`` had string column names.
    n_outputs_ : int
        Output units: 1 for binary problems, else the number of classes or labels.
    out_activation_ : str
        "sigmoid" or "softmax".
    network_ : cyprop.Network
        The trained network.
    optimizer_ : optimizer object
        The optimizer used, with its learning rate and ``weight_decay`` resolved.
    batch_size_ : int
        Samples per step actually used.
    loss_curve_ : list of float
        Training objective of each epoch (mean loss plus penalty).
    loss_ : float
        The last entry of ``loss_curve_``.
    best_loss_ : float or None
        The lowest training loss; None with early stopping.
    validation_scores_ : list of float or None
        Validation accuracy after each epoch with early stopping, else None.
    best_validation_score_ : float or None
        The best of ``validation_scores_``, whose weights were kept.
    n_iter_ : int
        Epochs run (passes, after ``partial_fit``).
    coefs_, intercepts_ : list of ndarray
        The network's weights and biases, layer by layer.

    See Also
    --------
    NetworkRegressor : The same network with identity outputs, for regression.
    cyprop.Network : The network being trained.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.preprocessing import StandardScaler
    >>> from cyprop.sklearn import NetworkClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = NetworkClassifier(hidden_layer_sizes=(32,), learning_rate=0.01, random_state=0)
    >>> bool(clf.fit(X_train, y_train).score(X_test, y_test) > 0.9)
    True
    >>> clf.predict_proba(X_test[:2]).shape
    (2, 2)
    """

    _output_kind = "classification"

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NetworkClassifier:
        """Train a new network on ``X`` and the labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples, as a dense array (a sparse matrix is refused).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, of at least two classes, or a 0/1 indicator matrix
            for multilabel problems.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; a weight of 2 counts a sample twice.

        Returns
        -------
        self : NetworkClassifier
            The fitted classifier.

        Examples
        --------
        >>> from cyprop.sklearn import NetworkClassifier
        >>> X, y = [[0.0], [1.0], [2.0], [3.0]], ["no", "no", "yes", "yes"]
        >>> NetworkClassifier(learning_rate=0.1, random_state=0).fit(X, y).classes_
        array(['no', 'yes'], dtype='<U3')
        """
        return self._fit(X, y, sample_weight)

    @_partial_fit_if_possible
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None,
                    classes: Any = None) -> NetworkClassifier:
        """One pass over the samples given, continuing from the current weights.

        The first call creates the network and needs ``classes`` (except for
        multilabel ``y``); later calls continue training it, and the
        optimizer's state (momentum, moments) carries over. Samples are visited
        in the order given, in batches of ``batch_size``. Not available with
        the "lbfgs" optimizer or with ``early_stopping=True``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional
        classes : array-like of shape (n_classes,), optional
            Every label that any call will see; required on the first call.

        Returns
        -------
        self : NetworkClassifier
            The updated classifier.

        Examples
        --------
        >>> from cyprop.sklearn import NetworkClassifier
        >>> clf = NetworkClassifier(random_state=0)
        >>> clf = clf.partial_fit([[0.0], [3.0]], [0, 1], classes=[0, 1])
        >>> clf = clf.partial_fit([[1.0], [2.0]], [0, 1])
        >>> clf.n_iter_
        2
        """
        first = not hasattr(self, "network_")
        if first and classes is None and not type_of_target(y).startswith("multilabel"):
            raise ValueError("classes must be given on the first call to partial_fit")
        if not first and classes is not None and not np.array_equal(
            np.unique(classes), self.classes_
        ):
            raise ValueError(
                f"classes={classes!r} differs from the classes of the first call to "
                f"partial_fit, {self.classes_!r}"
            )
        return self._partial_fit(X, y, sample_weight, first, classes)

    def _check_targets(self, y: np.ndarray, first: bool, classes: Any = None) -> np.ndarray:
        check_classification_targets(y)
        target_type = type_of_target(y, input_name="y")
        if target_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(
                f"{type(self).__name__} supports binary, multiclass and multilabel "
                f"indicator targets, got {target_type!r}"
            )
        if first:
            binarizer = LabelBinarizer()
            if classes is not None and target_type != "multilabel-indicator":
                binarizer.fit(np.unique(np.asarray(classes)))
            else:
                binarizer.fit(y)
            if binarizer.classes_.shape[0] < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes, got 1 "
                    f"class: {binarizer.classes_[0]!r}"
                )
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
        if target_type != "multilabel-indicator":
            unknown = np.setdiff1d(np.unique(y), self.classes_)
            if unknown.size:
                raise ValueError(
                    f"y holds labels {unknown!r} that are not among classes_ {self.classes_!r}"
                )
        if not first and (target_type == "multilabel-indicator") != (
            self._label_binarizer.y_type_ == "multilabel-indicator"
        ):
            raise ValueError(
                f"y is {target_type!r} but the classifier was first fitted on "
                f"{self._label_binarizer.y_type_!r} targets"
            )
        return y

    def _encode(self, y: np.ndarray) -> np.ndarray:
        Y = self._label_binarizer.transform(y)
        if hasattr(Y, "toarray"):
            Y = Y.toarray()
        return np.asarray(Y, dtype=np.float64)

    def _output_layer(self) -> tuple[int, str, str]:
        binarizer = self._label_binarizer
        if binarizer.y_type_ == "multiclass":
            return binarizer.classes_.shape[0], "softmax", "cross_entropy"
        n_outputs = 1 if binarizer.y_type_ == "binary" else binarizer.classes_.shape[0]
        return n_outputs, "sigmoid", "binary_cross_entropy"

    def _stratify(self, y: np.ndarray, n_held: int) -> np.ndarray | None:
        if y.ndim != 1:
            return None
        counts = np.unique(y, return_counts=True)[1]
        n_classes = counts.shape[0]
        # Stratify when every class can be represented on both sides of the split.
        if counts.min() >= 2 and min(n_held, y.shape[0] - n_held) >= n_classes:
            return y
        return None

    def _decode(self, outputs: np.ndarray) -> np.ndarray:
        """Labels from the network's outputs."""
        y_type = self._label_binarizer.y_type_
        if y_type == "multilabel-indicator":
            return (outputs > 0.5).astype(int)
        if y_type == "binary":
            return np.asarray(self.classes_[(outputs[:, 0] > 0.5).astype(np.intp)])
        return np.asarray(self.classes_[np.argmax(outputs, axis=1)])

    def _score_outputs(self, outputs: np.ndarray, y: np.ndarray,
                       sample_weight: np.ndarray | None) -> float:
        return float(accuracy_score(y, self._decode(outputs), sample_weight=sample_weight))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_``, or a 0/1 indicator matrix for multilabel
            problems (each label predicted when its probability exceeds 0.5).

        Examples
        --------
        >>> from cyprop.sklearn import NetworkClassifier
        >>> X, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
        >>> clf = NetworkClassifier(learning_rate=0.1, random_state=0).fit(X, y)
        >>> clf.predict([[0.0], [3.0]])
        array([0, 1])
        """
        return self._decode(self._outputs(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; rows sum to 1, except for
            multilabel problems, where each column is one label's probability.

        Examples
        --------
        >>> from cyprop.sklearn import NetworkClassifier
        >>> X, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
        >>> clf = NetworkClassifier(learning_rate=0.1, random_state=0).fit(X, y)
        >>> clf.predict_proba([[0.0], [3.0]]).sum(axis=1)
        array([1., 1.])
        """
        outputs = self._outputs(X)
        if self._label_binarizer.y_type_ == "binary":
            return np.hstack([1.0 - outputs, outputs])
        return outputs

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithms of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> from cyprop.sklearn import NetworkClassifier
        >>> X, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
        >>> clf = NetworkClassifier(learning_rate=0.1, random_state=0).fit(X, y)
        >>> bool((clf.predict_log_proba([[1.5]]) < 0).all())
        True
        """
        with np.errstate(divide="ignore"):
            return np.asarray(np.log(self.predict_proba(X)))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class NetworkRegressor(RegressorMixin, _BaseNetwork):
    """A multilayer perceptron regressor trained by cyprop.

    The output layer is linear (identity activation), one unit per target,
    trained on the squared error ``1/2 * sum_k (output_k - y_k)**2`` averaged
    over each batch (cyprop's "mse" loss with ``reduction="mean"``) plus the
    L2 penalty. Targets are used as given: scale them when their range is
    far from 1.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; ``()`` fits a linear model.
    activation : {"relu", "tanh", "logistic", "sigmoid", "identity", "leaky_relu"}, \
default="relu"
        Activation of the hidden layers.
    optimizer : str or optimizer object, default="adam"
        As in :class:`NetworkClassifier`.
    learning_rate : float, optional
        As in :class:`NetworkClassifier`.
    alpha : float, default=0.0001
        L2 penalty: ``weight_decay = alpha / batch_size``, as in
        :class:`NetworkClassifier`.
    batch_size : int or "auto", default="auto"
        Samples per step; "auto" is ``min(200, n_samples)``.
    max_iter : int, default=200
        Epochs at most (iterations, for "lbfgs").
    shuffle : bool, default=True
        Visit the samples in a new seeded order each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling and the validation split.
    tol : float, default=1e-4
        Training stops when the training loss (or, with early stopping, the
        validation R²) has not improved by more than ``tol`` for more than
        ``n_iter_no_change`` epochs in a row.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the samples, score the network on
        them (R²) after every epoch, stop by the ``tol`` rule on that score
        and keep the weights of the best-scoring epoch.
    validation_fraction : float, default=0.1
        Share of the samples held out when ``early_stopping`` is True.
    n_iter_no_change : int, default=10
        Epochs in a row without improvement that training allows; the next
        such epoch stops it, as in scikit-learn's MLP. Unlike scikit-learn,
        the rule applies to "lbfgs" too, iteration by iteration.
    dtype : {"float64", "float32"}, default="float64"
        Floating type of the network's parameters and computations.
    verbose : bool or int, default=False
        Print the loss every ``verbose`` epochs (``True``: every epoch).

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when ``X`` had string column names.
    n_outputs_ : int
        Number of targets.
    out_activation_ : str
        "identity".
    network_ : cyprop.Network
        The trained network.
    optimizer_ : optimizer object
        The optimizer used, with its learning rate and ``weight_decay`` resolved.
    batch_size_ : int
        Samples per step actually used.
    loss_curve_ : list of float
        Training objective of each epoch (mean loss plus penalty).
    loss_ : float
        The last entry of ``loss_curve_``.
    best_loss_ : float or None
        The lowest training loss; None with early stopping.
    validation_scores_ : list of float or None
        Validation R² after each epoch with early stopping, else None.
    best_validation_score_ : float or None
        The best of ``validation_scores_``, whose weights were kept.
    n_iter_ : int
        Epochs run (passes, after ``partial_fit``).
    coefs_, intercepts_ : list of ndarray
        The network's weights and biases, layer by layer.

    See Also
    --------
    NetworkClassifier : The same network with sigmoid or softmax outputs.
    cyprop.Network : The network being trained.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.model_selection import train_test_split
    >>> from cyprop.sklearn import NetworkRegressor
    >>> X, y = make_regression(n_samples=300, n_features=5, noise=1.0, random_state=0)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y / y.std(), random_state=0)
    >>> reg = NetworkRegressor(hidden_layer_sizes=(32,), max_iter=500, random_state=0)
    >>> bool(reg.fit(X_train, y_train).score(X_test, y_test) > 0.95)
    True
    """

    _output_kind = "regression"

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NetworkRegressor:
        """Train a new network on ``X`` and the targets ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples, as a dense array (a sparse matrix is refused).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            The targets.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; a weight of 2 counts a sample twice.

        Returns
        -------
        self : NetworkRegressor
            The fitted regressor.

        Examples
        --------
        >>> from cyprop.sklearn import NetworkRegressor
        >>> reg = NetworkRegressor(hidden_layer_sizes=(), optimizer="lbfgs", random_state=0)
        >>> reg.fit([[0.0, 1.0], [1.0, 0.0]], [[1.0, 2.0], [3.0, 4.0]]).n_outputs_
        2
        """
        return self._fit(X, y, sample_weight)

    @_partial_fit_if_possible
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> NetworkRegressor:
        """One pass over the samples given, continuing from the current weights.

        The first call creates the network; later calls continue training it,
        and the optimizer's state (momentum, moments) carries over. Samples
        are visited in the order given, in batches of ``batch_size``. Not
        available with the "lbfgs" optimizer or with ``early_stopping=True``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self : NetworkRegressor
            The updated regressor.

        Examples
        --------
        >>> from cyprop.sklearn import NetworkRegressor
        >>> reg = NetworkRegressor(random_state=0)
        >>> for _ in range(3):
        ...     reg = reg.partial_fit([[0.0], [1.0]], [0.0, 1.0])
        >>> len(reg.loss_curve_)
        3
        """
        return self._partial_fit(X, y, sample_weight, not hasattr(self, "network_"))

    def _check_targets(self, y: np.ndarray, first: bool, classes: Any = None) -> np.ndarray:
        if first:
            self._n_targets = 1 if y.ndim == 1 else y.shape[1]
        return y

    def _encode(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)

    def _output_layer(self) -> tuple[int, str, str]:
        return self._n_targets, "identity", "mse"

    def _decode(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.ravel() if outputs.shape[1] == 1 else outputs

    def _score_outputs(self, outputs: np.ndarray, y: np.ndarray,
                       sample_weight: np.ndarray | None) -> float:
        return float(r2_score(y, self._decode(outputs), sample_weight=sample_weight))

    def predict(self, X: Any) -> np.ndarray:
        """The network's predictions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            One column per target; 1-D for a single target.

        Examples
        --------
        >>> from cyprop.sklearn import NetworkRegressor
        >>> reg = NetworkRegressor(optimizer="lbfgs", random_state=0)
        >>> reg = reg.fit([[0.0], [1.0]], [0.0, 1.0])
        >>> reg.predict([[0.5]]).shape
        (1,)
        """
        return self._decode(self._outputs(X))
