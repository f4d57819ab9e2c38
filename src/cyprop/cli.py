"""The command line: ``cyprop`` or ``python -m cyprop``.

Subcommands:

- ``demo``: the lesson, a 3-4-1 sigmoid network learning XOR.
- ``train``: train a network on a CSV or ``.npz`` file and save it.
- ``predict``: a saved network's predictions for a CSV or ``.npz`` file, as CSV.
- ``info``: what a model file holds.
- ``bench``: the lesson timed with plain numpy and with cyprop.

``train`` writes the model file (:meth:`cyprop.Network.save`) and, beside it,
a small JSON *sidecar* (``MODEL.json``: the task, the class labels, the names
of the feature and target columns, and the SHA-256 of the model file it
belongs to). ``predict`` uses the sidecar to print class labels and to pick
the feature columns of a CSV by name; without one it treats a softmax output
or a single sigmoid output with the binary cross-entropy loss as a classifier
of the classes 0, 1, ... and prints any other network's raw outputs.

Features are standardised for training (``--no-scale`` turns this off), and
the standardisation is then folded into the first layer's weights, so the
saved network takes the raw features. For regression with an identity
output, the targets are standardised too and the scaling is folded into the
last layer; the losses shown during training are then those of the
standardised targets, while the summary reports both loss and RMSE in the
targets' own units. Should either fold change the outputs (a float32 network
cannot resolve a feature or target far from zero beside its spread, such as a
timestamp), ``train`` says so on stderr.

Exit status: 0 on success, 1 for unreadable or invalid files and data (a
one-line message on stderr), 2 for invalid arguments (as argparse does), 130
when interrupted with Ctrl-C, 141 when the reader of the output went away
(``cyprop predict ... | head``), as for a program that SIGPIPE ends.
"""

from __future__ import annotations

import argparse
import csv
import decimal
import hashlib
import io
import json
import math
import os
import platform
import statistics
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TextIO

import numpy as np

from cyprop._persistence import read_model
from cyprop._version import __version__
from cyprop.network import HIDDEN_ACTIVATIONS, INITS, LOSSES, REDUCTIONS, Network

__all__ = ["CommandError", "build_parser", "main"]

_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "irprop-", "lbfgs")
# Optimizers that take the full batch and no learning rate.
_FULL_BATCH_OPTIMIZERS = ("irprop-", "lbfgs")
_OUTPUT_ACTIVATIONS = (*HIDDEN_ACTIVATIONS, "softmax")
_SIDECAR_FORMAT = 1
# Progress lines (without a bar) are printed about this many times per run.
_PROGRESS_LINES = 20
# Folding the standardisation into the weights changes float32 outputs by about
# 1e-6 of their spread; a thousand times that means the features lost digits.
_FOLDING_TOLERANCE = 1e-3
# Classification warns when the classes outnumber both this and half the
# samples: such a target is more likely a quantity than labels.
_MANY_CLASSES = 20
# The shell's status for a program that SIGPIPE ends (128 + 13).
_EXIT_PIPE_CLOSED = 141


class CommandError(Exception):
    """A problem with the files or data given to a command: reported in one line, exit status 1."""


# --- small helpers -------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _hidden_sizes(text: str) -> tuple[int, ...]:
    """``"64,32"`` as (64, 32); ``"none"`` or ``""`` for no hidden layer."""
    if text.strip().lower() in ("", "none"):
        return ()
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected layer sizes such as 64,32 (or none), got {text!r}") from None
        if size < 1:
            raise argparse.ArgumentTypeError(f"layer sizes must be at least 1, got {text!r}")
        sizes.append(size)
    return tuple(sizes)


def _batch_size(text: str) -> int | None:
    """An integer, or ``full`` for one batch of every sample (None)."""
    if text.strip().lower() == "full":
        return None
    return _positive_int(text)


def _delimiter(text: str) -> str:
    """One character; ``\\t`` or ``tab`` for a tab."""
    if text in ("\\t", "tab"):
        return "\t"
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character (or tab), got {text!r}")
    return text


def _columns(text: str) -> list[str]:
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected column names or indices such as y or 3,4, "
                                         f"got {text!r}")
    return parts


def _error_message(error: BaseException) -> str:
    """One line for an error: file errors as ``path: reason``."""
    if isinstance(error, OSError) and error.strerror:
        if error.filename is not None:
            return f"{error.filename}: {error.strerror}"
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _check_output_path(path: str, what: str) -> None:
    """Refuse, before any work is done, a path that could not be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CommandError(f"cannot write the {what} {path}: {directory} is a file, not a folder")
    if not os.path.isdir(directory):
        raise CommandError(f"cannot write the {what} {path}: the folder {directory} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"cannot write the {what} {path}: it is a folder")


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _format_values(values: np.ndarray) -> list[str]:
    """Each number in its shortest form that reads back exactly in its own dtype."""
    return [str(value) for value in values]


# --- reading data --------------------------------------------------------------


@dataclass
class _Table:
    """The text of a CSV file: its header, its rows and their line numbers."""

    path: str
    header: list[str]
    rows: list[list[str]]
    line_numbers: list[int]
    delimiter: str

    def delimiter_hint(self) -> str:
        """For a header read as one column, the delimiter that would split it."""
        if len(self.header) != 1:
            return ""
        hint = f"; its header reads as the single column {self.header[0]!r}"
        for mark, option in ((",", "','"), (";", "';'"), ("\t", "tab"), ("|", "'|'")):
            if mark != self.delimiter and sum(
                    1 for name in self.header[0].split(mark) if name.strip()) > 1:
                return hint + f": for columns separated by {mark!r}, give --delimiter {option}"
        return hint

    def column_indices(self, spec: Sequence[str], option: str) -> list[int]:
        """Columns named in ``spec`` by name or by index (from 0; negative from the end)."""
        indices = []
        for token in spec:
            if token in self.header:
                index = self.header.index(token)
            else:
                try:
                    index = int(token)
                except ValueError:
                    raise CommandError(
                        f"{self.path} has no column {token!r} (for {option}); its columns are "
                        f"{', '.join(self.header)}{self.delimiter_hint()}") from None
                if not -len(self.header) <= index < len(self.header):
                    raise CommandError(
                        f"{option} {token}: {self.path} has only {len(self.header)} columns "
                        f"(indices 0 to {len(self.header) - 1})")
                index %= len(self.header)
            if index in indices:
                raise CommandError(f"{option} names column {self.header[index]!r} twice")
            indices.append(index)
        return indices

    def text(self, index: int) -> list[str]:
        """One column's fields, refusing empty ones."""
        fields = [row[index].strip() for row in self.rows]
        for field, line in zip(fields, self.line_numbers):
            if not field:
                raise CommandError(f"{self.path}, line {line}, column {self.header[index]!r}: "
                                   "missing value")
        return fields

    def numbers(self, indices: Sequence[int]) -> np.ndarray:
        """The given columns as a float64 array, with a pointed message for a bad field."""
        try:
            values = np.array([[row[i] for i in indices] for row in self.rows], dtype=np.float64)
        except ValueError:
            values = None
        if values is not None and np.isfinite(values).all():
            return values.reshape(len(self.rows), len(indices))
        for row, line in zip(self.rows, self.line_numbers):
            for index in indices:
                field = row[index].strip()
                where = f"{self.path}, line {line}, column {self.header[index]!r}"
                if not field:
                    raise CommandError(f"{where}: missing value")
                try:
                    value = float(field)
                except ValueError:
                    raise CommandError(f"{where}: {field!r} is not a number") from None
                if not math.isfinite(value):
                    raise CommandError(f"{where}: {field!r} is not a finite number")
        raise AssertionError("unreachable: a bad field was not found")  # pragma: no cover


def _read_csv(path: str, delimiter: str | None) -> _Table:
    if delimiter is None:
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream, delimiter=delimiter, strict=True)
            header: list[str] | None = None
            rows, lines = [], []
            for row in reader:
                if not any(field.strip() for field in row):
                    continue  # blank line
                if header is None:
                    header = [field.strip() for field in row]
                    continue
                if len(row) != len(header):
                    raise CommandError(
                        f"{path}, line {reader.line_num}: {len(row)} fields, but the header "
                        f"has {len(header)}")
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not a text CSV file (it is not valid UTF-8)") from None
    except csv.Error as error:
        raise CommandError(f"{path} is not a readable CSV file: {error}") from None
    if header is None:
        raise CommandError(f"{path} is empty; a CSV file needs a header row and data rows")
    if not rows:
        raise CommandError(f"{path} has a header but no data rows")
    if len(set(header)) != len(header):
        repeated = sorted({name for name in header if header.count(name) > 1})
        raise CommandError(f"{path} has repeated column names: {', '.join(repeated)}")
    return _Table(path, header, rows, lines, delimiter)


def _read_npz(path: str, keys: Sequence[str], options: Sequence[str]) -> list[np.ndarray]:
    """The arrays ``keys`` of an ``.npz`` file (never unpickling anything)."""
    with open(path, "rb") as stream:
        try:
            archive = np.load(stream, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise CommandError(f"{path} is not a readable .npz file ({error})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise CommandError(
                f"{path} holds a single array, not an .npz archive of named arrays")
        with archive:
            arrays = []
            for key, option in zip(keys, options):
                if key not in archive.files:
                    raise CommandError(
                        f"{path} has no array {key!r}; it holds "
                        f"{', '.join(archive.files) or 'none'} (choose with {option})")
                try:
                    arrays.append(archive[key])
                except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
                    raise CommandError(f"{path}: cannot read array {key!r} ({error})") from None
    return arrays


def _npz_features(X: np.ndarray, path: str, key: str) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise CommandError(f"{path}: array {key!r} must hold numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise CommandError(f"{path}: array {key!r} must be 2-D (n_samples, n_features), "
                           f"got shape {X.shape}")
    if X.shape[0] == 0:
        raise CommandError(f"{path}: array {key!r} has no samples")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(X))[0])
        raise CommandError(f"{path}: array {key!r} holds NaN or infinity (first at {bad})")
    return X


def _is_npz(path: str) -> bool:
    return path.lower().endswith(".npz")


@dataclass
class _TrainingData:
    X: np.ndarray                      # (n_samples, n_features), float64
    y: np.ndarray                      # labels (n_samples,) or values (n_samples, n_targets)
    feature_names: list[str] | None
    target_names: list[str] | None


def _training_data(arguments: argparse.Namespace) -> _TrainingData:
    path = arguments.data
    classification = arguments.task == "classification"
    if _is_npz(path):
        if arguments.target is not None or arguments.features is not None:
            raise CommandError("--target and --features are for CSV files; an .npz file "
                               "names its arrays with --x-key and --y-key")
        X, y = _read_npz(path, [arguments.x_key, arguments.y_key], ["--x-key", "--y-key"])
        X = _npz_features(X, path, arguments.x_key)
        if y.shape[:1] != X.shape[:1]:
            raise CommandError(f"{path}: {arguments.x_key!r} has {X.shape[0]} samples but "
                               f"{arguments.y_key!r} has {y.shape[0] if y.ndim else 0}")
        if classification:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1 or y.dtype.kind not in "biufU":
                raise CommandError(
                    f"{path}: for classification, {arguments.y_key!r} must hold one label per "
                    f"sample (a 1-D array of numbers or strings), got shape {y.shape} and "
                    f"dtype {y.dtype}")
            if y.dtype.kind == "f" and not np.isfinite(y).all():
                raise CommandError(f"{path}: array {arguments.y_key!r} holds NaN or infinity")
        else:
            y = _npz_features(y.reshape(len(y), -1) if y.ndim == 1 else y, path,
                              arguments.y_key)
        return _TrainingData(X, y, None, None)

    table = _read_csv(path, arguments.delimiter)
    targets = table.column_indices(arguments.target or ["-1"], "--target")
    if arguments.features is not None:
        features = table.column_indices(arguments.features, "--features")
        overlap = [table.header[i] for i in features if i in targets]
        if overlap:
            raise CommandError(f"column {overlap[0]!r} is both a target and a feature")
    else:
        features = [i for i in range(len(table.header)) if i not in targets]
    if not features:
        raise CommandError(f"{path} has no feature columns left besides the target"
                           + table.delimiter_hint())
    if classification and len(targets) != 1:
        raise CommandError(
            f"classification takes one target column of class labels, got {len(targets)} "
            "(for several numeric targets, use --task regression)")
    X = table.numbers(features)
    if classification:
        y = np.array(table.text(targets[0]))
    else:
        try:
            y = table.numbers(targets)
        except CommandError as error:
            raise CommandError(f"{error} (for class labels, use --task classification)") from None
    return _TrainingData(X, y, [table.header[i] for i in features],
                         [table.header[i] for i in targets])


def _class_labels(y: np.ndarray, source: str) -> tuple[list[Any], np.ndarray]:
    """The sorted distinct labels (as JSON values) and each sample's index among them.

    Labels read from a CSV are strings; when they all read as numbers they
    are ordered by their exact decimal value, so that "2" comes before "10".
    Two spellings of one number ("1" and "1.0") are refused rather than
    taken as two classes, and so is "nan" among numbers.
    """
    if y.dtype.kind == "U":
        distinct = sorted(set(y.tolist()))
        try:
            # Exact, unlike float: distinct integer labels beyond 2**53 stay distinct.
            values = {label: decimal.Decimal(label) for label in distinct}
        except decimal.InvalidOperation:
            values = {}
        for label, value in values.items():
            if value.is_nan():
                raise CommandError(f"{source}: the class label {label!r} among numbers reads "
                                   "as a missing value, not a class")
            if not value.is_finite() or value != value.to_integral_value():
                raise CommandError(_fractional_label_message(source, label))
        if values:
            distinct.sort(key=values.__getitem__)
            for first, second in zip(distinct, distinct[1:]):
                if values[first] == values[second]:
                    raise CommandError(
                        f"{source}: the class labels {first!r} and {second!r} are the same "
                        "number written two ways; write each class the same way throughout")
    else:
        if y.dtype.kind == "f":
            fractional = y[y != np.round(y)]
            if fractional.size:
                raise CommandError(_fractional_label_message(source, fractional[0].item()))
        distinct = np.unique(y).tolist()
    index = {label: code for code, label in enumerate(distinct)}
    codes = np.array([index[label] for label in y.tolist()], dtype=np.intp)
    return distinct, codes


def _reads_as_number(label: Any) -> bool:
    if not isinstance(label, str):
        return True
    try:
        decimal.Decimal(label)
    except decimal.InvalidOperation:
        return False
    return True


def _fractional_label_message(source: str, label: Any) -> str:
    # A column of such numbers is a measured quantity: taken as classes it
    # would give nearly one class per sample.
    return (f"{source}: the class label {label!r} is not a finite whole number; a target "
            "of such numbers is a quantity, so train with --task regression (or write the "
            "classes as names or whole numbers)")


# --- the sidecar ---------------------------------------------------------------


def _sidecar_path(model_path: str) -> str:
    return model_path + ".json"


def _write_sidecar(model_path: str, content: dict[str, Any]) -> str:
    path = _sidecar_path(model_path)
    document = {"cyprop_sidecar": _SIDECAR_FORMAT, "model_sha256": _file_sha256(model_path),
                **content}
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=2, ensure_ascii=False)
        stream.write("\n")
    os.replace(temporary, path)
    return path


def _read_sidecar(model_path: str, net: Network) -> dict[str, Any] | None:
    """The sidecar of ``model_path``, checked against the model; None when there is none."""
    path = _sidecar_path(model_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as stream:
            sidecar = json.load(stream)
    except ValueError as error:  # not UTF-8, not JSON, or an integer of too many digits
        raise CommandError(f"{path} is damaged: it is not valid JSON ({error})") from None
    except RecursionError:
        raise CommandError(f"{path} is damaged: it is not valid JSON (nested too deeply)") from None
    if not isinstance(sidecar, dict) or sidecar.get("cyprop_sidecar") != _SIDECAR_FORMAT:
        raise CommandError(f"{path} is not a cyprop sidecar file (version {_SIDECAR_FORMAT})")
    if sidecar.get("model_sha256") != _file_sha256(model_path):
        raise CommandError(
            f"{path} belongs to another model file than {model_path}; delete it or train again")
    n_inputs, n_outputs = net.layer_sizes[0], net.layer_sizes[-1]
    task, classes = sidecar.get("task"), sidecar.get("classes")
    features, targets = sidecar.get("feature_names"), sidecar.get("target_names")
    consistent = task in ("classification", "regression")
    if task == "classification":
        # Two classes are one sigmoid output or two softmax outputs; more are one output each.
        consistent = isinstance(classes, list) and len(classes) >= 2 and n_outputs == (
            n_outputs if len(classes) == 2 and n_outputs <= 2 else len(classes))
    if features is not None:
        consistent = consistent and isinstance(features, list) and len(features) == n_inputs
        consistent = consistent and all(isinstance(name, str) for name in features)
    if targets is not None:
        consistent = consistent and isinstance(targets, list)
        consistent = consistent and all(isinstance(name, str) for name in targets)
    if not consistent:
        raise CommandError(f"{path} does not match {model_path}: its task, classes or column "
                           "names do not fit the model's layer sizes, or are not text")
    return sidecar


def _model_task(net: Network, sidecar: dict[str, Any] | None) -> tuple[str, list[Any] | None]:
    """The task and class labels of a model, from its sidecar or its output layer."""
    if sidecar is not None:
        return sidecar["task"], sidecar.get("classes")
    n_outputs = net.layer_sizes[-1]
    if net.activations[-1] == "softmax":
        return "classification", list(range(n_outputs))
    if net.loss_name == "binary_cross_entropy" and n_outputs == 1:
        return "classification", [0, 1]
    return "regression", None


def _load_model(path: str) -> Network:
    if os.path.isdir(path):
        raise CommandError(f"{path} is a folder, not a model file")
    return Network.load(path)


# --- progress ------------------------------------------------------------------


class _Progress:
    """Per-epoch progress on stderr: a tqdm bar, or lines (the first epoch, then every
    ``epochs / 20``).

    Called by :meth:`Network.fit` after every epoch as ``progress(net, logs)``.
    ``metric(net)`` gives the name and value of a validation metric to show.
    """

    def __init__(self, mode: str, epochs: int,
                 metric: Callable[[Network], tuple[str, float]] | None,
                 stream: TextIO) -> None:
        self.epochs = epochs
        self.metric = metric
        self.stream = stream
        self.bar = None
        self.every = max(1, math.ceil(epochs / _PROGRESS_LINES))
        self.mode = mode
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, desc="training", unit="epoch", file=stream,
                            dynamic_ncols=True, leave=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                       "[{elapsed}<{remaining}{postfix}]")

    def __call__(self, net: Network, logs: dict[str, Any]) -> bool:
        if self.mode == "none":
            return False
        epoch = logs["epoch"]
        shown = self.bar is not None or epoch % self.every == 0 or epoch in (1, self.epochs)
        if not shown:
            return False
        values = {"loss": logs["loss"]}
        if logs["val_loss"] is not None:
            values["val_loss"] = logs["val_loss"]
        if self.metric is not None:
            name, value = self.metric(net)
            values[name] = value
        if self.bar is not None:
            self.bar.set_postfix_str(
                "  ".join(f"{name} {value:.4g}" for name, value in values.items()),
                refresh=False)
            self.bar.update(1)
        else:
            width = len(str(self.epochs))
            text = "  ".join(f"{name} {value:.6g}" for name, value in values.items())
            print(f"epoch {epoch:>{width}}/{self.epochs}  {text}", file=self.stream, flush=True)
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_mode(requested: str, quiet: bool) -> str:
    if quiet or requested == "none":
        return "none"
    try:
        import tqdm  # noqa: F401
    except ImportError:
        if requested == "bar":
            raise CommandError('--progress bar needs tqdm; install it with: '
                               'pip install "cyprop[cli]"') from None
        return "lines"
    if requested == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return requested


# --- train ---------------------------------------------------------------------


@dataclass
class _Standardisation:
    """Feature (and, for identity-output regression, target) means and scales."""

    mean: np.ndarray
    scale: np.ndarray
    target_mean: np.ndarray | None = None
    target_scale: np.ndarray | None = None

    @classmethod
    def fit(cls, X: np.ndarray, Y: np.ndarray, features: bool, targets: bool) -> _Standardisation:
        """Statistics of the training samples (the identity when ``features`` is False)."""
        def mean_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            scale = values.std(axis=0)
            scale[scale == 0] = 1.0  # a constant column stays as it is, shifted to 0
            return values.mean(axis=0), scale

        if not features:
            return cls(np.zeros(X.shape[1]), np.ones(X.shape[1]))
        return cls(*mean_scale(X), *(mean_scale(Y) if targets else (None, None)))

    def features(self, X: np.ndarray) -> np.ndarray:
        return np.asarray((X - self.mean) / self.scale)

    def targets(self, Y: np.ndarray) -> np.ndarray:
        if self.target_mean is None or self.target_scale is None:
            return Y
        return np.asarray((Y - self.target_mean) / self.target_scale)

    def outputs(self, outputs: np.ndarray) -> np.ndarray:
        """Outputs for standardised targets, in the targets' own units."""
        outputs = outputs.astype(np.float64)
        if self.target_mean is None or self.target_scale is None:
            return outputs
        return np.asarray(outputs * self.target_scale + self.target_mean)

    def fold_features(self, net: Network) -> None:
        """Make ``net``, trained on standardised features, take raw ones.

        With ``x_s = (x - mean) / scale``, the first layer's ``x_s @ W + b`` equals
        ``x @ (W / scale[:, None]) + (b - (mean / scale) @ W)``.
        """
        W, b = net.weights[0], net.biases[0]
        W64, b64 = W.astype(np.float64), b.astype(np.float64)
        b[...] = b64 - (self.mean / self.scale) @ W64
        W[...] = W64 / self.scale[:, None]

    def fold_targets(self, net: Network) -> None:
        """Make ``net``, trained on standardised targets, give them in their own units.

        With an identity output ``o_s``, the targets ``o_s * target_scale +
        target_mean`` come from the last layer's ``W * target_scale`` and
        ``b * target_scale + target_mean``. Without target scaling, nothing changes.
        """
        if self.target_mean is None or self.target_scale is None:
            return
        W, b = net.weights[-1], net.biases[-1]
        W64, b64 = W.astype(np.float64), b.astype(np.float64)
        W[...] = W64 * self.target_scale
        b[...] = b64 * self.target_scale + self.target_mean


def _accuracy(outputs: np.ndarray, codes: np.ndarray) -> float:
    return float(np.mean(_predicted_codes(outputs) == codes))


def _predicted_codes(outputs: np.ndarray) -> np.ndarray:
    """Each sample's class index: a single output above 0.5, else the largest output."""
    if outputs.shape[1] == 1:
        return (outputs[:, 0] > 0.5).astype(np.intp)
    return np.asarray(outputs.argmax(axis=1))


def _rmse(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.sqrt(np.mean((outputs.astype(np.float64) - targets) ** 2)))


def _build_network(arguments: argparse.Namespace, n_features: int,
                   classes: list[Any] | None, n_targets: int) -> Network:
    """The network the arguments describe, with defaults chosen by the task."""
    if classes is None:
        output_activation = arguments.output_activation or "identity"
        n_outputs = n_targets
    else:
        output_activation = arguments.output_activation or (
            "sigmoid" if len(classes) == 2 else "softmax")
        n_outputs = 1 if len(classes) == 2 and output_activation != "softmax" else len(classes)
    if arguments.loss is not None:
        loss = arguments.loss
    elif output_activation == "softmax":
        loss = "cross_entropy"
    elif output_activation == "sigmoid" and classes is not None:
        loss = "binary_cross_entropy"
    else:
        loss = "mse"
    init = arguments.init or ("he" if arguments.activation in ("relu", "leaky_relu")
                              else "glorot")
    try:
        return Network([n_features, *arguments.hidden, n_outputs],
                       activation=arguments.activation, output_activation=output_activation,
                       loss=loss, reduction=arguments.reduction, dtype=arguments.dtype,
                       seed=arguments.seed, init=init)
    except (TypeError, ValueError) as error:
        arguments.parser.error(str(error))
        raise  # unreachable: parser.error exits


def _train(arguments: argparse.Namespace) -> int:
    optimizer = arguments.optimizer
    if arguments.learning_rate is not None and optimizer in _FULL_BATCH_OPTIMIZERS:
        arguments.parser.error(f"--learning-rate does not apply to the {optimizer} optimizer")
    if optimizer == "lbfgs" and arguments.batch_size not in (0, None):
        arguments.parser.error("--batch-size does not apply to the lbfgs optimizer, which "
                               "steps on the full batch")
    # Refuse what would fail at the end before spending any time on training.
    _check_output_path(arguments.output, "model file")
    plot_path = None if arguments.plot is None else _plot_path(arguments.plot)
    progress_mode = _progress_mode(arguments.progress, arguments.quiet)

    data = _training_data(arguments)
    _check_range(data, arguments.dtype, arguments.task == "regression")
    n_samples, n_features = data.X.shape
    classes: list[Any] | None = None
    codes = np.empty(0, dtype=np.intp)
    if arguments.task == "classification":
        classes, codes = _class_labels(data.y, arguments.data)
        if len(classes) < 2:
            raise CommandError(f"{arguments.data}: the target holds a single class "
                               f"({classes[0]!r}); classification needs at least two")
        if len(classes) > max(_MANY_CLASSES, n_samples // 2) and not arguments.quiet:
            numbers = all(_reads_as_number(label) for label in classes)
            advice = ("if it is a quantity rather than labels, train with --task regression"
                      if numbers else "check that --target names the column of class labels")
            print(f"warning: {arguments.data}: the target has {len(classes)} classes among "
                  f"{n_samples} samples; {advice}", file=sys.stderr)
    net = _build_network(arguments, n_features, classes, data.y.shape[-1])
    if classes is None:
        Y = data.y
    elif net.layer_sizes[-1] == 1:
        Y = (codes == 1).astype(np.float64).reshape(-1, 1)
    else:
        Y = np.eye(len(classes))[codes]

    # Hold out the validation samples, then standardise with the training samples' statistics.
    validation_split = arguments.validation_split
    if arguments.early_stopping and validation_split == 0:
        validation_split = 0.1
    n_validation = math.ceil(validation_split * n_samples)
    if n_validation >= n_samples:
        raise CommandError(f"--validation-split {validation_split} leaves no training samples "
                           f"out of {n_samples}")
    order = np.random.default_rng(arguments.seed).permutation(n_samples)
    held, kept = np.sort(order[:n_validation]), np.sort(order[n_validation:])
    standard = _Standardisation.fit(
        data.X[kept], Y[kept], features=arguments.scale,
        targets=classes is None and net.activations[-1] == "identity")
    X_val, Y_val = standard.features(data.X[held]), standard.targets(Y[held])

    metric: Callable[[Network], tuple[str, float]] | None = None
    if n_validation and classes is not None:
        def metric(net: Network) -> tuple[str, float]:
            return "val_accuracy", _accuracy(net.predict(X_val), codes[held])
    elif n_validation:
        def metric(net: Network) -> tuple[str, float]:
            return "val_rmse", _rmse(standard.outputs(net.predict(X_val)), Y[held])

    batch_size = arguments.batch_size
    if batch_size == 0:  # not given
        batch_size = None if optimizer in _FULL_BATCH_OPTIMIZERS else 32
    progress = _Progress(progress_mode, arguments.epochs, metric, sys.stderr)
    start = time.perf_counter()
    try:
        history = net.fit(
            standard.features(data.X[kept]), standard.targets(Y[kept]),
            epochs=arguments.epochs, learning_rate=arguments.learning_rate,
            batch_size=batch_size, optimizer=optimizer,
            validation_data=(X_val, Y_val) if n_validation else None,
            early_stopping=arguments.early_stopping, patience=arguments.patience,
            callbacks=[progress],
        )
    finally:
        progress.close()
    seconds = time.perf_counter() - start
    # Up to 2,000 training rows show whether folding kept the outputs.
    for warning in _fold_and_check(net, standard, data, kept[:2000], not arguments.quiet):
        print(f"warning: {warning}", file=sys.stderr)

    net.save(arguments.output)
    _write_sidecar(arguments.output, {
        "task": arguments.task,
        "classes": classes,
        "feature_names": data.feature_names,
        "target_names": data.target_names,
    })
    if plot_path is not None:
        try:
            _write_training_plot(plot_path, history, net, data, classes)
        except Exception as error:
            raise CommandError(f"wrote {arguments.output} and {_sidecar_path(arguments.output)}, "
                               f"but not the plot {plot_path}: {_error_message(error)}") from None
    if arguments.quiet:
        return 0

    sizes = "-".join(str(size) for size in net.layer_sizes)
    print(f"trained a {sizes} network ({', '.join(net.activations)}; {net.loss_name}, "
          f"{optimizer}) for {len(history)} epochs in {seconds:.2f} s")
    if history.best_epoch is not None:
        print(f"early stopping: kept the weights of epoch {history.best_epoch}")
    # Measured on the raw data with the saved network, in the targets' own units.
    for name, rows in (("training", kept), ("validation", held)):
        if rows.size:
            try:
                outputs = net.predict(data.X[rows])
                loss = net.loss(data.X[rows], Y[rows])
            except FloatingPointError:
                # The raw data overflows the saved network; a warning above said so.
                print(f"{name}: {rows.size} samples, not scored: the saved network cannot "
                      "take them")
                continue
            score = (f"accuracy {_accuracy(outputs, codes[rows]):.4f}" if classes is not None
                     else f"rmse {_rmse(outputs, Y[rows]):.6g}")
            print(f"{name}: {rows.size} samples, loss {loss:.6g}, {score}")
    if classes is not None:
        print(f"classes: {', '.join(str(label) for label in classes)}")
    print(f"wrote {arguments.output} and {_sidecar_path(arguments.output)}")
    if plot_path is not None:
        print(f"wrote {plot_path}")
    return 0


def _plot_path(name: str) -> str:
    """The file ``--plot name`` writes, checked before training as the model's path is.

    As matplotlib does, a name without an extension gets its default
    format's (``savefig.format``, PNG unless configured otherwise); a name
    whose extension matplotlib cannot write is refused here rather than
    after the training it would otherwise follow.
    """
    try:
        from cyprop import plot

        matplotlib = plot._matplotlib()
    except ImportError as error:
        raise CommandError(f"--plot: {error}") from None
    from matplotlib.backend_bases import FigureCanvasBase

    extension = os.path.splitext(name)[1][1:]
    if not extension:
        picture_format = matplotlib.rcParams["savefig.format"]
        path = f"{name.rstrip('.')}.{picture_format}"
    else:
        supported = FigureCanvasBase.get_supported_filetypes()
        picture_format = extension.lower()
        if picture_format not in supported:
            raise CommandError(f"--plot {name}: matplotlib cannot write {extension!r} pictures; "
                               f"name a file ending in one of: .{', .'.join(sorted(supported))}")
        path = name
    _check_output_path(path, "plot")
    # Some formats matplotlib lists need more than matplotlib (pgf needs TeX
    # for its text): a small picture with text, in memory, finds out before
    # training.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1))
    figure.text(0.5, 0.5, "0")
    try:
        figure.savefig(io.BytesIO(), format=picture_format)
    except Exception as error:
        raise CommandError(f"--plot {name}: matplotlib cannot write this picture here: "
                           f"{_error_message(error)}") from None
    return path


def _check_range(data: _TrainingData, dtype: str, regression: bool) -> None:
    """Refuse data that the saved network, which takes raw values, could not hold."""
    largest = float(np.finfo(dtype).max)
    columns = [("feature", data.X, data.feature_names)]
    if regression:
        columns.append(("target", data.y.reshape(len(data.y), -1), data.target_names))
    for what, values, names in columns:
        beyond = np.flatnonzero((np.abs(values) > largest).any(axis=0))
        if beyond.size:
            name = repr(names[beyond[0]]) if names else f"column {beyond[0]}"
            raise CommandError(f"{what} {name} holds values beyond the range of {dtype}, "
                               "which the saved network takes and gives unscaled; train "
                               "with --dtype float64")


def _fold_and_check(net: Network, standard: _Standardisation, data: _TrainingData,
                    rows: np.ndarray, check: bool) -> list[str]:
    """Fold the scaling into ``net``; with ``check``, warnings about outputs it changed.

    The saved network takes raw features, and gives raw targets, in its own
    dtype. A feature far from zero beside its spread (a Unix timestamp, say)
    loses in float32 the digits that carried it, and so does a target (a
    temperature in kelvin); the saved model is then worse than training
    showed. Each fold is compared with the outputs before it on ``rows``.
    """
    if not check:
        standard.fold_features(net)
        standard.fold_targets(net)
        return []
    dtype = net.dtype.name
    X = data.X[rows]
    trained = net.predict(standard.features(X)).astype(np.float64)
    spread = trained.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    warnings = []
    standard.fold_features(net)
    try:
        folded = net.predict(X).astype(np.float64)
    except FloatingPointError as error:
        standard.fold_targets(net)
        return [f"the saved network cannot take the raw training features in {dtype} "
                f"({error}). Train with --dtype float64."]
    drift = float((np.abs(folded - trained) / spread).max())
    if drift > _FOLDING_TOLERANCE:
        offsets = np.abs(standard.mean) / standard.scale
        worst = int(np.argmax(offsets))
        name = repr(data.feature_names[worst]) if data.feature_names else f"column {worst}"
        warnings.append(
            f"the saved network takes raw features in {dtype}, and its outputs differ "
            f"from the trained network's by up to {drift:.3g} times their spread; feature "
            f"{name} lies {offsets[worst]:.3g} times its spread from zero, further than "
            f"{dtype} resolves. Train with --dtype float64, or shift that feature towards "
            "zero first.")
    standard.fold_targets(net)
    if standard.target_mean is None or standard.target_scale is None:
        return warnings
    try:
        saved = net.predict(X).astype(np.float64)
    except FloatingPointError as error:
        return warnings + [f"the saved network cannot give the targets in their own units "
                           f"in {dtype} ({error}). Train with --dtype float64."]
    expected = folded * standard.target_scale + standard.target_mean
    drift = float((np.abs(saved - expected) / (spread * standard.target_scale)).max())
    if drift > _FOLDING_TOLERANCE:
        offsets = np.abs(standard.target_mean) / standard.target_scale
        warnings.append(
            f"the saved network gives targets in their own units in {dtype}, and its "
            f"outputs differ from the trained network's by up to {drift:.3g} times their "
            f"spread; the targets lie up to {offsets.max():.3g} times their spread from "
            f"zero, further than {dtype} resolves. Train with --dtype float64, or shift "
            "the targets towards zero first.")
    return warnings


def _write_training_plot(path: str, history: Any, net: Network, data: _TrainingData,
                         classes: list[Any] | None) -> None:
    from cyprop import plot

    boundary = classes is not None and data.X.shape[1] == 2
    figure, axes = plot._new_figure(2 if boundary else 1)
    plot.plot_history(history, ax=axes[0])
    axes[0].set_title("loss per epoch")
    if boundary:
        plot.plot_decision_boundary(net, data.X, data.y, ax=axes[1], classes=classes,
                                    task="classification")
        axes[1].set_title("decision boundary")
        if data.feature_names is not None:
            axes[1].set_xlabel(data.feature_names[0])
            axes[1].set_ylabel(data.feature_names[1])
    figure.savefig(path, dpi=100)


# --- predict -------------------------------------------------------------------


def _prediction_features(arguments: argparse.Namespace, net: Network,
                         sidecar: dict[str, Any] | None) -> np.ndarray:
    path = arguments.data
    n_inputs = net.layer_sizes[0]
    if _is_npz(path):
        if arguments.features is not None:
            raise CommandError("--features is for CSV files; name the array with --x-key")
        (X,) = _read_npz(path, [arguments.x_key], ["--x-key"])
        X = _npz_features(X, path, arguments.x_key)
        if X.shape[1] != n_inputs:
            raise CommandError(f"{path}: array {arguments.x_key!r} has {X.shape[1]} features "
                               f"but {arguments.model} takes {n_inputs}")
        return X
    table = _read_csv(path, arguments.delimiter)
    names = sidecar.get("feature_names") if sidecar is not None else None
    if arguments.features is not None:
        columns = table.column_indices(arguments.features, "--features")
    elif names is not None:
        missing = [name for name in names if name not in table.header]
        if missing:
            raise CommandError(
                f"{path} lacks the column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} that {arguments.model} was trained on (its columns: "
                f"{', '.join(table.header)}); choose the feature columns with --features")
        columns = [table.header.index(name) for name in names]
    else:
        columns = list(range(len(table.header)))
    if len(columns) != n_inputs:
        hint = "" if arguments.features is not None else "; choose them with --features"
        raise CommandError(f"{path} has {len(columns)} feature columns but {arguments.model} "
                           f"takes {n_inputs}{hint}")
    return table.numbers(columns)


def _predict(arguments: argparse.Namespace) -> int:
    net = _load_model(arguments.model)
    sidecar = _read_sidecar(arguments.model, net)
    task, classes = _model_task(net, sidecar)
    if arguments.proba and task != "classification":
        raise CommandError(f"--proba is for classifiers; {arguments.model} is a regression model")
    if arguments.output is not None:
        _check_output_path(arguments.output, "output file")
    X = _prediction_features(arguments, net, sidecar)
    outputs = net.predict(X)
    target_names = sidecar.get("target_names") if sidecar is not None else None

    header: list[str]
    columns: list[list[str]]
    if task == "classification":
        assert classes is not None
        name = target_names[0] if target_names else "label"
        labels = [str(label) for label in classes]
        header = [name]
        columns = [[labels[code] for code in _predicted_codes(outputs)]]
        if arguments.proba:
            if outputs.shape[1] == 1:
                proba = np.concatenate([1 - outputs, outputs], axis=1)
            else:
                proba = outputs
            header += [f"proba_{label}" for label in labels]
            columns += [_format_values(proba[:, k]) for k in range(proba.shape[1])]
    else:
        n_outputs = outputs.shape[1]
        if target_names and len(target_names) == n_outputs:
            header = list(target_names)
        else:
            header = ["output"] if n_outputs == 1 else [f"output_{k}" for k in range(n_outputs)]
        columns = [_format_values(outputs[:, k]) for k in range(n_outputs)]

    def write(stream: TextIO) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(zip(*columns))

    if arguments.output is None:
        write(sys.stdout)
        sys.stdout.flush()
    else:
        with open(arguments.output, "w", newline="", encoding="utf-8") as stream:
            write(stream)
    return 0


# --- info ----------------------------------------------------------------------


def _info(arguments: argparse.Namespace) -> int:
    path = arguments.model
    net = _load_model(path)
    header, _ = read_model(path)  # load has verified the checksum; this gives the version
    sidecar = _read_sidecar(path, net)
    task, classes = _model_task(net, sidecar)
    report: dict[str, Any] = {
        "path": path,
        "format_version": header["format_version"],
        "checksum_ok": True,
        "file_size": os.path.getsize(path),
        "layer_sizes": list(net.layer_sizes),
        "activations": list(net.activations),
        "loss": net.loss_name,
        "reduction": net.reduction,
        "dtype": net.dtype.name,
        "n_parameters": net.n_parameters,
        "task": task,
        "classes": classes,
        "feature_names": sidecar.get("feature_names") if sidecar else None,
        "target_names": sidecar.get("target_names") if sidecar else None,
        "sidecar": _sidecar_path(path) if sidecar else None,
    }
    if arguments.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    rows = [
        ("format", f"cyprop model file, version {report['format_version']}, "
                   f"{report['file_size']:,} bytes"),
        ("checksum", "ok (SHA-256)"),
        ("layer sizes", " -> ".join(str(size) for size in net.layer_sizes)),
        ("activations", ", ".join(net.activations)),
        ("loss", f"{net.loss_name} (reduction: {net.reduction})"),
        ("dtype", net.dtype.name),
        ("parameters", f"{net.n_parameters:,}"),
        ("task", task + ("" if sidecar else " (no sidecar: read from the output layer)")),
    ]
    if classes is not None:
        rows.append(("classes", ", ".join(str(label) for label in classes)))
    if report["feature_names"]:
        rows.append(("features", ", ".join(report["feature_names"])))
    if report["target_names"]:
        rows.append(("target", ", ".join(report["target_names"])))
    rows.append(("sidecar", report["sidecar"] or "none"))
    print(path)
    for label, value in rows:
        print(f"  {label:<12} {value}")
    return 0


# --- bench ---------------------------------------------------------------------


def _lesson_numpy(iterations: int) -> float:
    """The lesson's own numpy training loop; returns the last iteration's loss."""
    from cyprop.lesson import LEARNING_RATE, X, y

    def sigmoid(x: np.ndarray) -> np.ndarray:
        return np.asarray(1 / (1 + np.exp(-x)))

    def sigmoid_derivative(a: np.ndarray) -> np.ndarray:
        return np.asarray(a * (1 - a))

    np.random.seed(1)
    W1, b1 = np.random.rand(3, 4), np.random.rand(1, 4)
    W2, b2 = np.random.rand(4, 1), np.random.rand(1, 1)
    loss = math.nan
    for _ in range(iterations):
        hidden = sigmoid(np.dot(X, W1) + b1)
        output = sigmoid(np.dot(hidden, W2) + b2)
        loss = float(np.mean((output - y) ** 2))
        output_delta = (output - y) * sigmoid_derivative(output)
        hidden_delta = output_delta.dot(W2.T) * sigmoid_derivative(hidden)
        W2 -= LEARNING_RATE * hidden.T.dot(output_delta)
        b2 -= LEARNING_RATE * np.sum(output_delta, axis=0, keepdims=True)
        W1 -= LEARNING_RATE * X.T.dot(hidden_delta)
        b1 -= LEARNING_RATE * np.sum(hidden_delta, axis=0, keepdims=True)
    return loss


def _lesson_cyprop(iterations: int, dtype: str) -> float:
    """The same training with cyprop; returns the last iteration's loss in the lesson's units."""
    from cyprop.lesson import LEARNING_RATE, X, lesson_network, y

    net = lesson_network(dtype)
    history = net.fit(X, y, epochs=iterations, learning_rate=LEARNING_RATE)
    return float(history[-1]) * 2 / y.size


def _timed(function: Callable[[], float], repeats: int) -> tuple[float, float, float]:
    """Median and best wall-clock seconds of ``repeats`` calls, and the last result."""
    times, result = [], math.nan
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def _bench(arguments: argparse.Namespace) -> int:
    iterations = arguments.iterations
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = None
        threads = "BLAS threads not pinned (threadpoolctl is not installed)"
    else:
        limits = threadpool_limits(limits=1)
        threads = "BLAS pinned to 1 thread"
    try:
        print(f"cyprop {__version__}, numpy {np.__version__}, Python "
              f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
              f"{threads}")
        print(f"the lesson: 3-4-1 sigmoid network, XOR, {iterations:,} full-batch iterations, "
              "both from the same initial weights")
        _lesson_cyprop(10, arguments.dtype)  # warm up imports and caches
        numpy_time = _timed(lambda: _lesson_numpy(iterations), arguments.repeats)
        cyprop_time = _timed(lambda: _lesson_cyprop(iterations, arguments.dtype),
                             arguments.repeats * 10)
    finally:
        if limits is not None:
            limits.unregister()
    rows = [("numpy", arguments.repeats, numpy_time),
            (f"cyprop ({arguments.dtype})", arguments.repeats * 10, cyprop_time)]
    print(f"{'':<17}{'runs':>5} {'median ms':>11} {'best ms':>10}  final loss")
    for name, runs, (median, best, loss) in rows:
        print(f"{name:<17}{runs:>5} {median * 1e3:>11.3f} {best * 1e3:>10.3f}  {loss:.15g}")
    print(f"cyprop is {numpy_time[0] / cyprop_time[0]:.1f}x faster than numpy by median "
          f"times ({numpy_time[1] / cyprop_time[1]:.1f}x by best times)")
    return 0


# --- demo ----------------------------------------------------------------------


def _demo(arguments: argparse.Namespace) -> int:
    from cyprop.lesson import print_lesson, run_lesson

    print_lesson(run_lesson(iterations=arguments.iterations, dtype=arguments.dtype))
    return 0


# --- the parser ----------------------------------------------------------------

_EXIT_STATUS = ("exit status: 0 success, 1 unreadable or invalid files or data, "
                "2 invalid arguments, 130 interrupted (Ctrl-C), 141 output pipe closed")


def _add_data_options(command: argparse.ArgumentParser, training: bool) -> None:
    csv_options = command.add_argument_group("CSV input (a header row, then one sample per row)")
    if training:
        csv_options.add_argument(
            "--target", type=_columns, metavar="COLUMNS",
            help="target column(s), by name or index from 0 (negative from the end), "
                 "comma-separated: y or 3,4 (default: the last column)")
    csv_options.add_argument(
        "--features", type=_columns, metavar="COLUMNS",
        help="feature columns, by name or index (default: "
             + ("every column but the target)" if training else
                "the columns the model was trained on, by name, else every column)"))
    csv_options.add_argument("--delimiter", type=_delimiter, metavar="CHAR",
                             help="field separator, one character or tab (default: tab for "
                                  ".tsv files, else comma)")
    npz_options = command.add_argument_group(".npz input (numpy.savez)")
    npz_options.add_argument("--x-key", default="X", metavar="NAME",
                             help="array of features, (n_samples, n_features) (default: X)")
    if training:
        npz_options.add_argument("--y-key", default="y", metavar="NAME",
                                 help="array of targets or labels (default: y)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command line, with every subcommand.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> build_parser().parse_args(["train", "data.csv", "--task", "regression"]).hidden
    (32,)
    """
    parser = _Parser(
        prog="cyprop",
        description="Multilayer perceptrons trained by backpropagation.",
        epilog=_EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"cyprop {__version__}")
    # Not required here: main() reports a missing command itself, after any
    # misspelt option, which argparse would otherwise hide behind it.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the lesson: a 3-4-1 sigmoid network learning XOR",
        description="Train the lesson's 3-4-1 sigmoid network on XOR and print "
        "what the lesson prints, plus the time it took.",
    )
    demo.add_argument("--iterations", type=_positive_int, default=10_000,
                      help="full-batch gradient steps (default: 10000)")
    demo.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                      help="floating type (default: float64)")
    demo.set_defaults(run=_demo, parser=demo)

    train = commands.add_parser(
        "train",
        help="train a network on a CSV or .npz file and save it",
        description="Train a network on a CSV file (with a header row) or an .npz file, "
        "and save it with a JSON sidecar (MODEL.json) holding the class labels and "
        "column names. Features are standardised for training and the scaling is folded "
        "into the saved weights, so the model takes raw features.",
        epilog=_EXIT_STATUS,
    )
    train.add_argument("data", help="a .csv (or .tsv) file, or an .npz file")
    train.add_argument("--task", choices=("classification", "regression"), required=True,
                       help="classification: the target column holds class labels, one-hot "
                            "encoded (softmax + cross_entropy; sigmoid + "
                            "binary_cross_entropy for two classes; labels that are not "
                            "whole numbers are refused); regression: numeric targets "
                            "(identity + mse)")
    train.add_argument("-o", "--output", default="model.cyprop", metavar="MODEL",
                       help="model file to write (default: model.cyprop); the sidecar goes "
                            "to MODEL.json")
    _add_data_options(train, training=True)
    network = train.add_argument_group("network")
    network.add_argument("--hidden", type=_hidden_sizes, default=(32,), metavar="SIZES",
                         help="hidden layer sizes, comma-separated, or none (default: 32)")
    network.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu",
                         help="activation of the hidden layers (default: relu)")
    network.add_argument("--output-activation", choices=_OUTPUT_ACTIVATIONS,
                         help="activation of the output layer (default: by --task)")
    network.add_argument("--loss", choices=LOSSES,
                         help="loss (default: by the output activation and --task)")
    network.add_argument("--reduction", choices=REDUCTIONS, default="mean",
                         help="sum or mean of the per-sample losses (default: mean)")
    network.add_argument("--init", choices=INITS,
                         help="initial weights (default: he for relu and leaky_relu, "
                              "else glorot)")
    network.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                         help="floating type (default: float64)")
    network.add_argument("--no-scale", dest="scale", action="store_false",
                         help="train on the raw features (and targets) instead of "
                              "standardised ones")
    training = train.add_argument_group("training")
    training.add_argument("--optimizer", choices=_OPTIMIZERS, default="adam",
                          help="(default: adam)")
    training.add_argument("--learning-rate", "--lr", type=_positive_float, metavar="RATE",
                          help="step size (default: 0.001 for adam, 0.1 for the sgd family)")
    training.add_argument("--epochs", type=_positive_int, default=200,
                          help="passes over the training samples (default: 200)")
    training.add_argument("--batch-size", type=_batch_size, default=0, metavar="N",
                          help="samples per step, or full (default: 32; full for irprop- "
                               "and lbfgs)")
    training.add_argument("--validation-split", type=_fraction, default=0.0, metavar="FRACTION",
                          help="fraction of the samples held out to validate each epoch "
                               "(default: 0, or 0.1 with --early-stopping)")
    training.add_argument("--early-stopping", action="store_true",
                          help="stop when the validation loss stops improving and keep the "
                               "best epoch's weights")
    training.add_argument("--patience", type=_positive_int, default=10,
                          help="epochs without improvement before early stopping (default: 10)")
    training.add_argument("--seed", type=int, metavar="N",
                          help="seed of the initial weights, the validation split and the "
                               "shuffling (default: fresh randomness)")
    output = train.add_argument_group("output")
    output.add_argument("--plot", metavar="FILE.png",
                        help="write the loss curves (and, for classification with two "
                             "features, the decision boundary) to this picture, in the "
                             "format its extension names (.png without one); needs "
                             "matplotlib")
    output.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                        help="per-epoch progress on stderr: a tqdm bar, lines, or none "
                             "(default: a bar on a terminal when tqdm is installed, else "
                             "lines); for regression, loss and val_loss are on the "
                             "standardised targets")
    output.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing but errors")
    train.set_defaults(run=_train, parser=train)

    predict = commands.add_parser(
        "predict",
        help="predict with a saved network; CSV out",
        description="Print a saved network's predictions for the samples in a CSV or .npz "
        "file as CSV: the class label (and with --proba each class's probability) for "
        "a classifier, the outputs for a regression model.",
        epilog=_EXIT_STATUS,
    )
    predict.add_argument("model", help="a model file written by train (or Network.save)")
    predict.add_argument("data", help="a .csv (or .tsv) file, or an .npz file")
    predict.add_argument("-o", "--output", metavar="FILE",
                         help="write the CSV here instead of to stdout")
    predict.add_argument("--proba", action="store_true",
                         help="also print each class's probability (classifiers only)")
    _add_data_options(predict, training=False)
    predict.set_defaults(run=_predict, parser=predict)

    info = commands.add_parser(
        "info",
        help="show what a model file holds",
        description="Check a model file and show its layers, activations, loss, dtype, "
        "parameter count and format version, and what its sidecar says.",
        epilog=_EXIT_STATUS,
    )
    info.add_argument("model", help="a model file")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(run=_info, parser=info)

    bench = commands.add_parser(
        "bench",
        help="time the lesson with plain numpy and with cyprop",
        description="Time the lesson (XOR, 3-4-1 sigmoid, full batch) with the lesson's "
        "own numpy code and with cyprop, in this process, and print both and their ratio.",
    )
    bench.add_argument("--iterations", type=_positive_int, default=10_000,
                       help="training iterations (default: 10000)")
    bench.add_argument("--repeats", type=_positive_int, default=3,
                       help="timed runs of numpy; cyprop runs ten times as many (default: 3)")
    bench.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="cyprop's floating type (default: float64)")
    bench.set_defaults(run=_bench, parser=bench)
    return parser


class _ArgumentError(Exception):
    """An error a _Parser would have reported, kept for the caller to report."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors _parse can take instead of exiting."""

    raise_errors = False

    def error(self, message: str) -> NoReturn:
        if self.raise_errors:
            raise _ArgumentError(self, message)
        super().error(message)


def _parsers(parser: argparse.ArgumentParser) -> list[_Parser]:
    """parser and its commands' parsers, those that are _Parsers."""
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers.extend(action.choices.values())
    return [each for each in parsers if isinstance(each, _Parser)]


def _parse(parser: argparse.ArgumentParser,
           argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """parser.parse_known_args(argv), except that an unknown option is reported
    before a missing required one: argparse checks the required first, so a
    mistyped "--tsk" would come out as a missing --task. Raises _ArgumentError
    for the error to report."""
    parsers = _parsers(parser)
    for each in parsers:
        each.raise_errors = True
    try:
        try:
            return parser.parse_known_args(argv)
        except _ArgumentError as failure:
            if not failure.message.startswith("the following arguments are required"):
                raise
            required = [action for each in parsers for action in each._actions
                        if action.required and action.option_strings]
            for action in required:
                action.required = False
            try:
                arguments, unrecognized = parser.parse_known_args(argv)
            finally:
                for action in required:
                    action.required = True
            if unrecognized:
                # main reports them, with the usage of the command they follow
                return arguments, unrecognized
            raise
    finally:
        for each in parsers:
            each.raise_errors = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when a file or its data cannot be used (after a
        one-line message on stderr), 130 after Ctrl-C, 141 when the reader
        of stdout went away. Invalid arguments
        exit with status 2 through :class:`SystemExit`, as argparse does.
    """
    parser = build_parser()
    try:
        arguments, unrecognized = _parse(parser, argv)
    except _ArgumentError as failure:
        failure.parser.error(failure.message)
    # The subcommand's own parser reports its unknown options, so that the
    # usage printed with the error is that subcommand's.
    command_parser = getattr(arguments, "parser", parser)
    if unrecognized:
        message = f"unrecognized arguments: {' '.join(unrecognized)}"
        words = list(sys.argv[1:] if argv is None else argv)
        if arguments.command and set(unrecognized) & set(words[: words.index(arguments.command)]):
            parser.error(f"{message} (a command's options go after its name)")
        command_parser.error(message)
    if arguments.command is None:
        parser.error("the following arguments are required: COMMAND")
    prog = command_parser.prog
    try:
        return int(arguments.run(arguments))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``cyprop predict ... | head``): stop quietly, and keep
        # Python from reporting the failed flush of stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _EXIT_PIPE_CLOSED
    except (CommandError, OSError, ValueError, FloatingPointError) as error:
        print(f"{prog}: error: {_error_message(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
