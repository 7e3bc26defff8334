"""prepare: see liverseg/commands/prepare.py (``python tools/prepare.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import prepare

__doc__ = prepare.__doc__

if __name__ == "__main__":
    prepare.run()
