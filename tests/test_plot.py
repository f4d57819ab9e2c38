"""cyprop.plot: loss curves and decision boundaries, drawn on figures that open no window."""

import doctest
import sys

import numpy as np
import pytest

import cyprop.plot
from cyprop import History, Network
from cyprop.plot import plot_decision_boundary, plot_history

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402


@pytest.fixture
def ax():
    return Figure().subplots()


def xor_classifier(outputs=1):
    X = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    y = np.array([0, 1, 1, 0])
    if outputs == 1:
        net = Network([2, 8, 1], activation="tanh", output_activation="sigmoid",
                      loss="binary_cross_entropy", seed=0)
        net.fit(X, y, epochs=2000, learning_rate=0.5)
    else:
        net = Network([2, 8, 2], activation="tanh", output_activation="softmax",
                      loss="cross_entropy", seed=0)
        net.fit(X, np.eye(2)[y], epochs=2000, learning_rate=0.5)
    return net, X, y


def test_docstring_examples():
    result = doctest.testmod(cyprop.plot, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 6
    assert result.failed == 0


def test_history_curves(ax):
    history = History(np.array([1.0, 0.5, 0.01]), np.array([1.1, 0.6, 0.2]),
                      np.full(3, 0.1), best_epoch=3, stopped_early=False)
    assert plot_history(history, ax=ax) is ax
    training, validation = ax.get_lines()[:2]
    np.testing.assert_array_equal(training.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(training.get_ydata(), [1.0, 0.5, 0.01])
    np.testing.assert_array_equal(validation.get_ydata(), [1.1, 0.6, 0.2])
    assert ax.get_yscale() == "log"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "training", "validation", "best epoch (3)"]


def test_history_from_a_list_of_losses(ax):
    plot_history([0.5, 0.4, 0.3], ax=ax)
    assert len(ax.get_lines()) == 1
    assert ax.get_yscale() == "linear"  # less than a factor of 10
    plot_history([0.5, -0.1], ax=Figure().subplots())  # a negative value: linear, no error
    with pytest.raises(ValueError, match="no epochs"):
        plot_history([], ax=ax)
    with pytest.raises(TypeError, match="log_scale must be"):
        plot_history([0.5, 0.4], ax=ax, log_scale="no")  # a string is truthy


def test_history_near_the_top_of_float64_chooses_its_scale_without_overflow():
    # 10 times the smaller loss overflows; pytest turns the RuntimeWarning
    # of an overflow into an error.
    ax = plot_history([1e308, 2e307], ax=Figure().subplots())
    assert ax.get_yscale() == "linear"


def test_two_class_boundary(ax):
    net, X, y = xor_classifier()
    assert plot_decision_boundary(net, X, y, ax=ax, resolution=30) is ax
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["class 0", "class 1"]
    # The filled contours span the grid, padded by 10% of the data's range.
    assert ax.get_xlim() == pytest.approx((-0.1, 1.1))
    assert ax.get_ylim() == pytest.approx((-0.1, 1.1))
    assert len(ax.figure.axes) == 2  # the plot and its colour bar


def test_multiclass_boundary_with_labels(ax):
    net, X, y = xor_classifier(outputs=2)
    labels = np.where(y == 1, "odd", "even")
    plot_decision_boundary(net, X, labels, ax=ax, resolution=30)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "class even", "class odd"]
    plot_decision_boundary(net, X, labels, ax=Figure().subplots(), classes=["even", "odd"])
    with pytest.raises(ValueError, match="not in classes"):
        plot_decision_boundary(net, X, labels, ax=ax, classes=["a", "b"])
    with pytest.raises(ValueError, match="2 classes but classes has 3"):
        plot_decision_boundary(net, X, labels, ax=ax, classes=["a", "b", "c"])


def test_untrained_network_draws_without_a_boundary():
    # All outputs on one side of the threshold: no line to draw, and no warning about it.
    net = Network.from_weights([np.zeros((2, 1))], [np.full(1, 3.0)], activation="sigmoid")
    plot_decision_boundary(net, [[0, 0], [1, 1]], [0, 1], ax=Figure().subplots())
    net = Network.from_weights([np.zeros((2, 3))], [np.array([0.0, 1.0, 0.0])],
                               activation="softmax")
    plot_decision_boundary(net, [[0, 0], [1, 1]], ax=Figure().subplots())


def test_regression_surface(ax):
    net = Network.from_weights([np.array([[1.0], [2.0]])], [np.zeros(1)], activation="identity")
    X = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
    plot_decision_boundary(net, X, X @ [1.0, 2.0], ax=ax, resolution=20)
    assert ax.figure.axes[1].get_ylabel() == "output 0"
    with pytest.raises(ValueError, match="output must be an integer in"):
        plot_decision_boundary(net, X, ax=Figure().subplots(), output=1)


def test_float32_network(ax):
    net = Network([2, 3, 1], activation="tanh", output_activation="sigmoid", dtype="float32",
                  seed=0)
    plot_decision_boundary(net, np.random.default_rng(0).normal(size=(10, 2)), ax=ax)


def test_bad_inputs(ax):
    with pytest.raises(ValueError, match="needs a network with 2 inputs; this one has 3"):
        plot_decision_boundary(Network([3, 1], seed=0), np.zeros((2, 3)), ax=ax)
    net = Network([2, 1], seed=0)
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples, 2\)"):
        plot_decision_boundary(net, np.zeros((2, 3)), ax=ax)
    with pytest.raises(ValueError, match="resolution must be an integer of at least 2"):
        plot_decision_boundary(net, np.zeros((2, 2)), ax=ax, resolution=1)
    with pytest.raises(ValueError, match="task must be"):
        plot_decision_boundary(net, np.zeros((2, 2)), ax=ax, task="clustering")
    with pytest.raises(ValueError, match="X has 2 samples but y has 3"):
        plot_decision_boundary(net, np.zeros((2, 2)), [0, 1, 0], ax=ax)


def test_pyplot_axes_by_default():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        ax = plot_history([3.0, 1.2, 0.27])  # log scale, ticks labelled 3x10^-1 and so on
        assert plt.fignum_exists(ax.figure.number)
        # The axis labels and log-scale tick labels stay inside the picture.
        ax.figure.canvas.draw()
        drawn = ax.get_tightbbox(ax.figure.canvas.get_renderer())
        assert drawn.x0 >= 0 and drawn.y0 >= 0
    finally:
        plt.close("all")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "cyprop\[plot\]"'):
        plot_history([1.0, 0.5])
    with pytest.raises(ImportError, match="cyprop.plot needs matplotlib"):
        plot_decision_boundary(Network([2, 1], seed=0), np.zeros((2, 2)))
