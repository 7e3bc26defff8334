"""make_external_phantoms: see liverseg/commands/make_external_phantoms.py (``python tools/make_external_phantoms.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import make_external_phantoms

__doc__ = make_external_phantoms.__doc__

if __name__ == "__main__":
    make_external_phantoms.run()
