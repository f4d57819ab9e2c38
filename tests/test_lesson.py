"""The lesson reproduced: its printed numbers, and its program run side by side."""

import subprocess
import sys

import numpy as np
import pytest

from cyprop.lesson import X, lesson_network, run_lesson, y

from . import lesson_numpy

# As printed in the lesson, at iterations 0, 1000, ..., 9000.
LESSON_LOSSES = [
    0.38038349310856134, 0.24997670387612728, 0.24972913712906816,
    0.24883556540840868, 0.2430179563469606, 0.2023128270301176,
    0.1342851241018072, 0.03423820536202099, 0.012399204540152104,
    0.006836030803331477,
]
LESSON_OUTPUTS = [[0.07125372], [0.93446125], [0.93473281], [0.06774813]]


@pytest.fixture(scope="module")
def run():
    return run_lesson()


@pytest.fixture(scope="module")
def numpy_run():
    return lesson_numpy.run()


def test_initial_weights_are_the_lessons():
    np.random.seed(1)
    expected = [np.random.rand(3, 4), np.random.rand(1, 4), np.random.rand(4, 1),
                np.random.rand(1, 1)]
    net = lesson_network()
    W1, W2 = net.weights
    b1, b2 = net.biases
    for got, want in zip([W1, b1, W2, b2], expected):
        np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_printed_losses_to_ten_significant_digits(run):
    assert run.losses.shape == (10_000,)
    np.testing.assert_allclose(run.losses[::1000], LESSON_LOSSES, rtol=1e-10)


def test_printed_outputs(run):
    np.testing.assert_allclose(run.outputs, LESSON_OUTPUTS, rtol=0, atol=5e-9)


def test_every_iteration_matches_the_lessons_program(run, numpy_run):
    losses, outputs, (W1, b1, W2, b2) = numpy_run
    np.testing.assert_allclose(run.losses, losses, rtol=1e-10)
    np.testing.assert_allclose(run.outputs, outputs, rtol=1e-10)
    net = run.network
    for got, want in zip(net.weights + net.biases, [W1, W2, b1[0], b2[0]]):
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_float32_learns_the_same_function(run):
    run32 = run_lesson(dtype="float32")
    assert run32.outputs.dtype == np.float32
    np.testing.assert_allclose(run32.losses[::1000], LESSON_LOSSES, rtol=1e-3)
    np.testing.assert_allclose(run32.outputs, run.outputs, atol=1e-4)


def test_trained_network_solves_xor(run):
    assert ((run.network.predict(X) > 0.5) == (y > 0.5)).all()


def test_demo_command_prints_the_lesson():
    result = subprocess.run(
        [sys.executable, "-m", "cyprop", "demo"], capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    for iteration, (line, loss) in enumerate(zip(lines, LESSON_LOSSES)):
        label, value = line.split("Loss: ")
        assert label == f"Iteration {iteration * 1000}, "
        assert float(value) == pytest.approx(loss, rel=1e-10)
    assert lines[10] == "Final output after training:"
    printed = np.array([float(line.strip(" []")) for line in lines[11:15]])
    np.testing.assert_allclose(printed, np.ravel(LESSON_OUTPUTS), atol=1e-8)
    assert lines[15].startswith("cyprop trained 10,000 iterations in ")
    assert result.stderr == ""
