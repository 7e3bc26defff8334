"""tune: see liverseg/commands/tune.py (``python tools/tune.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import tune

__doc__ = tune.__doc__

if __name__ == "__main__":
    tune.run()
