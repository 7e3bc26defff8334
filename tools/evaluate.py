"""evaluate: see liverseg/commands/evaluate.py (``python tools/evaluate.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import evaluate

__doc__ = evaluate.__doc__

if __name__ == "__main__":
    evaluate.run()
