"""cyprop: multilayer perceptrons trained by backpropagation, with a typed Cython core.

The public entry point is :class:`Network`; ``python -m cyprop demo`` runs the
lesson the library grew out of (a 3-4-1 sigmoid network learning XOR).
"""

from cyprop._persistence import ModelFileError
from cyprop._version import __version__
from cyprop.network import Network

__all__ = ["ModelFileError", "Network", "__version__"]
