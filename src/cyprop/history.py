"""The record of a training run, returned by :meth:`cyprop.Network.fit`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


class History:
    """Per-epoch losses of one call to ``fit``.

    It behaves as the sequence of training losses (``history[-1]``,
    ``len(history)``, ``np.asarray(history)``), and also holds the
    validation losses and how training ended.

    Attributes
    ----------
    loss : ndarray of shape (n_epochs,)
        The training objective of each epoch that ran.
    val_loss : ndarray of shape (n_epochs,) or None
        The objective on the validation data after each epoch, without the
        weight-decay term, when there was any.
    learning_rate : ndarray of shape (n_epochs,)
        The learning rate of each epoch.
    best_epoch : int or None
        With early stopping, the epoch (counted from 1) whose weights the
        network was given back.
    stopped_early : bool
        True when early stopping, a callback or convergence ended training
        before the requested number of epochs.

    Examples
    --------
    >>> history = History(np.array([0.5, 0.25]), None, np.array([0.1, 0.1]))
    >>> float(history[-1]), len(history)
    (0.25, 2)
    """

    def __init__(self, loss: np.ndarray, val_loss: np.ndarray | None,
                 learning_rate: np.ndarray, best_epoch: int | None = None,
                 stopped_early: bool = False) -> None:
        self.loss = loss
        self.val_loss = val_loss
        self.learning_rate = learning_rate
        self.best_epoch = best_epoch
        self.stopped_early = stopped_early

    def __len__(self) -> int:
        return len(self.loss)

    def __getitem__(self, index: Any) -> Any:
        return self.loss[index]

    def __iter__(self) -> Iterator[float]:
        return iter(self.loss)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = np.asarray(self.loss, dtype=dtype)
        return array.copy() if copy else array

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.6g}" if len(self.loss) else ""
        validation = ", with validation" if self.val_loss is not None else ""
        return f"<History: {len(self.loss)} epochs{last}{validation}>"
