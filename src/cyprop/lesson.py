"""The lesson cyprop grew out of: a 3-4-1 sigmoid network learning XOR.

The lesson seeds numpy with ``np.random.seed(1)``, draws ``W1, b1, W2, b2``
uniformly from ``[0, 1)``, and takes 10,000 full-batch gradient steps with
learning rate 0.1, printing ``mean((output - y)**2)`` every 1,000 iterations.
:func:`run_lesson` does the same with cyprop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cyprop.network import Network

#: The lesson's inputs: XOR of the first two columns; the third is always 1.
X = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]])
#: The lesson's targets.
y = np.array([[0], [1], [1], [0]])
LAYER_SIZES = (3, 4, 1)
SEED = 1
LEARNING_RATE = 0.1
ITERATIONS = 10_000


@dataclass(frozen=True)
class LessonRun:
    """What the lesson prints, computed by cyprop.

    Attributes
    ----------
    losses : ndarray of shape (iterations,)
        The lesson's loss, ``mean((output - y)**2)``, at every iteration,
        measured before that iteration's update.
    outputs : ndarray of shape (4, 1)
        The outputs of the last iteration's forward pass, which the lesson
        prints as its "final output after training".
    network : Network
        The trained network, after every update.
    seconds : float
        Wall-clock time of the training.
    """

    losses: np.ndarray
    outputs: np.ndarray
    network: Network
    seconds: float


def lesson_network(dtype: str = "float64") -> Network:
    """The lesson's network with its initial weights: ``np.random.seed(1)``, then ``rand``.

    Examples
    --------
    >>> lesson_network().weights[0].shape
    (3, 4)
    """
    return Network(LAYER_SIZES, activation="sigmoid", init="lesson", seed=SEED, dtype=dtype)


def run_lesson(iterations: int = ITERATIONS, dtype: str = "float64") -> LessonRun:
    """Train the lesson's network as the lesson does and return what it prints.

    Examples
    --------
    >>> run = run_lesson()
    >>> round(float(run.losses[0]), 12)
    0.380383493109
    """
    net = lesson_network(dtype)
    start = time.perf_counter()
    # The lesson prints the outputs of its last forward pass, which comes
    # before its last update: train all but one iteration, read the outputs
    # at those weights, then take the last step.
    history = np.empty(0)
    if iterations > 1:
        history = net.fit(X, y, epochs=iterations - 1, learning_rate=LEARNING_RATE).loss
    outputs = net.predict(X)
    last = net.fit(X, y, epochs=1, learning_rate=LEARNING_RATE)
    seconds = time.perf_counter() - start
    # fit reports the objective 1/2 * sum((a - y)**2); the lesson prints the mean of (a - y)**2.
    losses = np.concatenate([history, last.loss]) * 2.0 / y.size
    return LessonRun(losses=losses, outputs=outputs, network=net, seconds=seconds)


def print_lesson(run: LessonRun, every: int = 1000) -> None:
    """Print a run in the lesson's words, then the time it took."""
    for iteration in range(0, len(run.losses), every):
        print(f"Iteration {iteration}, Loss: {run.losses[iteration]}")
    print("Final output after training:")
    print(run.outputs)
    print(
        f"cyprop trained {len(run.losses):,} iteration{'' if len(run.losses) == 1 else 's'} in "
        f"{run.seconds * 1e3:.3f} ms ({run.network.dtype.name})."
    )
