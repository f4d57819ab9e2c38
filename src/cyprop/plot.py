"""Pictures of training: loss curves and decision boundaries, drawn with matplotlib.

matplotlib is optional (``pip install "cyprop[plot]"``). Importing this
module does not import it; each function imports it when called and raises
an :class:`ImportError` saying how to install it when it is missing.

Both functions draw into the matplotlib ``Axes`` they are given and return
it. Without one they draw into a new figure from ``matplotlib.pyplot``,
which opens a window under an interactive backend; in scripts and tests,
give them an ``Axes`` of a :class:`matplotlib.figure.Figure` (as in the
examples) or select the "Agg" backend first, and no window ever opens.

- :func:`plot_history`: training and validation loss per epoch.
- :func:`plot_decision_boundary`: a network's output over the plane of its
  two inputs, with the samples on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cyprop._validation import check_bool

__all__ = ["plot_decision_boundary", "plot_history"]

_INSTALL_HINT = 'install it with: pip install "cyprop[plot]"'
# Class colours: the first two match the ends of the "RdBu_r" map used for
# two-class probabilities (blue for the first class, red for the second).
_CLASS_COLORS = ("#2166ac", "#b2182b", "#1b9e77", "#d95f02", "#7570b3", "#e7298a",
                 "#66a61e", "#e6ab02", "#a6761d", "#666666")


def _matplotlib() -> Any:
    """The matplotlib package, or an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            f"cyprop.plot needs matplotlib, which is not installed; {_INSTALL_HINT}"
        ) from error
    return matplotlib


def _new_figure(ncols: int = 1, width: float = 5.0, height: float = 4.0) -> tuple[Any, list[Any]]:
    """A figure that belongs to no window (no pyplot), with ``ncols`` Axes side by side."""
    _matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def _axes(ax: Any) -> Any:
    """``ax``, or the Axes of a new pyplot figure when it is None."""
    _matplotlib()
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    # Constrained layout keeps the axis labels inside a saved picture.
    return plt.figure(layout="constrained").add_subplot()


def plot_history(history: Any, ax: Any = None, log_scale: bool | None = None) -> Any:
    """Draw the training loss per epoch and, when recorded, the validation loss.

    Parameters
    ----------
    history : History or array-like of float
        What :meth:`cyprop.Network.fit` returns, or a sequence of losses.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new pyplot figure).
    log_scale : bool, optional
        Use a logarithmic loss axis. By default it is used when every loss is
        positive and they span more than a factor of 10.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If there are no losses to draw.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from cyprop import Network
    >>> from cyprop.plot import plot_history
    >>> net = Network([2, 1], activation="identity", seed=0)
    >>> history = net.fit([[0, 1], [1, 0], [1, 1]], [3, -1, 2], epochs=50,
    ...                   learning_rate=0.1, validation_data=([[2, 0]], [-2]))
    >>> ax = plot_history(history, ax=Figure().subplots())
    >>> [line.get_label() for line in ax.get_lines()]
    ['training', 'validation']
    >>> ax.get_yscale()
    'log'
    """
    loss = np.asarray(getattr(history, "loss", history), dtype=np.float64).ravel()
    val_loss = getattr(history, "val_loss", None)
    if loss.size == 0:
        raise ValueError("the history holds no epochs to plot")
    if log_scale is not None:
        log_scale = check_bool(log_scale, "log_scale")
    ax = _axes(ax)
    epochs = np.arange(1, loss.size + 1)
    ax.plot(epochs, loss, label="training", color="C0")
    curves = [loss]
    if val_loss is not None:
        val_loss = np.asarray(val_loss, dtype=np.float64).ravel()
        ax.plot(epochs[: val_loss.size], val_loss, label="validation", color="C1")
        curves.append(val_loss)
    best_epoch = getattr(history, "best_epoch", None)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="0.5", linestyle=":", linewidth=1,
                   label=f"best epoch ({best_epoch})")
    values = np.concatenate(curves)
    values = values[np.isfinite(values)]
    if log_scale is None:
        # max / 10 rather than 10 * min, which overflows near float64's top.
        log_scale = bool(values.size and values.min() > 0 and values.max() / 10 > values.min())
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_xlim(1, max(2, loss.size))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return ax


def _classes_and_codes(
    y: np.ndarray, classes: Sequence[Any] | None, n_outputs: int
) -> tuple[list[Any], np.ndarray]:
    """Class labels in output order, and each sample's class index."""
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot (or probability) rows
        codes = y.argmax(axis=1)
        labels = list(classes) if classes is not None else list(range(y.shape[1]))
        return labels, codes
    y = y.ravel()
    if classes is None:
        labels = list(np.unique(y))
        if n_outputs == 1 and len(labels) == 1:
            # One class present: place it by value (0 or 1) against the threshold.
            labels = [0, 1]
    else:
        labels = list(classes)
    index = {label: code for code, label in enumerate(labels)}
    try:
        codes = np.array([index[label] for label in y.tolist()], dtype=np.intp)
    except KeyError as error:
        raise ValueError(f"y holds the label {error.args[0]!r}, which is not in classes "
                         f"{labels!r}") from None
    return labels, codes


def plot_decision_boundary(
    net: Any,
    X: Any,
    y: Any = None,
    ax: Any = None,
    resolution: int = 200,
    task: str | None = None,
    classes: Sequence[Any] | None = None,
    threshold: float = 0.5,
    output: int = 0,
    padding: float = 0.1,
) -> Any:
    """Draw a network's output over the plane of its two inputs, with the samples.

    The network is evaluated on a ``resolution x resolution`` grid covering
    the samples (widened by ``padding`` of their range on every side).

    - Classification with one output (a sigmoid): the output, read as the
      probability of the second class, as shaded contours, with the boundary
      ``output = threshold`` drawn as a line.
    - Classification with several outputs (softmax, or one per class): the
      regions where each output is largest, one colour per class.
    - Regression: filled contours of output number ``output``, with a colour
      bar; the samples are coloured by their target on the same scale.

    Parameters
    ----------
    net : Network
        A network with two inputs.
    X : array-like of shape (n_samples, 2)
        The samples to draw; they also set the limits of the plot.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs), optional
        Their targets: class labels (or one-hot rows) for classification,
        values for regression. Without it the samples are drawn in grey.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new pyplot figure).
    resolution : int, default=200
        Grid points along each axis.
    task : {"classification", "regression"}, optional
        By default, classification when the output layer is a softmax or a
        single sigmoid, regression otherwise.
    classes : sequence, optional
        The class label of each output, in order; for a single sigmoid
        output, the labels of outputs below and above ``threshold``.
        Default: the sorted distinct labels in ``y``.
    threshold : float, default=0.5
        Decision threshold of a single-output classifier.
    output : int, default=0
        Which output to draw for regression.
    padding : float, default=0.1
        Margin around the samples, as a fraction of their range.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the network does not take two inputs, or the arguments do not fit it.

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from cyprop import Network
    >>> from cyprop.plot import plot_decision_boundary
    >>> X = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    >>> y = np.array([0, 1, 1, 0])
    >>> net = Network([2, 4, 1], activation="tanh", output_activation="sigmoid",
    ...               loss="binary_cross_entropy", seed=0)
    >>> history = net.fit(X, y, epochs=500, learning_rate=0.5)
    >>> ax = plot_decision_boundary(net, X, y, ax=Figure().subplots(), resolution=50)
    >>> ax.get_legend().get_texts()[0].get_text()
    'class 0'
    """
    layer_sizes = tuple(net.layer_sizes)
    if layer_sizes[0] != 2:
        raise ValueError(
            f"plot_decision_boundary needs a network with 2 inputs; this one has {layer_sizes[0]}"
        )
    n_outputs = layer_sizes[-1]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(f"X must have shape (n_samples, 2), got {X.shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) \
            or resolution < 2:
        raise ValueError(f"resolution must be an integer of at least 2, got {resolution!r}")
    if task is None:
        output_activation = net.activations[-1]
        single_sigmoid = n_outputs == 1 and output_activation == "sigmoid"
        task = "classification" if output_activation == "softmax" or single_sigmoid \
            else "regression"
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    if y is not None:
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}")

    ax = _axes(ax)
    low, high = X.min(axis=0), X.max(axis=0)
    margin = padding * np.where(high > low, high - low, 1.0)
    grid_x = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    grid_y = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    xx, yy = np.meshgrid(grid_x, grid_y)
    outputs = np.asarray(net.predict(np.column_stack([xx.ravel(), yy.ravel()])),
                         dtype=np.float64)

    if task == "regression":
        _draw_regression(ax, xx, yy, outputs, X, y, output, n_outputs)
    else:
        _draw_classification(ax, xx, yy, outputs, X, y, classes, threshold, n_outputs)
    ax.set_xlim(grid_x[0], grid_x[-1])
    ax.set_ylim(grid_y[0], grid_y[-1])
    ax.set_xlabel("feature 0")
    ax.set_ylabel("feature 1")
    return ax


def _draw_classification(ax: Any, xx: np.ndarray, yy: np.ndarray, outputs: np.ndarray,
                         X: np.ndarray, y: np.ndarray | None, classes: Sequence[Any] | None,
                         threshold: float, n_outputs: int) -> None:
    from matplotlib.colors import ListedColormap

    n_classes = 2 if n_outputs == 1 else n_outputs
    labels = list(classes) if classes is not None else None
    if labels is not None and len(labels) != n_classes:
        raise ValueError(f"the network tells apart {n_classes} classes but classes has "
                         f"{len(labels)} labels")
    codes = None
    if y is not None:
        labels, codes = _classes_and_codes(y, labels, n_outputs)
        if len(labels) != n_classes:
            raise ValueError(f"y holds {len(labels)} classes but the network tells apart "
                             f"{n_classes}; give the labels in output order as classes=")
    if labels is None:
        labels = list(range(n_classes))
    if n_outputs == 1:
        surface = outputs[:, 0].reshape(xx.shape)
        low, high = min(0.0, surface.min()), max(1.0, surface.max())
        filled = ax.contourf(xx, yy, surface, levels=np.linspace(low, high, 21),
                             cmap="RdBu_r", alpha=0.5)
        if surface.min() < threshold < surface.max():  # else there is no boundary to draw
            ax.contour(xx, yy, surface, levels=[threshold], colors="k", linewidths=1.5)
        ax.figure.colorbar(filled, ax=ax, label=f"output: probability of class {labels[1]}")
    else:
        regions = outputs.argmax(axis=1).reshape(xx.shape)
        colors = [_CLASS_COLORS[k % len(_CLASS_COLORS)] for k in range(n_classes)]
        ax.contourf(xx, yy, regions, levels=np.arange(n_classes + 1) - 0.5,
                    cmap=ListedColormap(colors), alpha=0.3)
        present = np.unique(regions)
        if present.size > 1:  # boundaries between the classes the network predicts somewhere
            ax.contour(xx, yy, regions, levels=present[:-1] + 0.5, colors="k", linewidths=1.0)
    if codes is None:
        ax.scatter(X[:, 0], X[:, 1], c="0.3", s=18, edgecolors="white", linewidths=0.5)
        return
    for code, label in enumerate(labels):
        chosen = codes == code
        if chosen.any():
            ax.scatter(X[chosen, 0], X[chosen, 1], s=20, label=f"class {label}",
                       color=_CLASS_COLORS[code % len(_CLASS_COLORS)],
                       edgecolors="k", linewidths=0.6)
    ax.legend(loc="best", framealpha=0.9)


def _draw_regression(ax: Any, xx: np.ndarray, yy: np.ndarray, outputs: np.ndarray,
                     X: np.ndarray, y: np.ndarray | None, output: int, n_outputs: int) -> None:
    if isinstance(output, bool) or not isinstance(output, (int, np.integer)) \
            or not 0 <= output < n_outputs:
        raise ValueError(f"output must be an integer in [0, {n_outputs}), got {output!r}")
    surface = outputs[:, output].reshape(xx.shape)
    values = surface
    target = None
    if y is not None:
        target = np.asarray(y, dtype=np.float64)
        target = target[:, output] if target.ndim == 2 else target
        values = np.concatenate([surface.ravel(), target])
    levels = np.linspace(values.min(), values.max(), 21)
    if levels[0] == levels[-1]:
        levels = np.linspace(levels[0] - 0.5, levels[0] + 0.5, 21)
    filled = ax.contourf(xx, yy, surface, levels=levels, cmap="viridis", alpha=0.85)
    ax.figure.colorbar(filled, ax=ax, label=f"output {output}")
    if target is None:
        ax.scatter(X[:, 0], X[:, 1], c="0.3", s=18, edgecolors="white", linewidths=0.5)
    else:
        ax.scatter(X[:, 0], X[:, 1], c=target, cmap="viridis", norm=filled.norm, s=18,
                   edgecolors="k", linewidths=0.5)
