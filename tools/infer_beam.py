"""infer_beam: see liverseg/commands/infer_beam.py (``python tools/infer_beam.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import infer_beam

__doc__ = infer_beam.__doc__

if __name__ == "__main__":
    infer_beam.run()
