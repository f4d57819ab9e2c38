"""cyprop: multilayer perceptrons trained by backpropagation, with a typed Cython core.

The public entry point is :class:`Network`; ``python -m cyprop demo`` runs the
lesson the library grew out of (a 3-4-1 sigmoid network learning XOR).
Optimizers and learning-rate schedules live in :mod:`cyprop.optimizers`.
"""

from cyprop._blas_library import blas_library
from cyprop._persistence import ModelFileError
from cyprop._version import __version__
from cyprop.history import History
from cyprop.network import GradientCheck, Network

__all__ = ["GradientCheck", "History", "ModelFileError", "Network", "__version__", "blas_library"]
