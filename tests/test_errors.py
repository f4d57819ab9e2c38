"""Bad input raises a clear ValueError or TypeError that names the problem."""

import copy

import numpy as np
import pytest

from cyprop import Network
from cyprop.optimizers import LBFGS, SGD, StepDecay

X_GOOD = np.zeros((4, 3))
Y_GOOD = np.zeros((4, 1))


@pytest.fixture
def net():
    return Network([3, 4, 1], seed=0)


@pytest.mark.parametrize("layer_sizes, error, message", [
    ([3, 0, 1], ValueError, r"layer_sizes\[1\] must be at least 1"),
    ([3, -2, 1], ValueError, r"layer_sizes\[1\] must be at least 1"),
    ([3], ValueError, "at least an input and an output"),
    ([], ValueError, "at least an input and an output"),
    ([3, 4.5, 1], TypeError, r"layer_sizes\[1\] must be an integer"),
    ([3, True, 1], TypeError, r"layer_sizes\[1\] must be an integer"),
    ("341", TypeError, "sequence of integers"),
    (3, TypeError, "sequence of integers"),
    ([3, 2**31, 1], ValueError, "at most"),
])
def test_bad_layer_sizes(layer_sizes, error, message):
    with pytest.raises(error, match=message):
        Network(layer_sizes)


@pytest.mark.parametrize(("layer_sizes", "count"), [
    ([100_000] * 3, "20,000,200,000"),
    ([2**31 - 1] * 2, "4,611,686,016,279,904,256"),
    ([46_341, 46_341], "2,147,534,622"),  # just past the limit
])
def test_too_many_parameters_are_refused_before_allocating(layer_sizes, count):
    message = (rf"layer_sizes \[{', '.join(map(str, layer_sizes))}\] need {count} weights and "
               r"biases; a network has at most 2,147,483,647")
    with pytest.raises(ValueError, match=message):
        Network(layer_sizes)


@pytest.mark.parametrize("options, error, message", [
    ({"activation": "softplus"}, ValueError, "unknown activation 'softplus'"),
    ({"activation": "softmax"}, ValueError, "'softmax' is for the output layer only"),
    ({"output_activation": "softmax"}, ValueError, "softmax output needs at least 2 units"),
    ({"loss": "cross_entropy"}, ValueError, "needs output_activation='softmax'"),
    ({"loss": "binary_cross_entropy", "output_activation": "tanh"}, ValueError,
     "needs output_activation='sigmoid'"),
    ({"activation": 3}, TypeError, "activation must be"),
    ({"output_activation": "swish"}, ValueError, "unknown output_activation 'swish'"),
    ({"activation": ["tanh"]}, ValueError, "activation has 1 entries but the network has 2"),
    ({"activation": ["tanh", "relu"]}, ValueError, "output_activation is required"),
    ({"activation": ["tanh", "nope"], "output_activation": "relu"}, ValueError,
     r"unknown activation\[1\] 'nope'"),
    ({"loss": "hinge"}, ValueError, "unknown loss 'hinge'"),
    ({"reduction": "max"}, ValueError, "unknown reduction 'max'"),
    ({"dtype": "float16"}, TypeError, "dtype must be 'float32' or 'float64'"),
    ({"dtype": "int64"}, TypeError, "dtype must be 'float32' or 'float64'"),
    ({"dtype": "not a dtype"}, TypeError, "dtype must be 'float32' or 'float64'"),
    ({"seed": -1}, ValueError, "seed must be at least 0"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"init": "zeros"}, ValueError, "unknown init 'zeros'"),
])
def test_bad_constructor_options(options, error, message):
    with pytest.raises(error, match=message):
        Network([3, 4, 4, 1], **options)


@pytest.mark.parametrize("X, error, message", [
    (np.zeros((4, 5)), ValueError, "X has 5 columns but the network expects 3 features"),
    (np.zeros(3), ValueError, r"X must be 2-D .*X\.reshape\(1, -1\)"),
    (np.zeros((2, 2, 3)), ValueError, "X must be 2-D"),
    (np.zeros((0, 3)), ValueError, "X has no samples"),
    (np.array([[0, np.nan, 1]] * 4), ValueError,
     r"X contains NaN or infinity \(first at index \(0, 1\)\)"),
    (np.array([[0, np.inf, 1]] * 4), ValueError, "X contains NaN or infinity"),
    (np.array([["a", "b", "c"]] * 4), TypeError, "X must hold real numbers"),
    (np.array([[0, 1, 1], [0, "one", 1]] * 2, dtype=object), TypeError,
     r"does not convert to float: \[1, 1\] holds 'one'$"),
    (np.zeros((4, 3), dtype=complex), TypeError, "X must hold real numbers"),
    ([[0, 1, 1], [0, 1]], TypeError, "X must be an array of numbers"),
])
def test_bad_features(net, X, error, message):
    with pytest.raises(error, match=message):
        net.fit(X, Y_GOOD[: len(X)] if len(X) <= 4 else Y_GOOD)
    with pytest.raises(error, match=message):
        net.predict(X)


@pytest.mark.parametrize("y, error, message", [
    (np.zeros((3, 1)), ValueError, "X has 4 samples but y has 3"),
    (np.zeros((4, 2)), ValueError, "y has 2 columns but the network has 1 output$"),
    (np.zeros((4, 1, 1)), ValueError, "y must be 2-D"),
    (np.array([[0.0], [np.nan], [1], [0]]), ValueError, "y contains NaN or infinity"),
    (np.array([[0.0], [-np.inf], [1], [0]]), ValueError, "y contains NaN or infinity"),
    (np.array([["x"]] * 4), TypeError, "y must hold real numbers"),
])
def test_bad_targets(net, y, error, message):
    for method in (net.fit, net.loss, net.gradients):
        with pytest.raises(error, match=message):
            method(X_GOOD, y)


def parameter_bits(net):
    return [w.view(np.uint64 if w.dtype == np.float64 else np.uint32).copy()
            for w in net.weights + net.biases]


@pytest.fixture
def checks_in_loop(monkeypatch):
    """Records, for each call of the core's epoch loop, whether it checked X."""
    from cyprop._kernels import kernels_for
    calls = []

    def recording(train_epochs):
        def recorded(*args, **kwargs):
            # check_inputs, before the scratch of the split hidden layer
            calls.append(args[-2])
            return train_epochs(*args, **kwargs)
        return recorded

    for dtype in ("float32", "float64"):
        kernels = kernels_for(np.dtype(dtype))
        monkeypatch.setattr(kernels, "train_epochs", recording(kernels.train_epochs))
    return calls


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layer_sizes, n_rows, options", [
    ([3, 4, 1], 60, {"batch_size": 60}),  # the tiny network's native loop, full batch
    ([3, 4, 1], 60, {"batch_size": 7, "shuffle": False}),
    ([3, 4, 1], 60, {"batch_size": 7, "shuffle": True}),
    ([3, 4, 1], 60, {"batch_size": 8, "optimizer": "adam"}),
    ([3, 300, 2], 2500, {"batch_size": 250, "optimizer": "momentum", "shuffle": True}),
    ([3, 300, 2], 2500, {"batch_size": 2500, "optimizer": "sgd"}),
    ([3, 4, 1], 17, {"batch_size": 3, "optimizer": "adam"}),  # checked before training
    ([3, 300, 2], 60, {"batch_size": 7}),  # checked before training
])
def test_fit_refuses_values_not_finite_and_leaves_the_network_as_it_was(
        dtype, layer_sizes, n_rows, options, checks_in_loop):
    """X's values are checked as the first epoch reads each batch (or before
    training, when X is small beside the parameters, whose saving would then
    cost more): a bad one in any batch is reported as before training, and
    the parameters, the optimizer's state and the shuffling generator are as
    they were."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (n_rows, 3))
    y = rng.uniform(0, 1, (n_rows, layer_sizes[-1]))
    net = Network(layer_sizes, seed=0, dtype=dtype)
    net.fit(X, y, epochs=2, learning_rate=0.1, **options)
    n_params = sum(w.size for w in net.weights + net.biases)
    # the parameters and the optimizer's buffers (none before the first fit)
    assert checks_in_loop[0] == (X.size >= 2 * n_params) and not any(checks_in_loop[1:])
    copies = 1 + {"sgd": 0, "momentum": 1, "adam": 2}[options.get("optimizer", "sgd")]
    last = n_rows - 1
    for row, column, bad in [(0, 0, np.nan), (n_rows // 2, 1, np.inf),
                             (last - 1, 2, -np.inf), (9, 1, 1e300)]:
        spoiled = X.copy()
        spoiled[row, column] = bad
        spoiled[last, 2] = np.nan  # a later one: the message names the first
        first = (row, column) if bad != 1e300 or dtype == "float32" else (last, 2)
        before = copy.deepcopy(net)
        checks_in_loop.clear()
        with pytest.raises(ValueError, match=rf"X contains NaN or infinity \(first at index "
                                             rf"\({first[0]}, {first[1]}\)\)"):
            net.fit(spoiled, y, epochs=3, learning_rate=0.1, **options)
        assert checks_in_loop == ([True] if X.size >= 2 * copies * n_params else [])
        for got, expected in zip(parameter_bits(net), parameter_bits(before)):
            np.testing.assert_array_equal(got, expected)
        # the same training from here on gives the same bits
        net.fit(X, y, epochs=2, learning_rate=0.1, **options)
        before.fit(X, y, epochs=2, learning_rate=0.1, **options)
        for got, expected in zip(parameter_bits(net), parameter_bits(before)):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("options", [
    {"optimizer": "lbfgs", "batch_size": None},
    {"learning_rate": 0.1, "validation_fraction": 0.25},
    {"learning_rate": 0.1, "early_stopping": True},
    {"learning_rate": 1e30},  # diverges on the first batch, before the bad one
])
def test_fit_refuses_values_not_finite_whatever_the_options(options):
    X = np.random.default_rng(4).uniform(-1, 1, (16, 3))
    X[12, 2] = np.nan
    net = Network([3, 4, 1], seed=0)
    before = parameter_bits(net)
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index "
                                         r"\(12, 2\)\)"):
        net.fit(X, np.zeros(16), epochs=2, **{"batch_size": 4, **options})
    for got, expected in zip(parameter_bits(net), before):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n_rows", [4, 60])  # checked before training, and in the loop
@pytest.mark.parametrize("batch_size", [None, 2])
def test_partial_fit_refuses_values_not_finite(n_rows, batch_size, checks_in_loop):
    X = np.random.default_rng(5).uniform(-1, 1, (n_rows, 3))
    y = np.zeros((n_rows, 1))
    net = Network([3, 4, 1], seed=0)
    net.partial_fit(X, y, optimizer="adam", learning_rate=0.1)
    before = copy.deepcopy(net)
    spoiled = X.copy()
    spoiled[n_rows - 1, 1] = np.inf
    checks_in_loop.clear()
    with pytest.raises(ValueError, match=rf"X contains NaN or infinity \(first at index "
                                         rf"\({n_rows - 1}, 1\)"):
        net.partial_fit(spoiled, y, optimizer="adam", learning_rate=0.1, batch_size=batch_size)
    assert checks_in_loop == ([True] if n_rows == 60 else [])
    net.partial_fit(X, y, optimizer="adam", learning_rate=0.1)
    before.partial_fit(X, y, optimizer="adam", learning_rate=0.1)
    for got, expected in zip(parameter_bits(net), parameter_bits(before)):
        np.testing.assert_array_equal(got, expected)


def test_a_pandas_missing_value_is_named_with_its_position(net):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame({"a": [0.0, 1.0, 0.0, 1.0], "b": [0.0, 0.0, None, 1.0],
                      "c": [1.0, 1.0, 1.0, 1.0]}, dtype="Float64")
    with pytest.raises(TypeError, match=r"\[2, 1\] holds <NA> \(a missing value: fill or "
                                        r"drop those first\)"):
        net.predict(X)


HINT = (r"; for class labels 0 to {}, one-hot encode them: "
        r"np\.eye\({}\)\[labels\.ravel\(\)\.astype\(int\)\]$")


@pytest.mark.parametrize("labels", [[0, 3, 9, 1], [0.0, 3.0, 9.0, 1.0]])
def test_one_column_of_labels_for_several_outputs_gets_a_one_hot_hint_that_works(labels):
    net = Network([3, 4, 10], seed=0)
    y = np.array(labels).reshape(-1, 1)
    with pytest.raises(ValueError, match="y has 1 column but the network has 10 outputs"
                                         + HINT.format(9, 10)):
        net.fit(X_GOOD, y)
    net.fit(X_GOOD, np.eye(10)[y.ravel().astype(int)])  # the hint's code


@pytest.mark.parametrize("y", [[0, 1, 2, 1], [0, 1, 0.5, 1], [0, -1, 1, 0], [0, 1, np.nan, 0]])
def test_targets_that_are_not_class_labels_get_no_one_hot_hint(y):
    net = Network([3, 2], seed=0, activation="identity")
    for shaped in (np.array(y), np.array(y).reshape(-1, 1)):
        with pytest.raises(ValueError) as raised:
            net.fit(X_GOOD, shaped)
        assert "one-hot" not in str(raised.value)


def test_one_dimensional_targets_need_one_output():
    net = Network([3, 2], seed=0)
    with pytest.raises(ValueError, match=r"y must be 2-D with shape \(n_samples, 2\), got an "
                                         r"array of shape \(4,\)" + HINT.format(1, 2)):
        net.fit(X_GOOD, np.zeros(4))


def test_float64_values_too_large_for_float32():
    net = Network([3, 1], dtype="float32", seed=0)
    with pytest.raises(ValueError, match="within the range of float32"):
        net.predict(np.full((1, 3), 1e300))


@pytest.mark.parametrize("options, error, message", [
    ({"learning_rate": 0}, ValueError, "learning_rate must be a finite number greater than 0"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate must be a finite number greater than 0"),
    ({"learning_rate": np.nan}, ValueError, "learning_rate must be a finite number"),
    ({"learning_rate": "fast"}, TypeError, "learning_rate must be a real number"),
    ({"epochs": 0}, ValueError, "epochs must be at least 1"),
    ({"epochs": 2.0}, TypeError, "epochs must be an integer"),
    ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
    ({"batch_size": "all"}, TypeError, "batch_size must be an integer"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ({"early_stopping": "no"}, TypeError, "early_stopping must be True or False, got 'no'"),
    ({"early_stopping": 1}, TypeError, "early_stopping must be True or False, got 1"),
    ({"verbose": -1}, ValueError, "verbose must be at least 0"),
    ({"verbose": "yes"}, TypeError, "verbose must be an integer"),
    ({"learning_rate": np.inf}, ValueError, "learning_rate must be a finite number"),
    ({"learning_rate": True}, TypeError, "learning_rate must be a real number"),
    ({"epochs": True}, TypeError, "epochs must be an integer"),
    ({"epochs": -3}, ValueError, "epochs must be at least 1"),
    ({"epochs": 2**31}, ValueError, "epochs must be at most"),
    ({"epochs": np.int64(0)}, ValueError, "epochs must be at least 1"),
    ({"shuffle": 1}, TypeError, "shuffle must be True or False"),
    ({"shuffle": None}, TypeError, "shuffle must be True or False"),
    ({"patience": 0}, ValueError, "patience must be at least 1"),
    ({"patience": True}, TypeError, "patience must be an integer"),
    ({"patience": 10.0}, TypeError, "patience must be an integer"),
    ({"min_delta": -1.0}, ValueError, "min_delta must be a finite number of at least 0"),
    ({"min_delta": np.nan}, ValueError, "min_delta must be a finite number"),
    ({"min_delta": "0"}, TypeError, "min_delta must be a real number"),
    ({"callbacks": 3}, TypeError, "callbacks must be a callable or a list"),
])
def test_bad_fit_options(net, options, error, message):
    before = net.weights[0].copy()
    with pytest.raises(error, match=message):
        net.fit(X_GOOD, Y_GOOD, **options)
    np.testing.assert_array_equal(net.weights[0], before)


def test_fit_options_of_numpy_types_train_as_plain_ones():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    plain, numpy_typed = Network([3, 2, 1], seed=0), Network([3, 2, 1], seed=0)
    expected = plain.fit(X, y, epochs=3, learning_rate=0.1, shuffle=False,
                         patience=2, min_delta=0.0, verbose=0)
    got = numpy_typed.fit(X, y, epochs=np.int64(3), learning_rate=np.float64(0.1),
                          shuffle=np.bool_(False), patience=np.int64(2), min_delta=0,
                          verbose=np.int64(0))
    np.testing.assert_array_equal(got.loss, expected.loss)
    np.testing.assert_array_equal(numpy_typed.weights[0], plain.weights[0])


@pytest.mark.parametrize("weights, biases, error, message", [
    ([np.ones((2, 3)), np.ones((4, 1))], [np.ones(3), np.ones(1)], ValueError,
     r"weights\[1\] has 4 rows but layer 0 has 3 outputs"),
    ([np.ones((2, 3))], [np.ones(4)], ValueError,
     r"biases\[0\] must have shape \(3,\) or \(1, 3\)"),
    ([np.ones((2, 3))], [np.ones(3), np.ones(1)], ValueError, "1 weight matrices but 2 bias"),
    ([np.ones(3)], [np.ones(3)], ValueError, r"weights\[0\] must be 2-D"),
    ([], [], ValueError, "weights is empty"),
    (np.ones((2, 3)), [np.ones(3)], TypeError, "weights must be a list"),
    ([np.full((2, 3), np.nan)], [np.ones(3)], ValueError, r"weights\[0\] contains NaN"),
    ([np.ones((2, 0))], [np.ones(0)], ValueError, "at least 1"),
    ([np.ones((0, 3))], [np.ones(3)], ValueError,
     r"weights\[0\] has shape \(0, 3\): a layer needs at least 1 input and 1 output"),
    ([np.ones((2, 3)), np.ones((3, 0))], [np.ones(3), np.ones(0)], ValueError,
     r"weights\[1\] has shape \(3, 0\)"),
    ([[[1.0, 2.0], [3.0]]], [np.ones(2)], ValueError,
     r"weights\[0\] is ragged: its rows must all have the same length"),
    ([np.ones((2, 3)), [[1.0], [2.0, 3.0], [4.0]]], [np.ones(3), np.ones(1)], ValueError,
     r"weights\[1\] is ragged"),
    ([np.ones((2, 3))], [[[1.0, 2.0], [3.0]]], ValueError, r"biases\[0\] is ragged"),
])
def test_bad_from_weights(weights, biases, error, message):
    with pytest.raises(error, match=message):
        Network.from_weights(weights, biases)


@pytest.mark.parametrize("options, error, message", [
    ({"sample_weight": [1, 1, 1]}, ValueError, "X has 4 samples but sample_weight has 3"),
    ({"sample_weight": [1, -1, 1, 1]}, ValueError, "sample_weight must not be negative"),
    ({"sample_weight": [0, 0, 0, 0]}, ValueError, "sample_weight is all zeros"),
    ({"sample_weight": [[1, 1, 1, 1]]}, ValueError, "sample_weight must be 1-D"),
    ({"sample_weight": [1, np.nan, 1, 1]}, ValueError, "sample_weight contains NaN"),
    ({"sample_weight": ["a", "b", "c", "d"]}, TypeError, "sample_weight must hold real numbers"),
    ({"optimizer": "adagrad"}, ValueError, "unknown optimizer 'adagrad'"),
    ({"optimizer": 3}, TypeError, "optimizer must be a name"),
    ({"optimizer": "irprop-", "learning_rate": 0.1}, ValueError,
     "learning_rate does not apply to the irprop- optimizer"),
    ({"validation_data": X_GOOD}, TypeError, r"validation_data must be a tuple \(X_val, y_val\)"),
    ({"validation_data": (X_GOOD, np.zeros((3, 1)))}, ValueError,
     "X has 4 samples but validation_data: y has 3"),
    ({"validation_data": (np.zeros((2, 5)), np.zeros((2, 1)))}, ValueError,
     "validation_data: X has 5 columns"),
    ({"validation_fraction": 0}, ValueError, "validation_fraction must be a finite number"),
    ({"validation_fraction": 1.5}, ValueError, "leaves no training samples"),
    ({"patience": 0}, ValueError, "patience must be at least 1"),
    ({"optimizer": "lbfgs", "batch_size": 2}, ValueError,
     r"lbfgs optimizer steps on the full batch; leave batch_size None \(got 2 for 4"),
    ({"min_delta": -1}, ValueError, "min_delta must be a finite number of at least 0"),
    ({"callbacks": [1]}, TypeError, "callbacks must be callables"),
    ({"callbacks": [print, 1]}, TypeError, r"callbacks\[1\] is 1"),
    ({"callbacks": 5}, TypeError, "callbacks must be a callable or a list of callables, got 5"),
    ({"callbacks": "print"}, TypeError, "callbacks must be a callable or a list of callables"),
])
def test_bad_training_options(net, options, error, message):
    before = net.weights[0].copy()
    with pytest.raises(error, match=message):
        net.fit(X_GOOD, Y_GOOD, **options)
    np.testing.assert_array_equal(net.weights[0], before)


@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_validation_split_without_weight_on_one_side_is_refused_before_training(
        optimizer, early_stopping):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.random(20)
    for part in ("held out for validation", "left to train on"):
        net = Network([3, 4, 1], seed=0, reduction="mean")
        before, generator = net._params.copy(), net._rng.bit_generator.state
        order = copy.deepcopy(net._rng).permutation(20)  # the split fit will draw
        held = order[:10]
        weights = np.zeros(20)
        weights[order[10:] if part == "held out for validation" else held] = 1.0
        with pytest.raises(ValueError, match=f"every sample {part} has sample_weight 0; "
                                             "change validation_fraction=0.5, or give "
                                             "validation_data$"):
            net.fit(X, y, epochs=3, sample_weight=weights, validation_fraction=0.5,
                    optimizer=optimizer, early_stopping=early_stopping)
        np.testing.assert_array_equal(net._params, before)
        assert net._rng.bit_generator.state == generator


def test_learning_rate_given_twice():
    from cyprop.optimizers import Adam

    with pytest.raises(ValueError, match="both to fit and inside the optimizer"):
        Network([3, 1]).fit(X_GOOD, Y_GOOD, learning_rate=0.1, optimizer=Adam())


@pytest.mark.parametrize("make, error, message", [
    (lambda o: o.SGD(learning_rate=0), ValueError, r"learning_rate must be in \(0.0, inf\)"),
    (lambda o: o.SGD(momentum=1.0), ValueError, r"momentum must be in \[0.0, 1.0\)"),
    (lambda o: o.SGD(nesterov=True), ValueError, "nesterov=True needs a momentum"),
    (lambda o: o.SGD(schedule="step"), TypeError, "schedule must be"),
    (lambda o: o.Adam(beta2=1.0), ValueError, "beta2 must be in"),
    (lambda o: o.Adam(epsilon=0), ValueError, "epsilon must be in"),
    (lambda o: o.IRPropMinus(min_step=2, max_step=1), ValueError, "min_step .* exceeds max_step"),
    (lambda o: o.IRPropMinus(initial_step=100.0, max_step=0.01), ValueError,
     r"initial_step \(100.0\) must lie within \[min_step, max_step\]"),
    (lambda o: o.IRPropMinus(initial_step=0.001, min_step=0.01), ValueError,
     "initial_step .* must lie within"),
    (lambda o: o.LBFGS(max_corrections=0), ValueError, "max_corrections must be at least 1"),
    (lambda o: o.StepDecay(step_size=0), ValueError, "step_size must be at least 1"),
    (lambda o: o.InverseScaling(power_t=-1), ValueError, "power_t must be in"),
    (lambda o: o.SGD(weight_decay=-0.1), ValueError, "weight_decay must be in"),
])
def test_bad_optimizer_settings(make, error, message):
    from cyprop import optimizers

    with pytest.raises(error, match=message):
        make(optimizers)


@pytest.mark.parametrize("make, message", [
    (lambda o: o.Adam(beta1=0.99999999), "beta1=0.99999999 becomes 1.0 in float32"),
    (lambda o: o.Adam(beta2=1 - 1e-9), "beta2=.* becomes 1.0 in float32"),
    (lambda o: o.Adam(epsilon=1e-50), "epsilon=1e-50 becomes 0.0 in float32.*from 0"),
    (lambda o: o.SGD(learning_rate=1e-50), "learning_rate=1e-50 becomes 0.0 in float32"),
    (lambda o: o.SGD(momentum=0.999999999), "momentum=.* becomes 1.0 in float32.*from 1"),
    (lambda o: o.IRPropMinus(initial_step=1e300, max_step=1e300),
     "initial_step=1e\\+300 becomes inf in float32.*from infinity"),
    (lambda o: o.IRPropMinus(decrease=1e-50), "decrease=1e-50 becomes 0.0 in float32"),
    (lambda o: o.SGD(weight_decay=1e300), "weight_decay=1e\\+300 becomes inf in float32"),
])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_optimizer_settings_float32_cannot_hold_are_refused(make, message, method):
    from cyprop import optimizers

    optimizer = make(optimizers)
    net = Network([3, 2, 1], dtype="float32", seed=0)
    before = net.weights[0].copy()
    with pytest.raises(ValueError, match=message):
        getattr(net, method)(X_GOOD, Y_GOOD, optimizer=optimizer)
    np.testing.assert_array_equal(net.weights[0], before)
    # The same settings are fine in float64.
    getattr(Network([3, 2, 1], seed=0), method)(X_GOOD, Y_GOOD, optimizer=optimizer)


@pytest.mark.parametrize("make", [
    lambda o: o.Adam(beta1=0.0, beta2=0.0),    # the edge of a range that includes it
    lambda o: o.SGD(momentum=1e-50),           # 0 in float32, which is allowed
    lambda o: o.IRPropMinus(min_step=1e-50),     # 0 in float32, the default anyway
])
def test_optimizer_settings_at_the_edge_of_their_range_are_accepted(make):
    from cyprop import optimizers

    for dtype in ("float32", "float64"):
        Network([3, 2, 1], dtype=dtype, seed=0).fit(X_GOOD, Y_GOOD, optimizer=make(optimizers))


def test_cross_entropy_targets_must_be_probabilities():
    net = Network([3, 2], output_activation="softmax", loss="cross_entropy")
    with pytest.raises(ValueError, match=r"between 0 and 1 for the cross_entropy loss \(one-hot"):
        net.fit(X_GOOD, np.full((4, 2), 2.0))
    net = Network([3, 1], output_activation="sigmoid", loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="between 0 and 1 for the binary_cross_entropy loss, got"):
        net.loss(X_GOOD, -np.ones(4))


def test_partial_fit_refuses_lbfgs(net):
    with pytest.raises(ValueError, match="partial_fit does not support the lbfgs"):
        net.partial_fit(X_GOOD, Y_GOOD, optimizer="lbfgs")


def test_bad_weight_decay_in_loss(net):
    with pytest.raises(ValueError, match="weight_decay must be a finite number of at least 0"):
        net.loss(X_GOOD, Y_GOOD, weight_decay=-1)


def test_numpy_bools_are_accepted_for_flags(net):
    history = net.fit(X_GOOD, Y_GOOD, epochs=3, early_stopping=np.True_, shuffle=np.False_,
                      patience=1)
    assert history.best_epoch is not None


@pytest.mark.parametrize("seed, error, message", [
    ("x", TypeError, "seed must be an integer, got 'x'"),
    (1.5, TypeError, "seed must be an integer"),
    (-1, ValueError, "seed must be at least 0"),
])
def test_bad_check_gradients_seed(net, seed, error, message):
    with pytest.raises(error, match=message):
        net.check_gradients(X_GOOD, Y_GOOD, max_per_layer=2, seed=seed)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_refuses_what_overflowed_in_any_layer(dtype):
    big = np.finfo(dtype).max / 4
    weights = [np.full((1, 2), 8.0, dtype), np.ones((2, 1), dtype)]
    biases = [np.zeros(2, dtype), np.zeros(1, dtype)]
    message = "forward produced NaN or infinity from finite inputs"
    # The output overflows: forward refuses it as predict does.
    identity = Network.from_weights(weights, biases, activation="identity")
    with pytest.raises(FloatingPointError, match="predict produced NaN or infinity"):
        identity.predict([[big]])
    with pytest.raises(FloatingPointError, match=message):
        identity.forward([[big]])
    # Only the hidden layer overflows: predict's sigmoid output is finite, but
    # forward would hand back the hidden layer's infinities.
    hidden = Network.from_weights(weights, biases, activation="relu",
                                  output_activation="sigmoid")
    assert hidden.predict([[big]]).tolist() == [[1.0]]
    with pytest.raises(FloatingPointError, match=message):
        hidden.forward([[big]])
    assert all(np.isfinite(layer).all() for layer in hidden.forward([[1.0]]))


def test_from_weights_takes_big_endian_float32_as_float32():
    weights = [np.ones((2, 3), ">f4"), np.ones((3, 1), ">f4")]
    biases = [np.zeros(3, ">f4"), np.zeros(1, ">f4")]
    net = Network.from_weights(weights, biases)
    assert net.dtype == np.float32
    assert net.predict([[1.0, 2.0]]).dtype == np.float32


def test_a_seed_may_be_any_non_negative_integer():
    first, second = (Network([3, 2], seed=2**64 + 5) for _ in range(2))
    np.testing.assert_array_equal(first.weights[0], second.weights[0])
    assert not np.array_equal(first.weights[0], Network([3, 2], seed=2**64 + 6).weights[0])
    Network([3, 1], seed=0).check_gradients(X_GOOD, Y_GOOD, seed=2**40)
    with pytest.raises(ValueError, match="seed must be at least 0"):
        Network([3, 2], seed=-1)


@pytest.mark.parametrize("make", [lambda: SGD(schedule=StepDecay(step_size=2**31)),
                                  lambda: LBFGS(max_corrections=2**31)])
def test_optimizer_counts_are_bounded(make):
    with pytest.raises(ValueError, match="must be at most 2147483647"):
        make()
