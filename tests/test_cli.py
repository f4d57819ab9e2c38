"""The command line, run as ``python -m cyprop`` on small generated files.

The main paths (train, info, predict, exit statuses, --quiet, --plot, Ctrl-C)
run in a subprocess, as a user runs them; the many error messages are
checked by calling ``cyprop.cli.main`` in this process, which is faster.
"""

import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from cyprop import Network
from cyprop.cli import main
from tests.test_persistence import craft, good_header


def run(*arguments, cwd=None):
    """``python -m cyprop ARGUMENTS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "cyprop", *map(str, arguments)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def two_moons(n_samples, noise=0.15, seed=0):
    rng = np.random.default_rng(seed)
    upper = np.arange(n_samples) % 2 == 0
    t = rng.uniform(0, np.pi, n_samples)
    X = np.where(upper[:, None], np.c_[np.cos(t), np.sin(t)],
                 np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return X + rng.normal(0, noise, X.shape), upper


def write_csv(path, header, rows):
    with open(path, "w") as stream:
        stream.write(",".join(header) + "\n")
        for row in rows:
            stream.write(",".join(str(value) for value in row) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Data files shared by the tests: two moons (labels "lower"/"upper"), and a regression."""
    folder = tmp_path_factory.mktemp("cli")
    X, upper = two_moons(120)
    labels = np.where(upper, "upper", "lower")
    # The label column sits between the features, to exercise --target by name.
    write_csv(folder / "moons.csv", ["x1", "moon", "x2"],
              [(f"{a:.5f}", label, f"{b:.5f}") for (a, b), label in zip(X, labels)])
    rng = np.random.default_rng(1)
    Xr = rng.uniform(-1, 1, size=(150, 3)) * [1.0, 1000.0, 0.001]
    yr = 3 * Xr[:, 0] - 0.002 * Xr[:, 1] + 500 * Xr[:, 2] + 100
    np.savez(folder / "linear.npz", X=Xr, y=yr)
    return folder


HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def classifier(files):
    """A classifier trained from the CSV by the command line, quietly (with a plot, when
    matplotlib is installed)."""
    plot = ["--plot", files / "curves.png"] if HAVE_MATPLOTLIB else []
    result = run("train", files / "moons.csv", "--task", "classification", "--target", "moon",
                 "--hidden", "16,16", "--learning-rate", "0.02", "--epochs", "150",
                 "--validation-split", "0.25", "--seed", "0", "--quiet", *plot,
                 "--output", files / "moons.cyprop")
    assert result.returncode == 0, result.stderr
    return result, files / "moons.cyprop"


# --- train, info, predict ------------------------------------------------------


def test_train_quiet_prints_nothing_and_writes_the_model(classifier):
    result, model = classifier
    assert (result.stdout, result.stderr) == ("", "")
    net = Network.load(model)
    assert net.layer_sizes == (2, 16, 16, 1)
    assert net.activations == ("relu", "relu", "sigmoid")
    assert net.loss_name == "binary_cross_entropy"
    sidecar = json.loads((model.parent / "moons.cyprop.json").read_text())
    assert sidecar["task"] == "classification"
    assert sidecar["classes"] == ["lower", "upper"]
    assert sidecar["feature_names"] == ["x1", "x2"]
    assert sidecar["target_names"] == ["moon"]


def test_info_json(classifier, capsys):
    _, model = classifier
    assert main(["info", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layer_sizes"] == [2, 16, 16, 1]
    assert info["activations"] == ["relu", "relu", "sigmoid"]
    assert info["loss"] == "binary_cross_entropy"
    assert info["reduction"] == "mean"
    assert info["dtype"] == "float64"
    assert info["n_parameters"] == 2 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    assert info["format_version"] == 1
    assert info["checksum_ok"] is True
    assert info["classes"] == ["lower", "upper"]


def test_info_text(classifier, capsys):
    _, model = classifier
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "layer sizes  2 -> 16 -> 16 -> 1" in out
    assert "checksum     ok" in out
    assert "classes      lower, upper" in out


def test_predict_labels_and_probabilities(classifier, files):
    _, model = classifier
    result = run("predict", model, files / "moons.csv", "--proba")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "moon,proba_lower,proba_upper"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 120
    data = [line.split(",") for line in (files / "moons.csv").read_text().splitlines()[1:]]
    X = np.array([[float(x1), float(x2)] for x1, _, x2 in data])
    predicted = np.array([row[0] for row in rows])
    assert np.mean(predicted == np.array([label for _, label, _ in data])) > 0.9
    proba = np.array([[float(p) for p in row[1:]] for row in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # The saved network takes the raw features: the scaling was folded into its weights.
    np.testing.assert_array_equal(proba[:, 1], Network.load(model).predict(X)[:, 0])
    assert list(predicted) == ["upper" if p > 0.5 else "lower" for p in proba[:, 1]]


def test_predict_picks_the_trained_columns_by_name(classifier, files, tmp_path, capsys):
    _, model = classifier
    # Columns reordered, with an extra one: the sidecar's names select the features.
    write_csv(tmp_path / "new.csv", ["id", "x2", "x1"], [(7, 0.5, 1.5), (8, 0.9, -0.8)])
    assert main(["predict", str(model), str(tmp_path / "new.csv"), "--output",
                 str(tmp_path / "out.csv")]) == 0
    written = (tmp_path / "out.csv").read_text().splitlines()
    net = Network.load(model)
    expected = ["upper" if p > 0.5 else "lower"
                for p in net.predict([[1.5, 0.5], [-0.8, 0.9]])[:, 0]]
    assert written == ["moon", *expected]
    assert capsys.readouterr().out == ""


def test_regression_from_npz_folds_the_scaling(files, capsys):
    model = files / "linear.cyprop"
    code = main(["train", str(files / "linear.npz"), "--task", "regression", "--hidden",
                 "none", "--epochs", "60", "--learning-rate", "0.05", "--seed", "1",
                 "--validation-split", "0.2", "--progress", "lines", "--output", str(model)])
    assert code == 0
    captured = capsys.readouterr()
    assert "rmse" in captured.out and "validation: 30 samples" in captured.out
    assert captured.err.splitlines()[0].startswith("epoch  1/60  loss ")
    assert "val_rmse" in captured.err
    # A linear target of features on very different scales, learned by one linear layer.
    data = np.load(files / "linear.npz")
    net = Network.load(model)
    np.testing.assert_allclose(net.predict(data["X"])[:, 0], data["y"], atol=0.05)
    assert main(["predict", str(model), str(files / "linear.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "output"
    np.testing.assert_array_equal([float(v) for v in lines[1:]],
                                  net.predict(data["X"])[:, 0])


def test_softmax_classes_and_summary(tmp_path, capsys):
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [4, 0], [0, 4]])
    labels = np.repeat([10, 2, 3], 30)  # ordered by value: 2, 3, 10
    X = centres[np.repeat([0, 1, 2], 30)] + rng.normal(0, 0.5, (90, 2))
    write_csv(tmp_path / "three.csv", ["a", "b", "k"],
              [(a, b, k) for (a, b), k in zip(X, labels)])
    model = tmp_path / "three.cyprop"
    assert main(["train", str(tmp_path / "three.csv"), "--task", "classification",
                 "--epochs", "60", "--lr", "0.05", "--seed", "0", "--progress", "none",
                 "--validation-split", "0.2", "--output", str(model)]) == 0
    out = capsys.readouterr().out
    assert "a 2-32-3 network (relu, softmax; cross_entropy, adam)" in out
    assert "classes: 2, 3, 10" in out
    assert main(["predict", str(model), str(tmp_path / "three.csv")]) == 0
    predicted = capsys.readouterr().out.splitlines()
    assert predicted[0] == "k"
    assert np.mean(np.array(predicted[1:], dtype=int) == labels) > 0.95


def test_one_number_written_two_ways_is_refused_as_labels(tmp_path, capsys):
    """"1" and "1.0" are one class to a reader, so two classes of them would mislead."""
    rows = [(0.1 * i, ["0", "1", "1.0"][i % 3]) for i in range(30)]
    write_csv(tmp_path / "mixed.csv", ["a", "k"], rows)
    assert main(["train", str(tmp_path / "mixed.csv"), "--task", "classification",
                 "--epochs", "2", "--output", str(tmp_path / "mixed.cyprop")]) == 1
    error = capsys.readouterr().err
    assert "the class labels '1' and '1.0' are the same number written two ways" in error
    assert not (tmp_path / "mixed.cyprop").exists()


@pytest.mark.parametrize("source", ["csv", "npz"])
def test_labels_that_are_not_whole_numbers_are_refused_as_a_quantity(tmp_path, capsys, source):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = np.round(X.sum(axis=1))
    y[1] = 0.25
    if source == "csv":
        path = write_csv(tmp_path / "amounts.csv", ["a", "b", "y"],
                         [(a, b, value) for (a, b), value in zip(X, y)])
    else:
        path = tmp_path / "amounts.npz"
        np.savez(path, X=X, y=y)
    assert main(["train", str(path), "--task", "classification",
                 "--output", str(tmp_path / "m.cyprop")]) == 1
    err = capsys.readouterr().err
    label = "'0.25'" if source == "csv" else "0.25"
    assert (f"the class label {label} is not a finite whole number; a target of such numbers "
            "is a quantity, so train with --task regression") in err
    assert not (tmp_path / "m.cyprop").exists()


def test_many_classes_for_the_samples_are_warned_about(tmp_path, capsys):
    X = np.arange(60.0).reshape(30, 2)
    path = write_csv(tmp_path / "ids.csv", ["a", "b", "id"],
                     [(a, b, 1000 + i) for i, (a, b) in enumerate(X)])
    assert main(["train", str(path), "--task", "classification", "--epochs", "1",
                 "--progress", "none", "--output", str(tmp_path / "m.cyprop")]) == 0
    assert ("warning: " + str(path) + ": the target has 30 classes among 30 samples; if it "
            "is a quantity rather than labels, train with --task regression"
            ) in capsys.readouterr().err
    # Whole-number labels are classes all the same, as in scikit-learn.
    assert json.loads((tmp_path / "m.cyprop.json").read_text())["classes"][:2] == ["1000", "1001"]
    names = write_csv(tmp_path / "names.csv", ["a", "b", "name"],
                      [(a, b, f"n{i}") for i, (a, b) in enumerate(X)])
    assert main(["train", str(names), "--task", "classification", "--epochs", "1",
                 "--progress", "none", "--output", str(tmp_path / "m.cyprop")]) == 0
    assert ("the target has 30 classes among 30 samples; check that --target names the "
            "column of class labels") in capsys.readouterr().err


def test_numeric_labels_are_compared_and_ordered_exactly():
    from cyprop.cli import CommandError, _class_labels

    # one apart beyond 2**53, where float would call them equal
    ids = np.array(["9007199254740993", "9007199254740992", "9007199254740993"])
    classes, codes = _class_labels(ids, "ids.csv")
    assert classes == ["9007199254740992", "9007199254740993"]
    assert codes.tolist() == [1, 0, 1]
    assert _class_labels(np.array(["2e400", "1e400"]), "x.csv")[0] == ["1e400", "2e400"]
    for infinite in ("inf", "-Infinity"):
        with pytest.raises(CommandError, match=f"the class label '{infinite}' is not a "
                                               "finite whole number"):
            _class_labels(np.array(["1", infinite]), "x.csv")
    with pytest.raises(CommandError, match="the class label 'nan' among numbers reads as a "
                                           "missing value"):
        _class_labels(np.array(["1", "nan", "0"]), "x.csv")
    # among words, "nan" is a word
    assert _class_labels(np.array(["nan", "cat"]), "x.csv")[0] == ["cat", "nan"]


def test_validation_loss_is_unchanged_by_folding(files, capsys):
    """The summary's validation loss (raw features, folded weights) is the last epoch's."""
    assert main(["train", str(files / "moons.csv"), "--task", "classification", "--target",
                 "1", "--epochs", "20", "--seed", "3", "--validation-split", "0.3",
                 "--progress", "lines", "--output", str(files / "fold.cyprop")]) == 0
    captured = capsys.readouterr()
    last_epoch = captured.err.splitlines()[-1].split()
    summary = next(line for line in captured.out.splitlines() if line.startswith("validation"))
    val_loss = last_epoch[last_epoch.index("val_loss") + 1]
    assert f"loss {val_loss}," in summary


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_folding_that_loses_float32_digits_is_reported(tmp_path, capsys, dtype):
    # A timestamp: float32 spaces numbers near 1.7e9 by 128, its spread is 170.
    rng = np.random.default_rng(0)
    seconds = rng.uniform(0, 600, 300)
    write_csv(tmp_path / "times.csv", ["time", "value"],
              [(f"{1.7e9 + t:.1f}", f"{np.sin(t / 100):.6f}") for t in seconds])
    model = tmp_path / "times.cyprop"
    assert main(["train", str(tmp_path / "times.csv"), "--task", "regression", "--hidden",
                 "8", "--activation", "tanh", "--epochs", "30", "--seed", "0", "--dtype",
                 dtype, "--progress", "none", "--output", str(model)]) == 0
    err = capsys.readouterr().err
    if dtype == "float32":
        assert "warning: the saved network takes raw features in float32" in err
        assert "feature 'time' lies" in err and "--dtype float64" in err
    else:
        assert err == ""


def test_folding_that_loses_float32_digits_of_the_targets_is_reported(tmp_path, capsys):
    # Temperatures in kelvin: the targets, not the features, lie far from zero.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    np.savez(tmp_path / "kelvin.npz", X=X, y=293.15 + 0.01 * X[:, 0])
    assert main(["train", str(tmp_path / "kelvin.npz"), "--task", "regression", "--hidden",
                 "8", "--epochs", "30", "--seed", "0", "--dtype", "float32", "--progress",
                 "none", "--output", str(tmp_path / "kelvin.cyprop")]) == 0
    err = capsys.readouterr().err
    assert "warning: the saved network gives targets in their own units in float32" in err
    assert "the targets lie up to" in err and "feature" not in err


@pytest.mark.parametrize("column", [0, 1])
def test_values_beyond_float32_are_refused_before_training(tmp_path, capsys, column):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    y = X[:, 0].copy()
    if column == 0:
        X[:, 1] = 5e39 + rng.standard_normal(200) * 1e38
    else:
        y += 1e39
    np.savez(tmp_path / "huge.npz", X=X, y=y)
    model = tmp_path / "huge.cyprop"
    arguments = ["train", str(tmp_path / "huge.npz"), "--task", "regression", "--epochs", "5",
                 "--seed", "0", "--progress", "none", "--output", str(model)]
    assert main([*arguments, "--dtype", "float32"]) == 1
    what = "feature column 1" if column == 0 else "target column 0"
    assert capsys.readouterr().err == (
        f"cyprop train: error: {what} holds values beyond the range of float32, which the "
        "saved network takes and gives unscaled; train with --dtype float64\n")
    assert not model.exists()
    assert main([*arguments, "--dtype", "float64", "--quiet"]) == 0


def test_a_saved_network_that_overflows_is_reported_not_fatal(tmp_path, capsys, monkeypatch):
    # Targets within float32's range whose fold still overflows it: forced here,
    # since training rarely gets there.
    import cyprop.cli

    fold_targets = cyprop.cli._Standardisation.fold_targets

    def fold_and_overflow(self, net):
        fold_targets(self, net)
        net.biases[-1][...] = 3e38
        net.weights[-1][...] = 1e38

    monkeypatch.setattr(cyprop.cli._Standardisation, "fold_targets", fold_and_overflow)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 2))
    np.savez(tmp_path / "data.npz", X=X, y=X[:, 0])
    assert main(["train", str(tmp_path / "data.npz"), "--task", "regression", "--epochs", "2",
                 "--dtype", "float32", "--progress", "none", "--output",
                 str(tmp_path / "m.cyprop")]) == 0
    captured = capsys.readouterr()
    assert "warning: the saved network cannot give the targets in their own units" in (
        captured.err)
    assert "training: 50 samples, not scored: the saved network cannot take them" in (
        captured.out)


@pytest.mark.parametrize("options", [
    ["--optimizer", "lbfgs", "--epochs", "40"],            # full batch by default
    ["--optimizer", "irprop-", "--epochs", "40"],
    ["--optimizer", "nesterov", "--lr", "0.05", "--batch-size", "full", "--dtype", "float32"],
    ["--no-scale", "--hidden", "8,8", "--activation", "tanh", "--lr", "0.05", "--epochs", "30"],
    ["--early-stopping", "--patience", "3", "--epochs", "500", "--lr", "0.05"],
])
def test_training_options(files, capsys, options):
    model = files / "options.cyprop"
    assert main(["train", str(files / "moons.csv"), "--task", "classification", "--target",
                 "moon", "--seed", "0", "--progress", "none", *options,
                 "--output", str(model)]) == 0
    out = capsys.readouterr().out
    accuracy = re.search(r"^training: \d+ samples, loss \S+, accuracy (\S+)$", out, re.M)
    assert float(accuracy.group(1)) > 0.8
    if "--early-stopping" in options:
        assert "early stopping: kept the weights of epoch" in out
    if "float32" in options:
        assert Network.load(model).dtype == np.float32


def test_npz_labels_and_model_without_sidecar(files, tmp_path, capsys):
    X, upper = two_moons(60, seed=4)
    np.savez(tmp_path / "labelled.npz", features=X, kind=np.where(upper, "up", "down"))
    model = tmp_path / "labelled.cyprop"
    assert main(["train", str(tmp_path / "labelled.npz"), "--task", "classification",
                 "--x-key", "features", "--y-key", "kind", "--output-activation", "softmax",
                 "--epochs", "50", "--lr", "0.05", "--seed", "0", "-q",
                 "--output", str(model)]) == 0
    assert capsys.readouterr() == ("", "")
    assert Network.load(model).layer_sizes[-1] == 2
    assert main(["predict", str(model), str(tmp_path / "labelled.npz"), "--x-key",
                 "features"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "label" and set(lines[1:]) == {"down", "up"}
    # Without its sidecar, a softmax network predicts class indices.
    os.remove(tmp_path / "labelled.cyprop.json")
    assert main(["predict", str(model), str(tmp_path / "labelled.npz"), "--x-key",
                 "features", "--proba"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "label,proba_0,proba_1" and {line[0] for line in lines[1:]} == {"0", "1"}
    # A network saved from Python, with mse: raw outputs.
    Network([2, 3, 2], seed=0).save(tmp_path / "plain.cyprop")
    write_csv(tmp_path / "two.csv", ["p", "q"], [(0.5, 1.0)])
    assert main(["predict", str(tmp_path / "plain.cyprop"), str(tmp_path / "two.csv")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "output_0,output_1"
    assert main(["info", str(tmp_path / "plain.cyprop")]) == 0
    assert "regression (no sidecar: read from the output layer)" in capsys.readouterr().out


def test_module_docstrings():
    import doctest

    import cyprop.cli

    assert doctest.testmod(cyprop.cli).failed == 0
    for name in cyprop.cli.__all__:
        assert getattr(cyprop.cli, name).__doc__, name


# --- exit statuses and messages --------------------------------------------------


def test_bad_argument_exits_2(files):
    result = run("train", files / "moons.csv", "--task", "classification", "--hidden", "16,x")
    assert result.returncode == 2
    assert "argument --hidden: expected layer sizes such as 64,32" in result.stderr
    assert result.stdout == ""


def test_missing_file_exits_1_with_one_line(tmp_path):
    result = run("train", tmp_path / "absent.csv", "--task", "regression")
    assert result.returncode == 1
    assert result.stderr == f"cyprop train: error: {tmp_path / 'absent.csv'}: " \
                            "No such file or directory\n"


@pytest.mark.parametrize(("arguments", "message"), [
    (["info", "{dir}/damaged.cyprop"],
     "damaged.cyprop is damaged or truncated: its checksum does not match its contents"),
    (["predict", "{dir}/damaged.cyprop", "{dir}/moons.csv"], "damaged.cyprop is damaged"),
    (["info", "{dir}/moons.csv"], "moons.csv is not a cyprop model file"),
    (["info", "{dir}/absent.cyprop"], "absent.cyprop: No such file or directory"),
    (["info", "{dir}"], "is a folder, not a model file"),
    (["train", "{dir}/moons.csv", "--task", "regression", "--target", "moon"],
     "line 2, column 'moon': 'upper' is not a number (for class labels, use --task "
     "classification)"),
    (["train", "{dir}/moons.csv", "--task", "classification", "--target", "label"],
     "moons.csv has no column 'label' (for --target); its columns are x1, moon, x2"),
    (["train", "{dir}/moons.csv", "--task", "classification", "--target", "5"],
     "--target 5: "),
    (["train", "{dir}/moons.csv", "--task", "classification", "--target", "moon", "--output",
      "{dir}/no/such/folder/m.cyprop"], "the folder"),
    (["train", "{dir}/moons.csv", "--task", "classification", "--target", "moon", "--output",
      "{dir}/moons.csv/m.cyprop"], "moons.csv is a file, not a folder"),
    (["train", "{dir}/linear.npz", "--task", "regression", "--y-key", "Y"],
     "linear.npz has no array 'Y'; it holds X, y (choose with --y-key)"),
    (["train", "{dir}/ragged.csv", "--task", "regression"],
     "ragged.csv, line 3: 2 fields, but the header has 3"),
    (["train", "{dir}/holes.csv", "--task", "regression"],
     "holes.csv, line 3, column 'b': missing value"),
    (["train", "{dir}/nan.csv", "--task", "regression"],
     "nan.csv, line 2, column 'a': 'nan' is not a finite number"),
    (["train", "{dir}/empty.csv", "--task", "regression"], "empty.csv is empty"),
    (["train", "{dir}/semicolons.csv", "--task", "regression"],
     "its header reads as the single column 'a;b;c': for columns separated by ';', give "
     "--delimiter ';'"),
    (["train", "{dir}/semicolons.csv", "--task", "regression", "--target", "c"],
     "has no column 'c' (for --target); its columns are a;b;c; its header reads as the "
     "single column 'a;b;c': for columns separated by ';', give --delimiter ';'"),
    (["train", "{dir}/moons.csv", "--task", "regression", "--delimiter", ";"],
     "for columns separated by ',', give --delimiter ','"),
    (["train", "{dir}/spaced.csv", "--task", "regression"],
     "its header reads as the single column 'name of thing'\n"),
    (["train", "{dir}/binary.csv", "--task", "regression"], "binary.csv is not a text CSV file"),
    (["train", "{dir}/one_class.csv", "--task", "classification"],
     "the target holds a single class ('x')"),
    (["train", "{dir}/moons.npz", "--task", "classification"], "not a readable .npz file"),
    (["predict", "{dir}/moons.cyprop", "{dir}/ragged.csv"],
     "ragged.csv, line 3: 2 fields"),
    (["predict", "{dir}/moons.cyprop", "{dir}/three_columns.csv"],
     "three_columns.csv lacks the columns x1, x2 that"),
    (["predict", "{dir}/moons.cyprop", "{dir}/three_columns.csv", "--features", "a,b,c"],
     "three_columns.csv has 3 feature columns but "),
    (["predict", "{dir}/lone.cyprop", "{dir}/three_columns.csv"],
     "three_columns.csv has 3 feature columns but {dir}/lone.cyprop takes 2; choose them "
     "with --features\n"),
    (["predict", "{dir}/moons.cyprop", "{dir}/linear.npz"],
     "linear.npz: array 'X' has 3 features but "),
    (["predict", "{dir}/stale.cyprop", "{dir}/moons.csv"],
     "stale.cyprop.json belongs to another model file than"),
])
def test_file_and_data_errors_exit_1(classifier, files, capsys, arguments, message):
    write_csv(files / "ragged.csv", ["a", "b", "c"], [(1, 2, 3), (4, 5)])
    write_csv(files / "holes.csv", ["a", "b", "c"], [(1, 2, 3), (4, "", 6)])
    write_csv(files / "nan.csv", ["a", "b", "c"], [("nan", 2, 3)])
    write_csv(files / "one_class.csv", ["a", "b", "c"], [(1, 2, "x"), (3, 4, "x")])
    write_csv(files / "three_columns.csv", ["a", "b", "c"], [(1, 2, 3)])
    (files / "empty.csv").write_text("")
    (files / "semicolons.csv").write_text("a;b;c\n1;2;3\n")
    (files / "spaced.csv").write_text("name of thing\n1\n")
    (files / "binary.csv").write_bytes(bytes(range(256)))
    (files / "moons.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    _, model = classifier
    content = bytearray(model.read_bytes())
    content[100] ^= 0xFF
    (files / "damaged.cyprop").write_bytes(bytes(content))
    Network([2, 16, 16, 1], seed=5).save(files / "stale.cyprop")  # another model
    (files / "stale.cyprop.json").write_text((files / "moons.cyprop.json").read_text())
    Network([2, 3, 1], seed=0).save(files / "lone.cyprop")  # no sidecar
    argv = [argument.format(dir=files) for argument in arguments]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"cyprop {argv[0]}: error: ")
    assert message.format(dir=files) in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(("arguments", "message"), [
    (["train", "data.csv"], "the following arguments are required: --task"),
    # A mistyped option is reported as unknown, not as the option it misses.
    (["train", "data.csv", "--tsk", "regression"],
     "cyprop train: error: unrecognized arguments: --tsk regression\n"),
    (["train", "--task"], "argument --task: expected one argument"),
    (["train", "data.csv", "--task", "regression", "--epochs", "0"], "must be at least 1"),
    (["train", "data.csv", "--task", "regression", "--validation-split", "1"],
     "must be in [0, 1)"),
    (["train", "data.csv", "--task", "regression", "--activation", "softmax"],
     "invalid choice: 'softmax'"),
    (["train", "data.csv", "--task", "regression", "--optimizer", "lbfgs", "--lr", "0.1"],
     "--learning-rate does not apply to the lbfgs optimizer"),
    (["train", "data.csv", "--task", "regression", "--optimizer", "lbfgs", "--batch-size", "8"],
     "--batch-size does not apply to the lbfgs optimizer"),
    (["predict", "model.cyprop"], "the following arguments are required: data"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    ([], "usage: cyprop [-h] [--version] COMMAND ...\n"
         "cyprop: error: the following arguments are required: COMMAND\n"),
    (["--verison"], "usage: cyprop [-h] [--version] COMMAND ...\n"
                    "cyprop: error: unrecognized arguments: --verison\n"),
    # The subcommand's usage, which lists its options, comes with its unknown option.
    (["train", "data.csv", "--task", "regression", "--batch_size", "32"],
     "cyprop train: error: unrecognized arguments: --batch_size 32\n"),
    (["-q", "train", "data.csv", "--task", "regression"],
     "cyprop: error: unrecognized arguments: -q (a command's options go after its name)\n"),
])
def test_bad_arguments_exit_2(files, capsys, arguments, message):
    with pytest.raises(SystemExit) as raised:
        main(arguments)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if arguments[:1] == ["train"]:
        assert err.startswith("usage: cyprop train ")


def test_incompatible_loss_exits_2(files, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["train", str(files / "moons.csv"), "--task", "classification", "--target",
              "moon", "--loss", "cross_entropy"])
    assert raised.value.code == 2
    assert "loss 'cross_entropy' needs output_activation='softmax'" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is a POSIX signal")
def test_ctrl_c_exits_130_without_writing_a_model(tmp_path):
    X, upper = two_moons(20_000)
    np.savez(tmp_path / "many.npz", X=X, y=upper.astype(int))
    process = subprocess.Popen(
        [sys.executable, "-m", "cyprop", "train", str(tmp_path / "many.npz"), "--task",
         "classification", "--epochs", "1000", "--batch-size", "1", "--progress", "lines",
         "--output", str(tmp_path / "never.cyprop")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell may start background jobs with Ctrl-C ignored; restore the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = process.stderr.readline()  # training has started
        assert first.startswith("epoch    1/1000")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert err == "cyprop train: interrupted\n"
    assert not (tmp_path / "never.cyprop").exists()


def test_a_reader_that_goes_away_ends_predict_with_141_and_no_message(classifier, tmp_path):
    _, model = classifier
    X, _ = two_moons(200_000)
    np.savez(tmp_path / "many.npz", X=X)
    with subprocess.Popen(
        [sys.executable, "-m", "cyprop", "predict", str(model), str(tmp_path / "many.npz")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:
        try:
            assert process.stdout.readline() == "moon\n"
            process.stdout.close()  # as `| head -1` does
            err = process.stderr.read()
            process.wait(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 141
    assert err == ""


# --- progress, plot, bench, imports ---------------------------------------------


def test_progress_bar(files, capsys):
    pytest.importorskip("tqdm")
    assert main(["train", str(files / "moons.csv"), "--task", "classification", "--target",
                 "moon", "--epochs", "5", "--seed", "0", "--validation-split", "0.2",
                 "--progress", "bar", "--output", str(files / "bar.cyprop")]) == 0
    err = capsys.readouterr().err
    assert "training: 100%" in err and "5/5" in err and "val_accuracy" in err


def test_progress_bar_without_tqdm(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    argv = ["train", str(files / "moons.csv"), "--task", "classification", "--target", "moon",
            "--epochs", "3", "--output", str(files / "lines.cyprop")]
    assert main([*argv, "--progress", "bar"]) == 1
    assert 'needs tqdm; install it with: pip install "cyprop[cli]"' in capsys.readouterr().err
    assert main(argv) == 0  # auto: lines
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  loss ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")
def test_plot_writes_a_png(classifier, files):
    result, _ = classifier
    picture = files / "curves.png"
    assert result.stdout == ""  # --quiet
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < picture.stat().st_size < 300_000


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")
@pytest.mark.parametrize(("name", "message"), [
    ("p.jpgx", "matplotlib cannot write 'jpgx' pictures; name a file ending in one of: "),
    # listed by matplotlib, but its text needs TeX
    ("p.pgf", "p.pgf: matplotlib cannot write this picture here: 'xelatex' not found"),
])
def test_a_plot_that_cannot_be_written_is_refused_before_training(files, capsys, name,
                                                                  message):
    if name.endswith(".pgf") and shutil.which("xelatex") is not None:
        pytest.skip("xelatex can write pgf here")
    model = files / "unplotted.cyprop"
    assert main(["train", str(files / "moons.csv"), "--task", "classification", "--target",
                 "moon", "--plot", str(files / name), "--output", str(model)]) == 1
    err = capsys.readouterr().err
    assert message in err
    if name.endswith(".jpgx"):
        assert ".png" in err and ".svg" in err
    assert not model.exists()


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")
def test_plot_name_without_extension_gets_png_and_says_so(files, capsys):
    model = files / "plotted.cyprop"
    assert main(["train", str(files / "moons.csv"), "--task", "classification", "--target",
                 "moon", "--epochs", "2", "--progress", "none", "--plot",
                 str(files / "curves_unnamed"), "--output", str(model)]) == 0
    picture = files / "curves_unnamed.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (files / "curves_unnamed").exists()
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {picture}"


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")
def test_a_plot_that_fails_after_training_says_the_model_was_written(files, capsys,
                                                                    monkeypatch):
    from matplotlib.figure import Figure

    in_memory = Figure.savefig

    def no_space(figure, target, *args, **kwargs):
        if isinstance(target, io.BytesIO):  # the trial before training
            return in_memory(figure, target, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", no_space)
    model = files / "saved_without_plot.cyprop"
    assert main(["train", str(files / "moons.csv"), "--task", "classification", "--target",
                 "moon", "--epochs", "2", "--progress", "none", "--plot",
                 str(files / "p.png"), "--output", str(model)]) == 1
    err = capsys.readouterr().err
    assert err == (f"cyprop train: error: wrote {model} and {model}.json, but not the plot "
                   f"{files / 'p.png'}: No space left on device\n")
    assert Network.load(model).layer_sizes == (2, 32, 1)  # two classes: one sigmoid


def test_plot_without_matplotlib(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    model = files / "unplotted.cyprop"
    assert main(["train", str(files / "moons.csv"), "--task", "classification", "--target",
                 "moon", "--plot", str(files / "p.png"), "--output", str(model)]) == 1
    err = capsys.readouterr().err
    assert 'pip install "cyprop[plot]"' in err
    assert not model.exists()  # refused before training


def test_bench():
    result = run("bench", "--iterations", "300", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    numpy_row = next(line for line in lines if line.startswith("numpy"))
    cyprop_row = next(line for line in lines if line.startswith("cyprop (float64)"))
    # Same initial weights and algorithm: the same final loss.
    assert float(numpy_row.split()[-1]) == pytest.approx(float(cyprop_row.split()[-1]),
                                                         rel=1e-10)
    assert "x faster" in lines[-1]


def test_importing_cyprop_imports_neither_matplotlib_nor_tqdm():
    code = ("import sys, cyprop, cyprop.cli, cyprop.plot; "
            "print(sorted(m for m in ('matplotlib', 'tqdm') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "error"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


PCG64_OUT_OF_RANGE = {"bit_generator": "PCG64", "state": {"state": 2**200, "inc": 1},
                      "has_uint32": 0, "uinteger": 0}


@pytest.mark.parametrize(("crafted", "message"), [
    ({"raw_header": b"[" * 200_000 + b"]" * 200_000}, "nested too deeply"),
    ({"header": good_header(layer_sizes=[50_000, 40_000, 1], activations=["relu", "relu"])},
     "need 2,000,080,001 parameters (16,000,640,008 bytes), but it holds 13"),
    ({"header": good_header(layer_sizes=[40_000, 40_000, 1], activations=["relu", "relu"],
                            n_parameters=1_600_080_001)}, "but 136 bytes follow the header"),
    ({"header": good_header(layer_sizes=[100_000] * 3, activations=["relu", "relu"])},
     "need 20,000,200,000 weights and biases"),
    ({"header": good_header(rng_state=PCG64_OUT_OF_RANGE)}, "invalid generator state"),
    ({"payload": np.full(13, np.nan).tobytes()}, "parameter 0 is NaN or infinite"),
    ({"header": good_header(format_version=True)}, "format version True"),
])
@pytest.mark.parametrize("command", ["info", "predict"])
def test_crafted_model_files_exit_1_with_one_line(files, tmp_path, capsys, crafted, message,
                                                  command):
    path = craft(tmp_path / "crafted.cyprop", **crafted)
    argv = [command, str(path)] + ([str(files / "moons.csv")] if command == "predict" else [])
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"cyprop {command}: error: {path} ")
    assert message in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize("field, value", [
    ("feature_names", [1, 2]), ("feature_names", [None, "x2"]), ("target_names", [7]),
])
def test_sidecar_names_that_are_not_strings_exit_1_with_one_line(classifier, files, tmp_path,
                                                                 capsys, field, value):
    _, model = classifier
    copy = tmp_path / "copy.cyprop"
    copy.write_bytes(model.read_bytes())
    sidecar = json.loads((model.parent / "moons.cyprop.json").read_text())
    sidecar[field] = value
    (tmp_path / "copy.cyprop.json").write_text(json.dumps(sidecar))
    assert main(["predict", str(copy), str(files / "moons.csv")]) == 1
    captured = capsys.readouterr()
    assert captured.err == (f"cyprop predict: error: {tmp_path / 'copy.cyprop.json'} does not "
                            f"match {copy}: its task, classes or column names do not fit "
                            "the model's layer sizes, or are not text\n")


def test_deeply_nested_sidecar_exits_1_with_one_line(tmp_path, capsys):
    path = tmp_path / "m.cyprop"
    Network([2, 3, 1], seed=0).save(path)
    (tmp_path / "m.cyprop.json").write_text("[" * 200_000 + "]" * 200_000)
    assert main(["info", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.err == (f"cyprop info: error: {tmp_path / 'm.cyprop.json'} is damaged: "
                            "it is not valid JSON (nested too deeply)\n")


def test_help_shows_required_options_as_required(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["train", "--help"])
    assert raised.value.code == 0
    usage = capsys.readouterr().out
    assert " --task {classification,regression}" in usage
    assert "[--task" not in usage
