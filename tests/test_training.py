"""fit's optimizers, schedules, validation, early stopping, callbacks and partial_fit."""

import copy
import dataclasses

import numpy as np
import pytest

from cyprop import Network
from cyprop.optimizers import (
    LBFGS,
    SGD,
    Adam,
    Constant,
    InverseScaling,
    IRPropMinus,
    StepDecay,
    make_optimizer,
)

from . import reference

DTYPES = ["float32", "float64"]


def regression_data(n_samples=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n_samples, 3))
    y = np.column_stack([np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2], X[:, 0] - X[:, 2] ** 2])
    return X, y


def classification_data(n_samples=90, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n_samples)
    centers = np.array([[2, 0], [-1, 1.7], [-1, -1.7]])
    X = centers[labels] + rng.normal(0, 0.6, (n_samples, 2))
    return X, np.eye(3)[labels], labels


def small_net(dtype="float64", seed=0, **options):
    options.setdefault("activation", "tanh")
    options.setdefault("output_activation", "identity")
    return Network([3, 8, 2], dtype=dtype, seed=seed, **options)


# --- optimizers against the numpy oracle --------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", [
    SGD(learning_rate=0.01),
    SGD(learning_rate=0.01, momentum=0.9),
    SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
    Adam(learning_rate=0.01),
    IRPropMinus(),
    SGD(learning_rate=0.01, weight_decay=0.1),
], ids=["sgd", "momentum", "nesterov", "adam", "irprop-", "sgd-decay"])
def test_full_batch_epochs_match_numpy(dtype, optimizer):
    X, y = regression_data()
    net = small_net(dtype)
    weights = [W.astype(np.float64) for W in net.weights]
    biases = [b.astype(np.float64) for b in net.biases]
    history = net.fit(X, y, epochs=5, optimizer=optimizer)

    shapes = [a.shape for a in weights + biases]
    flat = np.concatenate([a.ravel() for a in weights + biases])
    buffers = [np.zeros_like(flat), np.zeros_like(flat)]
    if isinstance(optimizer, IRPropMinus):
        buffers[1][:] = optimizer.initial_step
    expected_losses = []
    for step in range(1, 6):
        parts = np.split(flat, np.cumsum([np.prod(s) for s in shapes])[:-1])
        W_list = [p.reshape(s) for p, s in zip(parts[:2], shapes[:2])]
        b_list = [p.reshape(s) for p, s in zip(parts[2:], shapes[2:])]
        activations = ["tanh", "identity"]
        expected_losses.append(reference.loss(X, y, W_list, b_list, activations,
                                              weight_decay=optimizer.weight_decay))
        dW, db = reference.gradients(X, y, W_list, b_list, activations,
                                     weight_decay=optimizer.weight_decay)
        g = np.concatenate([a.ravel() for a in dW + db])
        if isinstance(optimizer, Adam):
            reference.adam_step(flat, g, *buffers, 0.01, 0.9, 0.999, 1e-8, step)
        elif isinstance(optimizer, IRPropMinus):
            reference.irprop_minus_step(flat, g, *buffers, 1.2, 0.5, 0.0, 50.0)
        elif optimizer.momentum:
            reference.momentum_step(flat, g, buffers[0], 0.01, 0.9, optimizer.nesterov)
        else:
            flat -= 0.01 * g
    got = np.concatenate([a.ravel() for a in net.weights + net.biases])
    rtol = 1e-10 if dtype == "float64" else 2e-4
    np.testing.assert_allclose(history.loss, expected_losses, rtol=rtol)
    np.testing.assert_allclose(got, flat, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_minibatch_optimizers_learn(optimizer):
    X, y = regression_data(200)
    net = small_net(reduction="mean")
    rate = 0.01 if optimizer == "adam" else 0.05
    history = net.fit(X, y, epochs=150, learning_rate=rate, batch_size=16, optimizer=optimizer)
    assert history[-1] < 0.15 * history[0]


def test_irprop_solves_the_lesson_quickly():
    from cyprop.lesson import X, lesson_network, y

    net = lesson_network()
    history = net.fit(X, y, epochs=200, optimizer="irprop-")
    assert history[-1] < 0.01
    assert ((net.predict(X) > 0.5) == y).all()


def test_lbfgs_finds_the_least_squares_solution():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 4))
    noise = 0.1 * rng.standard_normal((50, 2))
    y = X @ rng.standard_normal((4, 2)) + rng.standard_normal(2) + noise
    net = Network([4, 2], activation="identity", seed=0)
    history = net.fit(X, y, epochs=100, optimizer="lbfgs")
    design = np.column_stack([X, np.ones(50)])
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(net.weights[0], solution[:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.biases[0], solution[4], rtol=1e-5, atol=1e-6)
    assert history[-1] <= history[0]
    assert len(history) < 100 and history.stopped_early


def test_lbfgs_on_a_hidden_layer_and_float32():
    X, y = regression_data()
    for dtype in DTYPES:
        net = small_net(dtype)
        start = net.loss(X, y)
        history = net.fit(X, y, epochs=60, optimizer=LBFGS(weight_decay=1e-4))
        assert net.loss(X, y) < 0.05 * start
        assert history.loss[-1] == pytest.approx(net.loss(X, y, weight_decay=1e-4), rel=1e-5)


@pytest.mark.parametrize("exception", [KeyboardInterrupt, TimeoutError])
def test_lbfgs_stopped_inside_its_line_search_keeps_the_last_accepted_iterate(
        monkeypatch, exception):
    """Whatever ends L-BFGS inside its objective (Ctrl-C, another signal's
    handler), the parameters are an iterate it accepted, not a trial point."""
    X, y = regression_data()
    net = small_net()
    accepted = [[p.copy() for p in net.weights + net.biases]]
    evaluate = Network._evaluate
    calls = []

    def failing_evaluate(self, *args):
        calls.append(None)
        if len(calls) == 6:
            raise exception("stopped")
        return evaluate(self, *args)

    def record(net, logs):
        accepted.append([p.copy() for p in net.weights + net.biases])

    monkeypatch.setattr(Network, "_evaluate", failing_evaluate)
    with pytest.raises(exception):
        net.fit(X, y, epochs=50, optimizer="lbfgs", callbacks=[record])
    assert len(accepted) > 1
    for now, then in zip(net.weights + net.biases, accepted[-1]):
        np.testing.assert_array_equal(now, then)


# --- schedules ------------------------------------------------------------------

def test_learning_rate_schedules():
    X, y = regression_data()
    history = small_net().fit(
        X, y, epochs=6, optimizer=SGD(learning_rate=0.01, schedule=StepDecay(2, 0.5)))
    np.testing.assert_allclose(history.learning_rate, [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])
    history = small_net().fit(
        X, y, epochs=4, optimizer=Adam(learning_rate=0.01, schedule=InverseScaling(0.5)))
    np.testing.assert_allclose(history.learning_rate, 0.01 / np.sqrt([1, 2, 3, 4]))


def test_schedule_continues_across_calls():
    X, y = regression_data()
    optimizer = SGD(learning_rate=0.01, schedule=StepDecay(2, 0.5))
    net = small_net()
    first = net.fit(X, y, epochs=3, optimizer=optimizer)
    second = net.fit(X, y, epochs=3, optimizer=optimizer)
    np.testing.assert_allclose(np.concatenate([first.learning_rate, second.learning_rate]),
                               0.01 * 0.5 ** (np.arange(6) // 2))


@pytest.mark.parametrize("verbose", [0, 2])
def test_history_owns_its_arrays(verbose, capsys):
    """One call of the training loop or several (verbose reports every 2 epochs): the
    history's arrays are whole, writable, their own, and untouched by later training."""
    X, y = regression_data()
    net = small_net()
    history = net.fit(X, y, epochs=5, learning_rate=0.01, verbose=verbose)
    for values in (history.loss, history.learning_rate):
        assert values.shape == (5,) and values.base is None and values.flags.writeable
    kept = history.loss.copy(), history.learning_rate.copy()
    net.fit(X, y, epochs=5, learning_rate=0.02, verbose=verbose)
    np.testing.assert_array_equal(history.loss, kept[0])
    np.testing.assert_array_equal(history.learning_rate, kept[1])
    assert (history.learning_rate == 0.01).all()
    assert len(capsys.readouterr().out.splitlines()) == (4 if verbose else 0)


# --- continuing, determinism, partial_fit ------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam", "nesterov", "irprop-"])
def test_fit_twice_equals_fit_once(optimizer):
    X, y = regression_data()
    once, twice = small_net(seed=4), small_net(seed=4)
    options = {"optimizer": optimizer, "batch_size": None if optimizer == "irprop-" else 7}
    once.fit(X, y, epochs=6, **options)
    twice.fit(X, y, epochs=2, **options)
    twice.fit(X, y, epochs=4, **options)
    for a, b in zip(once.weights + once.biases, twice.weights + twice.biases):
        np.testing.assert_array_equal(a, b)


def test_changing_the_optimizer_resets_its_state():
    X, y = regression_data()
    a, b = small_net(), small_net()
    a.fit(X, y, epochs=3, optimizer="adam")
    a.fit(X, y, epochs=3, optimizer=Adam(learning_rate=0.002))
    b.fit(X, y, epochs=3, optimizer="adam")
    fresh = copy.deepcopy(b)
    fresh._optimizer_state = None
    b.fit(X, y, epochs=3, optimizer=Adam(learning_rate=0.002))
    fresh.fit(X, y, epochs=3, optimizer=Adam(learning_rate=0.002))
    np.testing.assert_array_equal(b.weights[0], fresh.weights[0])
    np.testing.assert_array_equal(a.weights[0], b.weights[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_bits_different_seed_different_weights(dtype):
    X, y = regression_data()
    runs = []
    for seed in (11, 11, 12):
        net = small_net(dtype, seed=seed, reduction="mean")
        net.fit(X, y, epochs=5, batch_size=8, optimizer="adam", validation_fraction=0.2)
        runs.append(np.concatenate([p.ravel() for p in net.weights + net.biases]))
    assert runs[0].tobytes() == runs[1].tobytes()
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_partial_fit_over_batches_equals_fit(optimizer, reduction):
    X, y = regression_data(40)
    weights = np.random.default_rng(5).uniform(0.5, 2, 40)
    streamed, batched = small_net(reduction=reduction), small_net(reduction=reduction)
    losses = [streamed.partial_fit(X[i : i + 8], y[i : i + 8], weights[i : i + 8],
                                   learning_rate=0.01, optimizer=optimizer)
              for i in range(0, 40, 8)]
    history = batched.fit(X, y, epochs=1, learning_rate=0.01, batch_size=8, shuffle=False,
                          optimizer=optimizer, sample_weight=weights)
    for a, b in zip(streamed.weights + streamed.biases, batched.weights + batched.biases):
        np.testing.assert_array_equal(a, b)
    if reduction == "sum":
        assert sum(losses) == pytest.approx(history[0], rel=1e-12)


# --- validation, early stopping, callbacks, verbose -------------------------------

def test_validation_data_is_scored_every_epoch():
    X, y = regression_data(80)
    net = small_net(reduction="mean")
    history = net.fit(X[:60], y[:60], epochs=5, learning_rate=0.1, batch_size=10,
                      validation_data=(X[60:], y[60:]))
    assert history.val_loss.shape == (5,)
    assert history.val_loss[-1] == pytest.approx(net.loss(X[60:], y[60:]), rel=1e-12)


def test_weight_decay_counts_in_each_batch_loss_but_not_in_the_validation_loss():
    from cyprop.optimizers import SGD

    X, y = regression_data(80)
    decay = 0.5
    net, replay = small_net(), small_net()
    history = net.fit(X[:60], y[:60], epochs=1, batch_size=20, shuffle=False,
                      optimizer=SGD(learning_rate=0.05, weight_decay=decay),
                      validation_data=(X[60:], y[60:]))
    expected = 0.0
    for start in range(0, 60, 20):
        batch = slice(start, start + 20)
        expected += replay.loss(X[batch], y[batch], weight_decay=decay)
        replay.partial_fit(X[batch], y[batch],
                           optimizer=SGD(learning_rate=0.05, weight_decay=decay))
    assert history[0] == pytest.approx(expected, rel=1e-12)
    assert history.val_loss[0] == pytest.approx(net.loss(X[60:], y[60:]), rel=1e-12)
    assert history.val_loss[0] < 0.9 * net.loss(X[60:], y[60:], weight_decay=decay)


def test_validation_fraction_holds_out_samples():
    X, y = regression_data(50)
    net = small_net(reduction="mean")
    history = net.fit(X, y, epochs=3, learning_rate=0.1, validation_fraction=0.2)
    assert len(history.val_loss) == 3
    with pytest.raises(ValueError, match="leaves no training samples"):
        net.fit(X, y, validation_fraction=0.999)
    with pytest.raises(ValueError, match="not both"):
        net.fit(X, y, validation_fraction=0.2, validation_data=(X, y))


def test_early_stopping_restores_the_best_weights():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (40, 3))
    y = X[:, :2] + rng.normal(0, 0.5, (40, 2))  # noisy: a big net overfits
    X_val = rng.uniform(-1, 1, (40, 3))
    y_val = X_val[:, :2] + rng.normal(0, 0.5, (40, 2))
    net = Network([3, 64, 64, 2], activation="tanh", output_activation="identity",
                  reduction="mean", seed=1)
    snapshots = []
    history = net.fit(X, y, epochs=400, optimizer=Adam(learning_rate=0.01), batch_size=8,
                      validation_data=(X_val, y_val), early_stopping=True, patience=5,
                      callbacks=[lambda n, logs: snapshots.append(n.weights[0].copy())])
    assert history.stopped_early and len(history) < 400
    best = history.best_epoch
    assert history.val_loss[best - 1] == history.val_loss.min()
    assert len(history) == best + 5
    np.testing.assert_array_equal(net.weights[0], snapshots[best - 1])
    assert net.loss(X_val, y_val) == pytest.approx(history.val_loss.min(), rel=1e-12)


def test_callbacks_receive_logs_and_can_stop():
    X, y = regression_data()
    seen = []

    def stop_at_three(net, logs):
        seen.append(dict(logs))
        return logs["epoch"] == 3

    history = small_net().fit(X, y, epochs=10, learning_rate=0.01, callbacks=[stop_at_three])
    assert len(history) == 3 and history.stopped_early
    assert [log["epoch"] for log in seen] == [1, 2, 3]
    assert seen[0]["loss"] == history[0] and seen[0]["val_loss"] is None
    assert seen[0]["learning_rate"] == 0.01


def test_verbose_prints_train_and_validation_losses(capsys):
    X, y = regression_data()
    small_net().fit(X, y, epochs=4, learning_rate=0.01, verbose=2,
                    validation_data=(X[:10], y[:10]))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 2/4  loss ") and "val_loss" in lines[0]


# --- classification ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_classifies(dtype):
    X, Y, labels = classification_data()
    net = Network([2, 16, 3], activation="relu", output_activation="softmax",
                  loss="cross_entropy", reduction="mean", dtype=dtype, seed=0, init="he")
    net.fit(X, Y, epochs=60, batch_size=10, optimizer="adam", learning_rate=0.01)
    probabilities = net.predict(X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == labels).mean() > 0.95


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", [0.0, 2.0**5, 2.0**10, 2.0**20])
def test_cross_entropy_is_unchanged_by_a_common_shift_of_the_logits(dtype, shift):
    """Logits (L, L - 20, L - 21) give the same loss for every L, to double rounding.

    Each shifted logit is exact in float32 too, so any change with L comes from
    how the loss is computed, not from the inputs.
    """
    X = np.array([[1.0], [1.0], [1.0]])
    Y = np.eye(3)
    net = Network.from_weights([np.array([[shift, shift - 20.0, shift - 21.0]], dtype=dtype)],
                               [np.zeros(3, dtype)], activation="softmax",
                               loss="cross_entropy")
    log_sum = np.log1p(np.exp(-20.0) + np.exp(-21.0))
    want = 3 * log_sum + 20.0 + 21.0  # targets: the largest logit, then the two others
    assert net.loss(X, Y) == pytest.approx(want, rel=1e-14, abs=0)
    # The confident, right sample alone: a loss of 3e-9 that rounding must not swamp.
    assert net.loss(X[:1], Y[:1]) == pytest.approx(log_sum, rel=1e-14, abs=0)
    history = net.fit(X[:1], Y[:1], epochs=1, learning_rate=1e-30)  # the loss before the step
    assert history.loss[0] == pytest.approx(log_sum, rel=1e-14, abs=0)


def test_sigmoid_binary_cross_entropy_classifies():
    X, _, labels = classification_data()
    y = (labels == 0).astype(float)
    net = Network([2, 8, 1], activation="tanh", output_activation="sigmoid",
                  loss="binary_cross_entropy", reduction="mean", seed=0)
    net.fit(X, y, epochs=100, batch_size=10, optimizer="adam", learning_rate=0.01)
    assert ((net.predict(X)[:, 0] > 0.5) == (labels == 0)).mean() > 0.95


def test_extreme_inputs_give_no_overflow_warnings():
    # pytest turns warnings into errors, so a numpy overflow warning would fail here.
    for output, loss in [("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy")]:
        net = Network([2, 3], activation=output, loss=loss, seed=0)
        X = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
        y = np.array([[1, 0, 0], [0, 0, 1]]) if output == "softmax" else np.array(
            [[1, 0, 1], [0, 1, 0]])
        assert np.isfinite(net.predict(X)).all()
        assert np.isfinite(net.loss(X, y))
        dW, db = net.gradients(X, y)
        assert all(np.isfinite(g).all() for g in dW + db)


# --- divergence ------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
def test_divergence_names_the_epoch_and_keeps_finite_weights(optimizer):
    X, y = regression_data()
    X = X * 30
    net = Network([3, 16, 2], activation="relu", output_activation="identity", seed=0)
    with pytest.raises(FloatingPointError, match=r"diverged in epoch (\d+) of 500"):
        net.fit(X, y, epochs=500, learning_rate=0.5, batch_size=4, optimizer=optimizer)
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)
    # The network stays usable: training can go on with a sensible rate.
    net.fit(X / 30, y, epochs=2, learning_rate=1e-4, optimizer="sgd")


def test_overflowing_activations_are_refused_not_returned():
    net = Network([2, 2, 2, 1], activation="identity", dtype="float32", seed=0)
    for W in net.weights:
        W[...] = [[1e30, -1e30], [1e30, -1e30]][: W.shape[0]] if W.shape[1] == 2 else 1e30
    X = np.array([[1.0, 1.0]])
    with pytest.raises(FloatingPointError, match="overflowed the range of float32"):
        net.predict(X)
    with pytest.raises(FloatingPointError, match="loss produced NaN or infinity"):
        net.loss(X, [[0.0]])


def test_divergence_restores_parameters_with_a_finite_loss():
    X, y = regression_data()
    X = X * 30
    net = Network([3, 16, 2], activation="relu", output_activation="identity", seed=0)
    with pytest.raises(FloatingPointError, match="the last whose loss was finite"):
        net.fit(X, y, epochs=500, learning_rate=0.5, batch_size=4)
    assert np.isfinite(net.loss(X, y))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", ["validation_data", "callbacks", "verbose"])
def test_full_batch_divergence_restores_the_same_with_a_loop_per_epoch(dtype, option,
                                                                       capsys):
    """Options that return to Python after every epoch restore what fit without
    them does: the start of the epoch before the one whose full batch failed."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(40, 4)) * 10, rng.normal(size=(40, 2))
    options = {"validation_data": {"validation_data": (X[:3], y[:3])},
               "callbacks": {"callbacks": [lambda net, logs: None]},
               "verbose": {"verbose": 1}}[option]
    restored = []
    for extra in [{}, options]:
        net = Network([4, 6, 2], activation="identity", dtype=dtype, seed=3)
        with pytest.raises(FloatingPointError) as caught:
            net.fit(X, y, epochs=1000, learning_rate=1.0, **extra)
        restored.append((str(caught.value), [p.tobytes() for p in net.weights + net.biases]))
        assert np.isfinite(net.loss(X, y))
    capsys.readouterr()
    assert "the last whose loss was finite" in restored[0][0]
    assert restored[1] == restored[0]


def test_irprop_divergence_points_at_its_step_sizes():
    X, y = regression_data()
    net = Network([3, 16, 2], activation="relu", output_activation="identity", seed=0)
    with pytest.raises(FloatingPointError, match="smaller max_step or initial_step") as caught:
        net.fit(X, y, epochs=200, optimizer=IRPropMinus(initial_step=1e200, increase=1e50,
                                                        max_step=1e300))
    assert "learning rate" not in str(caught.value)
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)


@pytest.mark.parametrize("schedule", [Constant(), InverseScaling(0.7), StepDecay(3, 0.3)])
def test_schedule_rates_match_each_epoch(schedule):
    rates = schedule.rates(0.2, 5, 12)
    np.testing.assert_allclose(rates, [schedule(0.2, 5 + e) for e in range(12)], rtol=1e-15)


def test_lbfgs_starting_at_a_stationary_point_reports_its_loss():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0.0, 0.0, 1.0, 1.0])
    net = Network.from_weights([-np.ones((1, 4)), np.ones((4, 1))], [np.zeros(4), np.zeros(1)],
                               activation="relu", output_activation="sigmoid",
                               loss="binary_cross_entropy", reduction="mean")
    history = net.fit(X, y, epochs=50, optimizer="lbfgs")
    assert len(history) == 1 and history.stopped_early
    assert history[-1] == pytest.approx(net.loss(X, y))


@pytest.mark.parametrize("name, expected", [
    ("sgd", SGD(learning_rate=0.05)),
    ("momentum", SGD(learning_rate=0.05, momentum=0.9)),
    ("nesterov", SGD(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("adam", Adam(learning_rate=0.05)),
])
def test_named_optimizers_take_fits_learning_rate(name, expected):
    assert make_optimizer(name, 0.05) == expected
    default = make_optimizer(name, None)
    assert default.learning_rate == (0.001 if name == "adam" else 0.1)
    assert dataclasses.replace(default, learning_rate=0.05) == expected


def test_a_named_optimizer_is_made_once_for_each_learning_rate():
    # Optimizers are frozen, so fits that name the same one may share it.
    assert make_optimizer("sgd", 0.05) is make_optimizer("sgd", 0.05)
    assert make_optimizer("adam", None) is make_optimizer("adam", None)
    assert make_optimizer("sgd", 0.05) is not make_optimizer("momentum", 0.05)
    assert make_optimizer("sgd", 0.25).learning_rate == 0.25
    for step in range(200):  # more rates than are kept
        assert make_optimizer("sgd", 0.001 * (step + 1)).learning_rate == 0.001 * (step + 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_optimizer("sgd", 0.05).learning_rate = 1.0  # type: ignore[misc]


def test_a_learning_rate_of_true_is_refused_after_one_of_one():
    make_optimizer("sgd", 1)
    make_optimizer("sgd", 1.0)
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        make_optimizer("sgd", True)
