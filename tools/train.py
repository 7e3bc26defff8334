"""train: see liverseg/commands/train.py (``python tools/train.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import train

__doc__ = train.__doc__

if __name__ == "__main__":
    train.run()
