"""The scikit-learn estimators: scikit-learn's own checks, then ours."""

import doctest
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_digits,
    load_iris,
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    cross_val_score,
    train_test_split,
)
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import cyprop.sklearn  # noqa: E402
from cyprop.optimizers import LBFGS, SGD, Adam, InverseScaling  # noqa: E402
from cyprop.sklearn import NetworkClassifier, NetworkRegressor  # noqa: E402

# Most tests train briefly on purpose, which ConvergenceWarning reports;
# test_max_iter_warns_when_not_converged checks the warning itself.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=200, n_features=6, n_targets=2, noise=1.0,
                           random_state=0)
    return X, y / y.std(axis=0)


# --- scikit-learn's estimator checks -----------------------------------------

@parametrize_with_checks([
    NetworkClassifier(),
    NetworkRegressor(),
    NetworkClassifier(optimizer="irprop-", hidden_layer_sizes=(20,), activation="tanh"),
    NetworkRegressor(optimizer=SGD(momentum=0.9, schedule=InverseScaling()),
                     learning_rate=0.1, hidden_layer_sizes=(8, 8)),
])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


# --- import ------------------------------------------------------------------

def test_importing_cyprop_does_not_import_scikit_learn():
    code = "import sys, cyprop; print('sklearn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_missing_scikit_learn_says_how_to_install_it():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "try:\n"
        "    import cyprop.sklearn\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert 'pip install "cyprop[sklearn]"' in result.stdout


# --- the kinds of targets ----------------------------------------------------

def test_binary_uses_one_sigmoid_output():
    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    labels = np.array(["cat", "dog"])[y]
    clf = NetworkClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X, labels)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "sigmoid"
    assert clf.network_.loss_name == "binary_cross_entropy"
    assert list(clf.classes_) == ["cat", "dog"]
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, labels) > 0.9


def test_multiclass_uses_softmax(iris):
    X, y = iris
    clf = NetworkClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X, y)
    assert clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
    assert clf.network_.loss_name == "cross_entropy"
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-12)


def test_multilabel_uses_one_sigmoid_per_label():
    X, Y = make_multilabel_classification(n_samples=200, n_features=10, n_classes=4,
                                          random_state=0)
    clf = NetworkClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    clf.fit(X, Y)
    assert clf.n_outputs_ == 4 and clf.out_activation_ == "sigmoid"
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    prediction = clf.predict(X)
    assert prediction.shape == Y.shape and set(np.unique(prediction)) <= {0, 1}
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(prediction, (proba > 0.5).astype(int))
    assert (prediction == Y).mean() > 0.8


def test_multioutput_regression(regression):
    X, Y = regression
    reg = NetworkRegressor(hidden_layer_sizes=(32,), max_iter=500, random_state=0).fit(X, Y)
    assert reg.n_outputs_ == 2 and reg.out_activation_ == "identity"
    assert reg.predict(X).shape == (200, 2)
    assert reg.score(X, Y) > 0.95
    single = clone(reg).fit(X, Y[:, 0])
    assert single.predict(X).shape == (200,)


def test_a_column_vector_target_warns_and_is_flattened(regression):
    from sklearn.exceptions import DataConversionWarning

    X, Y = regression
    reg = NetworkRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    with pytest.warns(DataConversionWarning):
        reg.fit(X, Y[:, :1])
    assert reg.predict(X).shape == (200,)


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="at least 2 classes"):
        NetworkClassifier().fit([[0.0], [1.0]], [3, 3])


def test_continuous_labels_are_refused():
    with pytest.raises(ValueError, match="Unknown label type"):
        NetworkClassifier().fit([[0.0], [1.0]], [0.5, 1.5])


# --- learning quality (floors, never timings) -------------------------------

def test_digits_accuracy():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    model = make_pipeline(
        StandardScaler(),
        NetworkClassifier(hidden_layer_sizes=(64,), max_iter=60, random_state=0),
    )
    # One BLAS thread: these products are too small to share, and on a busy
    # machine a second thread only waits.
    with threadpoolctl.threadpool_limits(1):
        assert model.fit(X_train, y_train).score(X_test, y_test) > 0.9


def test_iris_accuracy():
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), NetworkClassifier(random_state=0))
    assert model.fit(X_train, y_train).score(X_test, y_test) > 0.9


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "irprop-", "lbfgs"])
def test_every_optimizer_learns(iris, optimizer):
    X, y = iris
    clf = NetworkClassifier(hidden_layer_sizes=(16,), optimizer=optimizer, random_state=0)
    assert clf.fit(X, y).score(X, y) > 0.9


# --- sample weights ------------------------------------------------------------

def test_sample_weight_zero_is_like_dropping_the_sample(iris):
    X, y = iris
    weights = np.ones(len(y))
    weights[::3] = 0.0
    # Full batches and no shuffling: the two runs take the same steps.
    settings = dict(hidden_layer_sizes=(8,), batch_size=1000, max_iter=50, random_state=0)
    weighted = NetworkClassifier(**settings).fit(X, y, sample_weight=weights)
    dropped = NetworkClassifier(**settings).fit(X[weights > 0], y[weights > 0])
    np.testing.assert_allclose(weighted.predict_proba(X), dropped.predict_proba(X),
                               rtol=1e-9, atol=1e-12)


def test_sample_weight_shifts_the_predictions():
    X, y = make_classification(n_samples=200, n_features=4, class_sep=0.3, random_state=0)
    plain = NetworkClassifier(hidden_layer_sizes=(8,), random_state=0).fit(X, y)
    heavy = NetworkClassifier(hidden_layer_sizes=(8,), random_state=0).fit(
        X, y, sample_weight=np.where(y == 1, 10.0, 1.0))
    assert heavy.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean() + 0.1
    assert (heavy.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()


def test_sample_weight_errors(iris):
    X, y = iris
    with pytest.raises(ValueError, match="[Nn]egative"):
        NetworkClassifier().fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        NetworkClassifier().fit(X, y, sample_weight=np.ones(3))


@pytest.mark.parametrize("make, bad_fit", [
    (lambda: NetworkClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
     lambda clf, X, y: clf.fit(X[:, :2], np.where(y == 0, "a", "b"),
                               sample_weight=-np.ones(len(y)))),
    (lambda: NetworkClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
     lambda clf, X, y: clf.fit(X, y, sample_weight=np.zeros(len(y)))),
    (lambda: NetworkRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
     lambda reg, X, y: reg.fit(X[:, :2], np.column_stack([y, y, y]), sample_weight=[1.0])),
    (lambda: NetworkRegressor(hidden_layer_sizes=(8,), max_iter=20, optimizer="sgd",
                              learning_rate=0.01, random_state=0),
     lambda reg, X, y: reg.set_params(learning_rate=1e30).fit(X, y * 1e30)),
])
def test_a_failed_fit_leaves_the_fitted_estimator_as_it_was(iris, make, bad_fit):
    X, y = iris
    estimator = make().fit(X, y)
    params = estimator.get_params()
    learnt = {name: value for name, value in vars(estimator).items() if name not in params}
    expected = (estimator.predict_proba(X) if hasattr(estimator, "predict_proba")
                else estimator.predict(X))
    with pytest.raises((ValueError, FloatingPointError)):
        bad_fit(estimator, X, y)
    assert vars(estimator).keys() - params.keys() == learnt.keys()
    assert all(vars(estimator)[name] is value for name, value in learnt.items())
    after = (estimator.predict_proba(X) if hasattr(estimator, "predict_proba")
             else estimator.predict(X))
    np.testing.assert_array_equal(after, expected)


def test_a_later_partial_fit_with_bad_input_changes_nothing(iris):
    X, y = iris
    clf = NetworkClassifier(random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    curve, weights = list(clf.loss_curve_), clf.network_.weights[0].copy()
    with pytest.raises(ValueError, match="[Nn]egative"):
        clf.partial_fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="not among classes_"):
        clf.partial_fit(X, y + 5)
    assert clf.n_iter_ == 1 and clf.loss_curve_ == curve
    np.testing.assert_array_equal(clf.network_.weights[0], weights)


def test_hyperparameters_may_be_any_real_numbers(iris):
    from fractions import Fraction

    X, y = iris
    clf = NetworkClassifier(alpha=Fraction(1, 10_000), tol=Fraction(1, 1000), max_iter=5,
                            random_state=0).fit(X, y)
    assert clf.n_iter_ >= 1


def test_a_failed_first_partial_fit_leaves_the_estimator_unfitted(iris):
    X, y = iris
    clf = NetworkClassifier()
    with pytest.raises(ValueError, match="[Nn]egative"):
        clf.partial_fit(X, y, classes=[0, 1, 2], sample_weight=-np.ones(len(y)))
    assert not hasattr(clf, "classes_") and not hasattr(clf, "n_features_in_")
    clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.n_iter_ == 1


# --- scikit-learn's tools -----------------------------------------------------

def test_pipeline_and_cross_val_score(iris):
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), NetworkClassifier(
        hidden_layer_sizes=(16,), learning_rate=0.01, random_state=0))
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85


def test_grid_search_in_two_processes(regression):
    X, Y = regression
    search = GridSearchCV(
        NetworkRegressor(batch_size=20, max_iter=100, random_state=0),
        {"hidden_layer_sizes": [(4,), (16,)]},
        cv=2, n_jobs=2,
    )
    search.fit(X, Y)
    assert search.best_params_["hidden_layer_sizes"] in [(4,), (16,)]
    assert search.best_estimator_.score(X, Y) > 0.8
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_pickle_round_trip(iris):
    X, y = iris
    clf = NetworkClassifier(hidden_layer_sizes=(8,), random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert copy.loss_curve_ == clf.loss_curve_
    # Training goes on identically: the optimizer's state travels with the network.
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))


def test_feature_names_are_recorded():
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = NetworkClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.feature_names_in_, X.columns)
    assert clf.n_features_in_ == 4
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X.rename(columns=str.upper))
    assert isinstance(X, pd.DataFrame)


# --- partial_fit ----------------------------------------------------------------

def test_partial_fit_needs_classes_first(iris):
    X, y = iris
    with pytest.raises(ValueError, match="classes must be given"):
        NetworkClassifier().partial_fit(X, y)
    clf = NetworkClassifier(random_state=0).partial_fit(X[:10], y[:10], classes=[0, 1, 2])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.n_outputs_ == 3
    with pytest.raises(ValueError, match="not among classes_"):
        clf.partial_fit(X[:2], [0, 7])
    with pytest.raises(ValueError, match="differs"):
        clf.partial_fit(X[:2], [0, 1], classes=[0, 1])


def test_partial_fit_passes_equal_fit_without_shuffling(iris):
    X, y = iris
    settings = dict(hidden_layer_sizes=(8,), batch_size=32, shuffle=False, random_state=3)
    with pytest.warns(ConvergenceWarning):
        fitted = NetworkClassifier(max_iter=5, **settings).fit(X, y)
    streamed = NetworkClassifier(**settings)
    for _ in range(5):
        streamed.partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_allclose(streamed.predict_proba(X), fitted.predict_proba(X),
                               rtol=1e-12)
    np.testing.assert_allclose(streamed.loss_curve_, fitted.loss_curve_, rtol=1e-12)
    assert streamed.n_iter_ == 5


def test_partial_fit_regressor_improves(regression):
    X, Y = regression
    reg = NetworkRegressor(hidden_layer_sizes=(16,), learning_rate=0.01, random_state=0)
    for start in range(0, 200, 50):
        reg.partial_fit(X[start:start + 50], Y[start:start + 50])
    first = reg.score(X, Y)
    for _ in range(20):
        for start in range(0, 200, 50):
            reg.partial_fit(X[start:start + 50], Y[start:start + 50])
    assert reg.score(X, Y) > max(first, 0.8)
    with pytest.raises(ValueError, match="outputs"):
        reg.partial_fit(X, Y[:, 0])


def test_partial_fit_is_unavailable_with_lbfgs_and_early_stopping():
    assert not hasattr(NetworkRegressor(optimizer="lbfgs"), "partial_fit")
    assert not hasattr(NetworkClassifier(optimizer=LBFGS()), "partial_fit")
    assert not hasattr(NetworkClassifier(early_stopping=True), "partial_fit")
    assert hasattr(NetworkClassifier(), "partial_fit")


@pytest.mark.parametrize(("estimator", "reason"), [
    (NetworkRegressor(optimizer="lbfgs"), "L-BFGS cannot train incrementally"),
    (NetworkClassifier(optimizer=LBFGS()), "L-BFGS cannot train incrementally"),
    (NetworkClassifier(early_stopping=True),
     "early_stopping=True holds out samples .*; set early_stopping=False to train incrementally"),
])
def test_unavailable_partial_fit_says_why(estimator, reason):
    name = type(estimator).__name__
    with pytest.raises(AttributeError, match=f"This '{name}' has no attribute 'partial_fit': "
                                             f"{reason}"):
        estimator.partial_fit([[0.0], [1.0]], [0, 1])
    # On the class, the method stays reachable for help() and signatures.
    assert "One pass over the samples given" in type(estimator).partial_fit.__doc__


# --- training controls ------------------------------------------------------------

def test_early_stopping_records_validation_scores(iris):
    X, y = iris
    clf = NetworkClassifier(hidden_layer_sizes=(16,), learning_rate=0.01, batch_size=16,
                            early_stopping=True, validation_fraction=0.2, max_iter=500,
                            random_state=0)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ < 500
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.8
    assert clf.best_loss_ is None
    plain = NetworkClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    with pytest.warns(ConvergenceWarning):
        plain.fit(X, y)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None


def test_early_stopping_regressor_uses_r2(regression):
    X, Y = regression
    reg = NetworkRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=500,
                           random_state=0).fit(X, Y)
    assert len(reg.validation_scores_) == reg.n_iter_
    assert 0.8 < reg.best_validation_score_ <= 1.0


def test_early_stopping_refuses_a_weightless_validation_set(iris):
    X, y = iris
    weights = np.zeros(len(y))
    weights[[0, 60, 120]] = 1.0
    clf = NetworkClassifier(early_stopping=True)
    # Most splits hold out 15 samples that all weigh 0; the loop ends at the first.
    with pytest.raises(ValueError, match="held out for validation has sample_weight 0"):
        for seed in range(20):
            clf.set_params(random_state=seed).fit(X, y, sample_weight=weights)


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("n_iter_no_change", [1, 3])
def test_tol_stops_training_where_scikit_learn_stops(iris, early_stopping, n_iter_no_change):
    X, y = iris
    settings = dict(hidden_layer_sizes=(8,), tol=10.0, n_iter_no_change=n_iter_no_change,
                    early_stopping=early_stopping, random_state=0)
    clf = NetworkClassifier(**settings).fit(X, y)
    # The first epoch improves on nothing; the next n_iter_no_change do not
    # improve by 10, and the one after them stops training.
    assert clf.n_iter_ == n_iter_no_change + 2
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.loss_ == clf.loss_curve_[-1]
    assert MLPClassifier(**settings).fit(X, y).n_iter_ == clf.n_iter_


def test_max_iter_warns_when_not_converged_at_the_callers_line(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match=r"reached max_iter=3 epochs before its "
                                                r"stopping rule: the training loss had not "
                                                r"gone more than n_iter_no_change=10 epochs"
                                          ) as caught:
        NetworkClassifier(max_iter=3, random_state=0).fit(X, y)
    assert [record.filename for record in caught] == [__file__]
    with pytest.warns(ConvergenceWarning, match="the validation score had not gone") as caught:
        NetworkRegressor(max_iter=3, early_stopping=True, random_state=0).fit(X, y)
    assert [record.filename for record in caught] == [__file__]


def test_same_random_state_same_model(iris):
    X, y = iris
    first = NetworkClassifier(hidden_layer_sizes=(8,), random_state=7).fit(X, y)
    second = NetworkClassifier(hidden_layer_sizes=(8,), random_state=7).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    other = NetworkClassifier(hidden_layer_sizes=(8,), random_state=8).fit(X, y)
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


def test_alpha_sets_weight_decay_per_batch(iris):
    X, y = iris
    clf = NetworkClassifier(hidden_layer_sizes=(4,), alpha=0.5, batch_size=50, max_iter=2,
                            random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.batch_size_ == 50
    assert clf.optimizer_ == Adam(weight_decay=0.5 / 50)
    clf.set_params(optimizer="lbfgs", batch_size="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, sample_weight=np.full(150, 2.0))
    assert clf.batch_size_ == 150
    assert clf.optimizer_.weight_decay == pytest.approx(0.5 / 300)


def test_learning_rate_and_optimizer_objects(iris):
    X, y = iris
    clf = NetworkClassifier(hidden_layer_sizes=(4,), optimizer="sgd", learning_rate=0.05,
                            alpha=0.0, max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.optimizer_ == SGD(learning_rate=0.05)
    clf.set_params(optimizer=SGD(momentum=0.5), learning_rate=0.2)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.optimizer_ == SGD(learning_rate=0.2, momentum=0.5)


@pytest.mark.parametrize("params, error, match", [
    (dict(activation="softmax"), ValueError, "activation"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer"),
    (dict(optimizer=3), TypeError, "optimizer"),
    (dict(hidden_layer_sizes=(4, 0)), ValueError, "hidden_layer_sizes"),
    (dict(hidden_layer_sizes="4"), TypeError, "hidden_layer_sizes"),
    (dict(alpha=-1.0), ValueError, "alpha"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size="big"), TypeError, "batch_size"),
    (dict(learning_rate=0.0), ValueError, "learning_rate"),
    (dict(learning_rate="adaptive"), TypeError, "schedule"),
    (dict(optimizer="lbfgs", learning_rate=0.1), ValueError, "learning_rate"),
    (dict(optimizer=Adam(weight_decay=0.1)), ValueError, "alpha"),
    (dict(validation_fraction=1.0), ValueError, "validation_fraction"),
    (dict(validation_fraction=np.nan, early_stopping=True), ValueError,
     "validation_fraction must be a finite"),
    (dict(tol=np.nan), ValueError, "tol must be a finite"),
    (dict(alpha=np.inf), ValueError, "alpha must be a finite"),
    (dict(learning_rate=np.nan), ValueError, "learning_rate must be a finite"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(shuffle="yes"), TypeError, "shuffle"),
])
def test_bad_parameters_are_reported_in_fit(iris, params, error, match):
    X, y = iris
    clf = NetworkClassifier(**params)  # __init__ never checks
    with pytest.raises(error, match=match):
        clf.fit(X, y)


def test_float32(iris):
    X, y = iris
    clf = NetworkClassifier(hidden_layer_sizes=(8,), learning_rate=0.01, dtype="float32",
                            random_state=0)
    clf.fit(X, y)
    assert clf.network_.dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32
    assert clf.score(X, y) > 0.9


def test_coefs_are_the_networks_weights(iris):
    X, y = iris
    clf = NetworkClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert [W.shape for W in clf.coefs_] == [(4, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(5,), (3,)]
    clf.coefs_[1][...] = 0.0
    clf.intercepts_[1][...] = 0.0
    np.testing.assert_allclose(clf.predict_proba(X), 1.0 / 3.0)


# --- documentation ------------------------------------------------------------------

def test_docstring_examples():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = doctest.testmod(cyprop.sklearn, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 15


def test_every_public_name_has_a_docstring():
    assert cyprop.sklearn.__doc__
    for name in cyprop.sklearn.__all__:
        estimator = getattr(cyprop.sklearn, name)
        assert estimator.__doc__ and "Examples" in estimator.__doc__
        for method in ("fit", "partial_fit", "predict"):
            assert "Examples" in getattr(estimator, method).__doc__, f"{name}.{method}"
    for method in ("predict_proba", "predict_log_proba"):
        assert "Examples" in getattr(NetworkClassifier, method).__doc__
