"""The lesson's 10,000 iterations, timed with the lesson's numpy code and with cyprop.

Both run in this one process, on the same data, from the same initial weights;
the script prints the median time of each, their final losses, and the ratio.

    python benchmarks/bench_lesson.py [--repeats-numpy 5] [--repeats-cyprop 100]
"""

import argparse
import statistics
import time

import numpy as np

from cyprop.lesson import ITERATIONS, LEARNING_RATE, X, lesson_network, y
from machine import describe, limit_threads


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_derivative(x):
    return x * (1 - x)


def lesson_numpy(iterations=ITERATIONS, learning_rate=LEARNING_RATE):
    """The lesson's training loop as the lesson writes it, without its prints."""
    np.random.seed(1)
    W1 = np.random.rand(3, 4)
    b1 = np.random.rand(1, 4)
    W2 = np.random.rand(4, 1)
    b2 = np.random.rand(1, 1)
    for _ in range(iterations):
        hidden_layer_output = sigmoid(np.dot(X, W1) + b1)
        output_layer_output = sigmoid(np.dot(hidden_layer_output, W2) + b2)
        loss = np.mean((output_layer_output - y) ** 2)
        output_layer_gradient = (output_layer_output - y) * sigmoid_derivative(output_layer_output)
        hidden_layer_error = output_layer_gradient.dot(W2.T)
        hidden_layer_gradient = hidden_layer_error * sigmoid_derivative(hidden_layer_output)
        W2 -= learning_rate * hidden_layer_output.T.dot(output_layer_gradient)
        b2 -= learning_rate * np.sum(output_layer_gradient, axis=0, keepdims=True)
        W1 -= learning_rate * X.T.dot(hidden_layer_gradient)
        b1 -= learning_rate * np.sum(hidden_layer_gradient, axis=0, keepdims=True)
    return loss


def lesson_cyprop(dtype="float64", iterations=ITERATIONS, learning_rate=LEARNING_RATE):
    """The same training with cyprop; returns the last iteration's loss in the lesson's units."""
    net = lesson_network(dtype)
    history = net.fit(X, y, epochs=iterations, learning_rate=learning_rate)
    return history[-1] * 2 / y.size


def median_seconds(function, repeats, **kwargs):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(**kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats-numpy", type=int, default=5)
    parser.add_argument("--repeats-cyprop", type=int, default=100)
    arguments = parser.parse_args()

    for line in describe():
        print(line)
    print(f"workload: 3-4-1 sigmoid, XOR, {ITERATIONS:,} full-batch iterations, "
          f"learning rate {LEARNING_RATE}; BLAS pinned to 1 thread")
    print()
    with limit_threads(1):
        lesson_cyprop(iterations=10)  # warm up imports and caches
        rows = [("lesson numpy", median_seconds(lesson_numpy, arguments.repeats_numpy))]
        for dtype in ("float64", "float32"):
            rows.append((f"cyprop {dtype}",
                         median_seconds(lesson_cyprop, arguments.repeats_cyprop, dtype=dtype)))
    baseline = rows[0][1][0]
    print(f"{'contender':<16} {'median ms':>10} {'best ms':>10} {'final loss':>22} {'speed-up':>9}")
    for name, (median, best, loss) in rows:
        print(f"{name:<16} {median * 1e3:>10.3f} {best * 1e3:>10.3f} {loss:>22.17g} "
              f"{baseline / median:>8.0f}x")


if __name__ == "__main__":
    main()
