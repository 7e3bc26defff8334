"""infer: see liverseg/commands/infer.py (``python tools/infer.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import infer

__doc__ = infer.__doc__

if __name__ == "__main__":
    infer.run()
