"""Learning quality: cyprop's estimators against scikit-learn's MLP, same settings.

For each data set and optimizer, both libraries train the same architecture
(one hidden layer of 100 relu units) with the same optimizer, learning rate,
batch size, L2 penalty alpha, epoch budget and stopping rule, on the same
standard-scaled train/test split; each seed draws a new split, shared by both,
and seeds both models' initial weights. The script prints the test accuracy
(classification) or test R² (regression) as mean and standard deviation over
the seeds, in percent, and the mean paired difference cyprop - scikit-learn
with its standard error. Only scikit-learn's bundled or generated data sets
are used: nothing is downloaded.

    python benchmarks/bench_quality.py [--seeds 5] [--data digits,iris] [--optimizers adam]
"""

import argparse
import statistics
import time
import warnings

from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
    make_friedman1,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

from cyprop.sklearn import NetworkClassifier, NetworkRegressor
from machine import describe, limit_threads

HIDDEN = (100,)
ALPHA = 1e-4
MAX_ITER = 200
BATCH_SIZE = "auto"  # min(200, n_samples) in both libraries
TOL = 1e-4
N_ITER_NO_CHANGE = 10
TEST_SIZE = 0.25

DATASETS = {
    "digits": ("classification", lambda: load_digits(return_X_y=True)),
    "breast_cancer": ("classification", lambda: load_breast_cancer(return_X_y=True)),
    "iris": ("classification", lambda: load_iris(return_X_y=True)),
    "wine": ("classification", lambda: load_wine(return_X_y=True)),
    "diabetes": ("regression", lambda: load_diabetes(return_X_y=True)),
    "make_regression": ("regression", lambda: make_regression(
        n_samples=1000, n_features=20, n_informative=10, noise=10.0, random_state=0)),
    "friedman1": ("regression", lambda: make_friedman1(
        n_samples=1000, noise=1.0, random_state=0)),
}

# name: (cyprop settings, scikit-learn settings), the same update rule in both.
OPTIMIZERS = {
    "adam": (dict(optimizer="adam", learning_rate=1e-3),
             dict(solver="adam", learning_rate_init=1e-3)),
    # scikit-learn's default "sgd" is Nesterov momentum 0.9 at a constant rate.
    "sgd-nesterov": (dict(optimizer="nesterov", learning_rate=1e-2),
                     dict(solver="sgd", learning_rate_init=1e-2, momentum=0.9,
                          nesterovs_momentum=True, learning_rate="constant")),
    "lbfgs": (dict(optimizer="lbfgs"), dict(solver="lbfgs")),
}


def models(task, optimizer, seed):
    """The cyprop estimator and scikit-learn's, with the same settings."""
    ours, theirs = OPTIMIZERS[optimizer]
    shared = dict(hidden_layer_sizes=HIDDEN, activation="relu", alpha=ALPHA,
                  batch_size=BATCH_SIZE, max_iter=MAX_ITER, tol=TOL,
                  n_iter_no_change=N_ITER_NO_CHANGE, shuffle=True, random_state=seed)
    if task == "classification":
        return (NetworkClassifier(**shared, **ours), MLPClassifier(**shared, **theirs))
    return (NetworkRegressor(**shared, **ours), MLPRegressor(**shared, **theirs))


def split(task, X, y, seed):
    """A seeded train/test split, standard-scaled on the training part (targets too,
    for regression, which leaves R² unchanged)."""
    stratify = y if task == "classification" else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, random_state=seed, stratify=stratify)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    if task == "regression":
        mean, scale = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - mean) / scale, (y_test - mean) / scale
    return X_train, X_test, y_train, y_test


def evaluate(model, X_train, X_test, y_train, y_test):
    """Test score in percent, epochs (or iterations) run, and seconds to fit."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Runs that use the whole epoch budget warn in both libraries alike.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    return 100.0 * model.score(X_test, y_test), model.n_iter_, seconds


def summary(values):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--data", default=",".join(DATASETS),
                        help="comma-separated data sets (default: all)")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                        help="comma-separated optimizers (default: all)")
    arguments = parser.parse_args()
    datasets = arguments.data.split(",")
    optimizers = arguments.optimizers.split(",")
    for name in datasets:
        if name not in DATASETS:
            parser.error(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    for name in optimizers:
        if name not in OPTIMIZERS:
            parser.error(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")

    import sklearn

    for line in describe():
        print(line)
    print(f"scikit-learn {sklearn.__version__}; BLAS pinned to 1 thread")
    print(f"settings: hidden {HIDDEN} relu, alpha {ALPHA}, batch_size {BATCH_SIZE!r}, "
          f"max_iter {MAX_ITER}, tol {TOL}, n_iter_no_change {N_ITER_NO_CHANGE}, "
          f"test_size {TEST_SIZE}, seeds 0..{arguments.seeds - 1}")
    print("score: test accuracy (classification) or R² (regression), in percent; "
          "diff = cyprop - scikit-learn, mean of paired runs +- its standard error")
    print()
    columns = "{:<15} {:<13} {:>15} {:>15} {:>14} {:>11} {:>12}"
    print(columns.format("data set", "optimizer", "cyprop", "scikit-learn", "diff",
                         "epochs", "fit seconds"))
    print(columns.format("", "", "mean +- std", "mean +- std", "pp +- se", "cy / sk",
                         "cy / sk"))
    with limit_threads(1):
        for name in datasets:
            task, load = DATASETS[name]
            X, y = load()
            for optimizer in optimizers:
                scores = {"cyprop": [], "sklearn": []}
                epochs = {"cyprop": [], "sklearn": []}
                seconds = {"cyprop": [], "sklearn": []}
                for seed in range(arguments.seeds):
                    data = split(task, X, y, seed)
                    for library, model in zip(("cyprop", "sklearn"),
                                              models(task, optimizer, seed)):
                        score, n_iter, fit_seconds = evaluate(model, *data)
                        scores[library].append(score)
                        epochs[library].append(n_iter)
                        seconds[library].append(fit_seconds)
                ours, theirs = summary(scores["cyprop"]), summary(scores["sklearn"])
                differences = [a - b for a, b in zip(scores["cyprop"], scores["sklearn"])]
                difference, spread = summary(differences)
                error = spread / len(differences) ** 0.5
                print(columns.format(
                    name, optimizer,
                    f"{ours[0]:.2f} +- {ours[1]:.2f}",
                    f"{theirs[0]:.2f} +- {theirs[1]:.2f}",
                    f"{difference:+.2f} +- {error:.2f}",
                    f"{statistics.fmean(epochs['cyprop']):.0f} / "
                    f"{statistics.fmean(epochs['sklearn']):.0f}",
                    f"{statistics.median(seconds['cyprop']):.2f} / "
                    f"{statistics.median(seconds['sklearn']):.2f}",
                ), flush=True)


if __name__ == "__main__":
    main()
