"""Optimizers and learning-rate schedules for :meth:`cyprop.Network.fit`.

An optimizer is a frozen record of hyperparameters; the update rules run in
the Cython core over the flat parameter buffer. Pass one to ``fit`` as
``optimizer=Adam(learning_rate=1e-3)``, or name it: ``optimizer="adam"``.

Examples
--------
>>> from cyprop.optimizers import SGD, StepDecay
>>> SGD(learning_rate=0.5, schedule=StepDecay(step_size=10, gamma=0.5)).schedule(0.5, 25)
0.125
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cyprop._validation import check_integer

__all__ = [
    "SGD",
    "Adam",
    "IRPropMinus",
    "LBFGS",
    "Constant",
    "InverseScaling",
    "StepDecay",
    "Optimizer",
    "Schedule",
    "make_optimizer",
]


def _check_real(value: Any, name: str, low: float, high: float = math.inf,
                low_inclusive: bool = False, high_inclusive: bool = False) -> None:
    # Plain floats and ints skip the abstract-class check, the slow part of
    # building an optimizer on every call of fit.
    if type(value) is not float and type(value) is not int and (
            isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    above = number >= low if low_inclusive else number > low
    below = number <= high if high_inclusive else number < high
    if not (math.isfinite(number) and above and below):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value}")


# --- schedules ---------------------------------------------------------------

@dataclass(frozen=True)
class Constant:
    """The same learning rate every epoch."""

    def __call__(self, learning_rate: float, epoch: int) -> float:
        """The learning rate for ``epoch`` (counted from 0)."""
        return learning_rate

    def rates(self, learning_rate: float, first_epoch: int, count: int) -> np.ndarray:
        """The learning rates of ``count`` epochs from ``first_epoch`` on."""
        # np.full would add two Python-level calls to every fit.
        rates = np.empty(count, dtype=np.float64)
        rates.fill(learning_rate)
        return rates


@dataclass(frozen=True)
class InverseScaling:
    """``learning_rate / (epoch + 1) ** power_t``, epochs counted from 0.

    Parameters
    ----------
    power_t : float, default=0.5
        Exponent of the decay, at least 0.
    """

    power_t: float = 0.5

    def __post_init__(self) -> None:
        _check_real(self.power_t, "power_t", 0.0, low_inclusive=True)

    def __call__(self, learning_rate: float, epoch: int) -> float:
        """The learning rate for ``epoch`` (counted from 0)."""
        return float(learning_rate / (epoch + 1) ** self.power_t)

    def rates(self, learning_rate: float, first_epoch: int, count: int) -> np.ndarray:
        """The learning rates of ``count`` epochs from ``first_epoch`` on."""
        epochs = np.arange(first_epoch, first_epoch + count, dtype=np.float64)
        rates: np.ndarray = learning_rate / (epochs + 1) ** self.power_t
        return rates


@dataclass(frozen=True)
class StepDecay:
    """``learning_rate * gamma ** (epoch // step_size)``, epochs counted from 0.

    Parameters
    ----------
    step_size : int, default=10
        Epochs between reductions.
    gamma : float, default=0.5
        Factor applied at each reduction, in (0, 1].
    """

    step_size: int = 10
    gamma: float = 0.5

    def __post_init__(self) -> None:
        check_integer(self.step_size, "step_size")
        _check_real(self.gamma, "gamma", 0.0, 1.0, high_inclusive=True)

    def __call__(self, learning_rate: float, epoch: int) -> float:
        """The learning rate for ``epoch`` (counted from 0)."""
        return float(learning_rate * self.gamma ** (epoch // self.step_size))

    def rates(self, learning_rate: float, first_epoch: int, count: int) -> np.ndarray:
        """The learning rates of ``count`` epochs from ``first_epoch`` on."""
        steps = np.arange(first_epoch, first_epoch + count) // self.step_size
        rates: np.ndarray = learning_rate * self.gamma ** steps.astype(np.float64)
        return rates


Schedule = Constant | InverseScaling | StepDecay
_SCHEDULES = {"constant": Constant, "invscaling": InverseScaling, "step": StepDecay}


def _check_schedule(schedule: Any) -> None:
    if not isinstance(schedule, (Constant, InverseScaling, StepDecay)):
        raise TypeError(
            "schedule must be Constant(), InverseScaling(...) or StepDecay(...), "
            f"got {schedule!r}"
        )


# --- optimizers ----------------------------------------------------------------

@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    ``v = momentum * v - learning_rate * g``, then ``p += v`` (classical) or
    ``p += momentum * v - learning_rate * g`` (Nesterov).

    Parameters
    ----------
    learning_rate : float, default=0.1
    momentum : float, default=0.0
        In [0, 1).
    nesterov : bool, default=False
    weight_decay : float, default=0.0
        L2 penalty ``weight_decay / 2 * sum(W**2)`` added to each batch's
        objective (weights only, not biases).
    schedule : Constant, InverseScaling or StepDecay, default=Constant()
        The learning rate of each epoch.
    """

    learning_rate: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: Schedule = field(default_factory=Constant)

    def __post_init__(self) -> None:
        _check_real(self.learning_rate, "learning_rate", 0.0)
        _check_real(self.momentum, "momentum", 0.0, 1.0, low_inclusive=True)
        if not isinstance(self.nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {self.nesterov!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum greater than 0")
        _check_real(self.weight_decay, "weight_decay", 0.0, low_inclusive=True)
        _check_schedule(self.schedule)

    @property
    def kind(self) -> str:
        """The core's name for this update rule."""
        if self.momentum == 0:
            return "sgd"
        return "nesterov" if self.nesterov else "momentum"


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma and Ba, 2015), with bias-corrected moment estimates.

    Parameters
    ----------
    learning_rate : float, default=0.001
    beta1, beta2 : float, default=0.9, 0.999
        Decay rates of the first and second moments, in [0, 1).
    epsilon : float, default=1e-8
    weight_decay : float, default=0.0
        L2 penalty added to the objective (weights only), as in :class:`SGD`.
    schedule : Constant, InverseScaling or StepDecay, default=Constant()
    """

    learning_rate: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.0
    schedule: Schedule = field(default_factory=Constant)

    def __post_init__(self) -> None:
        _check_real(self.learning_rate, "learning_rate", 0.0)
        _check_real(self.beta1, "beta1", 0.0, 1.0, low_inclusive=True)
        _check_real(self.beta2, "beta2", 0.0, 1.0, low_inclusive=True)
        _check_real(self.epsilon, "epsilon", 0.0)
        _check_real(self.weight_decay, "weight_decay", 0.0, low_inclusive=True)
        _check_schedule(self.schedule)

    kind = "adam"


@dataclass(frozen=True)
class IRPropMinus:
    """iRPROP- (Igel and Huesken, 2000): per-weight step sizes driven by gradient signs.

    Each parameter moves by its own step against the sign of its gradient.
    The step grows by ``increase`` while the sign holds and shrinks by
    ``decrease`` when it flips, within ``[min_step, max_step]``; after a flip
    that gradient is forgotten. Strong on small full-batch problems; meant
    for full batches (``batch_size=None``).

    Parameters
    ----------
    initial_step : float, default=0.1
        Every parameter's first step; within ``[min_step, max_step]``.
    increase : float, default=1.2
    decrease : float, default=0.5
    min_step : float, default=0.0
    max_step : float, default=50.0
    weight_decay : float, default=0.0
    """

    initial_step: float = 0.1
    increase: float = 1.2
    decrease: float = 0.5
    min_step: float = 0.0
    max_step: float = 50.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check_real(self.initial_step, "initial_step", 0.0)
        _check_real(self.increase, "increase", 1.0, low_inclusive=True)
        _check_real(self.decrease, "decrease", 0.0, 1.0, high_inclusive=True)
        _check_real(self.min_step, "min_step", 0.0, low_inclusive=True)
        _check_real(self.max_step, "max_step", 0.0)
        if self.min_step > self.max_step:
            raise ValueError(f"min_step ({self.min_step}) exceeds max_step ({self.max_step})")
        if not self.min_step <= self.initial_step <= self.max_step:
            raise ValueError(
                f"initial_step ({self.initial_step}) must lie within [min_step, max_step] = "
                f"[{self.min_step}, {self.max_step}]"
            )
        _check_real(self.weight_decay, "weight_decay", 0.0, low_inclusive=True)

    kind = "irprop-"
    learning_rate = 1.0  # unused: the step sizes are the parameters' own
    schedule = Constant()


@dataclass(frozen=True)
class LBFGS:
    """Limited-memory BFGS over the full batch, by ``scipy.optimize.minimize``.

    Each epoch of :meth:`~cyprop.Network.fit` is one L-BFGS iteration; the
    loss and gradient come from the core. Training may end before ``epochs``
    when the minimiser converges.

    Parameters
    ----------
    max_corrections : int, default=10
        Correction pairs kept to approximate the Hessian.
    tolerance : float, default=1e-10
        Stop when the relative reduction of the objective falls below this.
    weight_decay : float, default=0.0
    """

    max_corrections: int = 10
    tolerance: float = 1e-10
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        check_integer(self.max_corrections, "max_corrections")
        _check_real(self.tolerance, "tolerance", 0.0, low_inclusive=True)
        _check_real(self.weight_decay, "weight_decay", 0.0, low_inclusive=True)

    kind = "lbfgs"
    learning_rate = 1.0
    schedule = Constant()


Optimizer = SGD | Adam | IRPropMinus | LBFGS

_NAMED: dict[str, Callable[..., Optimizer]] = {
    "sgd": SGD,
    "momentum": functools.partial(SGD, momentum=0.9),
    "nesterov": functools.partial(SGD, momentum=0.9, nesterov=True),
    "adam": Adam,
    "irprop-": IRPropMinus,
    "lbfgs": LBFGS,
}

# Optimizers made from a name, by (name, learning_rate): they are frozen, so
# one can serve every fit that names it. Building one runs a dozen small
# Python functions: right after a garbage collection (cold caches) that took
# 18 us, as long as 350 of the lesson's training steps, and a look-up 6 us
# (benchmarks/README.md).
_MADE: dict[tuple[str, float | None], Optimizer] = {}
_MADE_MAX = 64


def _made(name: str, learning_rate: float | None = None) -> Optimizer:
    """The optimizer ``name`` with ``learning_rate`` (None: its default), made once."""
    key = (name, learning_rate)
    optimizer = _MADE.get(key)
    if optimizer is None:
        if len(_MADE) >= _MADE_MAX:
            _MADE.clear()
        optimizer = (_NAMED[name]() if learning_rate is None
                     else _NAMED[name](learning_rate=learning_rate))
        _MADE[key] = optimizer
    return optimizer


def make_optimizer(optimizer: Any, learning_rate: float | None) -> Optimizer:
    """The optimizer named by ``optimizer`` (or ``optimizer`` itself), with
    ``learning_rate`` applied when given.

    Names: "sgd", "momentum" (0.9), "nesterov" (0.9), "adam", "irprop-",
    "lbfgs". A learning rate goes either in the name's place (``fit``'s
    ``learning_rate``) or inside an optimizer object, not both. Optimizers
    are frozen, so a name and a float (or no) learning rate give the same
    object each time.
    """
    if isinstance(optimizer, str):
        if optimizer not in _NAMED:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(_NAMED)}")
        if learning_rate is not None and optimizer in ("irprop-", "lbfgs"):
            raise ValueError(f"learning_rate does not apply to the {optimizer} optimizer")
        if learning_rate is None:
            return _made(optimizer)
        if type(learning_rate) is float:
            return _made(optimizer, learning_rate)
        # Not kept: 1, 1.0 and True would share a key, and True must be refused.
        return _NAMED[optimizer](learning_rate=learning_rate)
    if isinstance(optimizer, (SGD, Adam, IRPropMinus, LBFGS)):
        if learning_rate is not None:
            raise ValueError(
                "learning_rate was given both to fit and inside the optimizer object; "
                "set it on the optimizer only"
            )
        return optimizer
    raise TypeError(
        "optimizer must be a name such as 'sgd' or 'adam', or an optimizer from "
        f"cyprop.optimizers, got {optimizer!r}"
    )
