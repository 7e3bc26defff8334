"""statistics: see liverseg/commands/statistics.py (``python tools/statistics.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import statistics

__doc__ = statistics.__doc__

if __name__ == "__main__":
    statistics.run()
