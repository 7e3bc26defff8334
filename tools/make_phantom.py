"""make_phantom: see liverseg/commands/make_phantom.py (``python tools/make_phantom.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import make_phantom

__doc__ = make_phantom.__doc__

if __name__ == "__main__":
    make_phantom.run()
