"""``python -m cyprop``: see :mod:`cyprop.cli`."""

import sys

from cyprop.cli import main

sys.exit(main())
