"""convert_checkpoint: see liverseg/commands/convert_checkpoint.py (``python tools/convert_checkpoint.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import convert_checkpoint

__doc__ = convert_checkpoint.__doc__

if __name__ == "__main__":
    convert_checkpoint.run()
