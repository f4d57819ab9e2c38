"""Checks of user input, with error messages in the user's words.

Every array that reaches the core passes through here first: the core trusts
its inputs and never checks them again.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# BLAS takes its dimensions as C ints.
MAX_DIMENSION = 2**31 - 1
# Weights and biases a network may have: 8 GiB in float32, 16 GiB in float64,
# far beyond what trains on a CPU, and a clear error before numpy is asked
# for terabytes.
MAX_PARAMETERS = 2**31 - 1

DTYPES = ("float32", "float64")


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def check_dtype(dtype: Any) -> np.dtype:
    """Return the numpy dtype named by ``dtype``, which must be float32 or float64."""
    try:
        resolved: np.dtype[Any] = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if resolved.name not in DTYPES:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    # The core computes in the machine's own byte order: '>f8' means float64.
    return np.dtype(resolved.name)


def check_integer(value: Any, name: str, minimum: int = 1,
                  maximum: int | None = MAX_DIMENSION) -> int:
    """Return ``value`` as an int, raising unless it is an integer from
    ``minimum`` to ``maximum`` (None: no upper bound)."""
    # type() first: for a plain int it spares the slower test against the ABC.
    if type(value) is not int and (isinstance(value, bool)
                                   or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {number}")
    return number


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool, raising unless it is a bool or a numpy bool.

    A string such as "no" is truthy, so it is refused rather than read as True.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _real_number(value: Any, name: str) -> float:
    """``value`` as a float, raising TypeError unless it is a real number (not a bool)."""
    # type() first: for a plain float it spares the slower test against the ABC.
    if type(value) is not float and (isinstance(value, bool)
                                     or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def check_positive_float(value: Any, name: str) -> float:
    """Return ``value`` as a float, raising unless it is finite and > 0."""
    number = _real_number(value, name)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number greater than 0, got {number}")
    return number


def check_non_negative_float(value: Any, name: str) -> float:
    """Return ``value`` as a float, raising unless it is finite and >= 0."""
    number = _real_number(value, name)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number of at least 0, got {number}")
    return number


def check_layer_sizes(layer_sizes: Any) -> tuple[int, ...]:
    """Return ``layer_sizes`` as a tuple of ints, input size first, at least two of them,
    of at most :data:`MAX_PARAMETERS` weights and biases in all."""
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(
        layer_sizes, (Sequence, np.ndarray)
    ):
        raise TypeError(
            "layer_sizes must be a sequence of integers such as [3, 4, 1], "
            f"got {layer_sizes!r}"
        )
    if len(layer_sizes) < 2:
        raise ValueError(
            "layer_sizes needs at least an input and an output size, such as [3, 1], "
            f"got {list(layer_sizes)!r}"
        )
    sizes = tuple(
        check_integer(size, f"layer_sizes[{index}]") for index, size in enumerate(layer_sizes)
    )
    n_parameters = count_parameters(sizes)
    if n_parameters > MAX_PARAMETERS:
        raise ValueError(
            f"layer_sizes {list(sizes)} need {n_parameters:,} weights and biases; a network "
            f"has at most {MAX_PARAMETERS:,}"
        )
    return sizes


def count_parameters(sizes: Sequence[int]) -> int:
    """Weights and biases of a network with layer sizes ``sizes``, input first."""
    return sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` when it is one of ``choices``, else raise naming them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")
    return value


def check_activations(
    activation: Any, output_activation: Any, n_layers: int, hidden_choices: Sequence[str],
    output_choices: Sequence[str],
) -> tuple[str, ...]:
    """Return one activation name per layer: the hidden layers', then the output's.

    ``activation`` is a name used by every hidden layer or a sequence of one
    name per hidden layer; ``output_activation`` defaults to ``activation``
    when that is a single name.
    """
    n_hidden = n_layers - 1
    if isinstance(activation, str):
        if output_activation is None:
            output_activation = activation
        hidden = [_check_hidden(activation, "activation", hidden_choices, output_choices)
                  ] * n_hidden if n_hidden else []
    elif isinstance(activation, Sequence):
        if len(activation) != n_hidden:
            raise ValueError(
                f"activation has {len(activation)} entries but the network has "
                f"{counted(n_hidden, 'hidden layer')}; give one name per hidden layer or a "
                "single name"
            )
        hidden = [
            _check_hidden(name, f"activation[{index}]", hidden_choices, output_choices)
            for index, name in enumerate(activation)
        ]
        if output_activation is None:
            raise ValueError("output_activation is required when activation is a list")
    else:
        raise TypeError(
            f"activation must be a name such as 'sigmoid' or a list of names, got {activation!r}"
        )
    output = check_choice(output_activation, "output_activation", output_choices)
    return (*hidden, output)


def _check_hidden(name: Any, label: str, hidden_choices: Sequence[str],
                  output_choices: Sequence[str]) -> str:
    """A hidden layer's activation, with a pointer for output-only ones."""
    if isinstance(name, str) and name in output_choices and name not in hidden_choices:
        raise ValueError(
            f"{label} {name!r} is for the output layer only; give it as output_activation"
        )
    return check_choice(name, label, hidden_choices)


def _as_numeric_array(values: Any, name: str) -> np.ndarray:
    """``values`` as a numpy array of real numbers (bool and int included)."""
    if type(values) is np.ndarray:
        # np.asarray would return it as it is, at the cost of a call.
        array = values
    else:
        try:
            array = np.asarray(values)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{name} must be an array of numbers: {error}") from None
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(
                f"{name} must hold real numbers, got an object array that does not convert "
                f"to float{_first_non_number(array)}"
            ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float), "
            f"got an array of dtype {array.dtype}"
        )
    return array


def _first_non_number(array: np.ndarray) -> str:
    """Where an object array first holds what float() refuses, for an error message."""
    for index, value in np.ndenumerate(array):
        try:
            float(value)
        except (TypeError, ValueError, OverflowError):
            where = ", ".join(str(i) for i in index)
            missing = (" (a missing value: fill or drop those first)"
                       if value is None or repr(value) == "<NA>" else "")
            return f": [{where}] holds {value!r}{missing}"
    return ""


def check_features(X: Any, n_features: int, dtype: np.dtype, name: str = "X",
                   all_finite: Callable[[np.ndarray], bool] | None = None,
                   finite: bool = True) -> np.ndarray:
    """Return ``X`` as a C-contiguous (n_samples, n_features) array of ``dtype``.

    ``all_finite``, when given, tells whether a flat array holds only finite
    values, faster than numpy (the core's check); numpy then runs only to
    find the first bad entry for the message. With ``finite`` false the
    values are not checked here: the caller checks them (:func:`check_finite`).
    """
    X = _as_numeric_array(X, name)
    if X.ndim != 2:
        hint = " (for one sample, use X.reshape(1, -1))" if X.ndim == 1 else ""
        raise ValueError(
            f"{name} must be 2-D with shape (n_samples, n_features), "
            f"got an array of shape {X.shape}{hint}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no samples (shape {X.shape})")
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {counted(X.shape[1], 'column')} but the network expects "
            f"{counted(n_features, 'feature')}"
        )
    if X.shape[0] > MAX_DIMENSION:
        raise ValueError(f"{name} has more than {MAX_DIMENSION} samples")
    converted = _converted(X, dtype)
    if finite:
        check_finite(converted, name, all_finite)
    return converted


def check_targets(
    y: Any, n_samples: int, n_outputs: int, dtype: np.dtype, name: str = "y",
    all_finite: Callable[[np.ndarray], bool] | None = None,
) -> np.ndarray:
    """Return ``y`` as a C-contiguous (n_samples, n_outputs) array of ``dtype``.

    A 1-D ``y`` is accepted when the network has a single output.
    ``all_finite`` is as in :func:`check_features`.
    """
    y = _as_numeric_array(y, name)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2:
        hint = _one_hot_hint(y, n_outputs) if y.ndim == 1 else ""
        raise ValueError(
            f"{name} must be 2-D with shape (n_samples, {n_outputs}), "
            f"got an array of shape {y.shape}{hint}"
        )
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {counted(n_samples, 'sample')} but {name} has {y.shape[0]}")
    if y.shape[1] != n_outputs:
        hint = _one_hot_hint(y, n_outputs) if y.shape[1] == 1 else ""
        raise ValueError(
            f"{name} has {counted(y.shape[1], 'column')} but the network has "
            f"{counted(n_outputs, 'output')}{hint}"
        )
    converted = _converted(y, dtype)
    check_finite(converted, name, all_finite)
    return converted


def _one_hot_hint(y: np.ndarray, n_outputs: int) -> str:
    """How to one-hot encode ``y``, one value a sample, for a network of
    ``n_outputs`` outputs: when its values could be class labels 0, 1, ..."""
    values = y.ravel()
    if n_outputs < 2 or values.dtype.kind == "b" or values.size == 0:
        return ""
    whole = values.dtype.kind in "iu" or bool(np.all(np.isfinite(values))
                                               and np.all(values == np.round(values)))
    if not whole or values.min() < 0 or values.max() >= n_outputs:
        return ""
    return (f"; for class labels 0 to {n_outputs - 1}, one-hot encode them: "
            f"np.eye({n_outputs})[labels.ravel().astype(int)]")


def _converted(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous, aligned copy of ``array`` in ``dtype`` (or ``array`` itself if
    it is one already).

    The core reads the buffer as an array of ``dtype``: a view at an odd byte
    offset (a field of a packed record, a slice of a byte buffer) is C-contiguous
    yet misaligned, which C does not allow, so it is copied too. Values beyond
    the range of ``dtype`` become infinite, which the finiteness check that
    follows reports; numpy's overflow warning would only repeat it.
    """
    if (type(array) is np.ndarray and array.dtype == dtype and array.flags.c_contiguous
            and array.flags.aligned):
        # Already what the core reads; the general path below costs more than
        # the forward pass of a small network on one sample.
        return array
    with np.errstate(over="ignore"):
        converted: np.ndarray = np.require(array, dtype=dtype, requirements=["C", "A", "E"])
    return converted


# Elements checked per pass: isfinite's mask is then 64 KiB, not the size of
# the data (a 60,000 x 784 X would otherwise need a 45 MB temporary;
# benchmarks/bench_memory.py).
_FINITE_CHECK_CHUNK = 1 << 16


def check_finite(array: np.ndarray, name: str,
                 all_finite: Callable[[np.ndarray], bool] | None = None) -> None:
    """Raise ValueError when the C-contiguous ``array`` holds NaN or infinity
    (including float64 values too large for float32, which became infinite in
    the conversion), naming the first such entry."""
    flat = array.reshape(-1)  # a view: the array is C-contiguous
    if all_finite is not None and all_finite(flat):
        return
    for start in range(0, flat.size, _FINITE_CHECK_CHUNK):
        finite = np.isfinite(flat[start:start + _FINITE_CHECK_CHUNK])
        if not finite.all():
            bad = np.unravel_index(start + int(np.argmin(finite)), array.shape)
            raise ValueError(
                f"{name} contains NaN or infinity (first at index "
                f"{tuple(int(i) for i in bad)}); values must be finite and within the "
                f"range of {array.dtype}"
            )


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: np.dtype,
                        name: str = "sample_weight") -> np.ndarray:
    """Return ``sample_weight`` as a C-contiguous (n_samples,) array of ``dtype``.

    Weights must be finite and non-negative, and not all zero.
    """
    weights = _as_numeric_array(sample_weight, name)
    if weights.ndim != 1:
        raise ValueError(f"{name} must be 1-D with shape (n_samples,), got shape {weights.shape}")
    if weights.shape[0] != n_samples:
        raise ValueError(f"X has {counted(n_samples, 'sample')} but {name} has {weights.shape[0]}")
    weights = _converted(weights, dtype)
    check_finite(weights, name)
    if (weights < 0).any():
        raise ValueError(f"{name} must not be negative")
    if not weights.any():
        raise ValueError(f"{name} is all zeros: no sample would count")
    return weights


def check_split_weights(weights: np.ndarray, held: np.ndarray, kept: np.ndarray,
                        advice: str) -> None:
    """Refuse a validation split that leaves all the weight on one side."""
    for part, rows in (("held out for validation", held), ("left to train on", kept)):
        if not weights[rows].any():
            raise ValueError(f"every sample {part} has sample_weight 0; {advice}")


# Optimizer settings whose range excludes 0, those that must stay below 1, and
# the rest that must merely stay finite.
_POSITIVE_SETTINGS = ("learning_rate", "epsilon", "initial_step", "max_step", "decrease")
_BELOW_ONE_SETTINGS = ("momentum", "beta1", "beta2")
_FINITE_SETTINGS = ("increase", "min_step", "weight_decay")


def check_optimizer_for_dtype(optimizer: Any, dtype: np.dtype) -> None:
    """Refuse optimizer settings that ``dtype`` rounds onto the edge of their range.

    The core steps in the network's dtype: in float32, ``Adam(beta1=0.99999999)``
    becomes 1 (the weights would never move), ``learning_rate=1e-50`` becomes 0
    and ``IRPropMinus(initial_step=1e300)`` infinity. L-BFGS iterates in
    float64 (scipy) and is not checked.

    Parameters
    ----------
    optimizer : SGD, Adam, IRPropMinus or LBFGS
        An optimizer whose settings passed its own checks.
    dtype : numpy.dtype
        The network's floating type.

    Raises
    ------
    ValueError
        Naming the setting, its value and what it becomes.
    """
    if optimizer.kind == "lbfgs" or dtype == np.float64:
        # The optimizers check their settings as float64 numbers already.
        return
    for name in (*_POSITIVE_SETTINGS, *_BELOW_ONE_SETTINGS, *_FINITE_SETTINGS):
        if not hasattr(optimizer, name):
            continue
        value = getattr(optimizer, name)
        with np.errstate(over="ignore"):
            rounded = float(np.asarray(value, dtype=dtype))
        if not math.isfinite(rounded):
            edge = "infinity"
        elif name in _POSITIVE_SETTINGS and rounded <= 0:
            edge = "0"
        elif name in _BELOW_ONE_SETTINGS and rounded >= 1:
            edge = "1"
        else:
            continue
        raise ValueError(
            f"{name}={value} becomes {rounded} in {dtype.name}, the network's dtype; "
            f"choose a value {dtype.name} can tell apart from {edge}"
        )
