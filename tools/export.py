"""export: see liverseg/commands/export.py (``python tools/export.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.commands import export

__doc__ = export.__doc__

if __name__ == "__main__":
    export.run()
