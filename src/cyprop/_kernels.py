"""The core's functions for one dtype, chosen once per network.

Each of the core's functions on arrays is compiled for float32 and float64;
called as ``_core.name``, it picks one by inspecting its arguments' buffers
on every call. That costs little when the caches are warm, but after a
garbage collection, which leaves them cold, it added about 10 us to each
call (benchmarks/README.md), several times the work of a small network's
``predict`` on one sample. ``_core.name["double"]`` is the float64 code
itself, so the choice is made here, once.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cyprop import _core

# The core's functions of the floating-point arrays they are given.
_FUNCTIONS = (
    "forward",
    "loss_sum",
    "loss_gradient",
    "all_finite_values",
    "penalty",
    "add_penalty_gradient",
    "train_epochs",
)
_C_TYPES = {np.dtype(np.float64): "double", np.dtype(np.float32): "float"}

_BY_DTYPE = {
    dtype: SimpleNamespace(**{name: getattr(_core, name)[c_type] for name in _FUNCTIONS})
    for dtype, c_type in _C_TYPES.items()
}


def kernels_for(dtype: np.dtype) -> SimpleNamespace:
    """The core's functions compiled for ``dtype`` (float32 or float64), by name.

    Each accepts only arrays of that dtype, as the network's always are.
    """
    return _BY_DTYPE[dtype]
