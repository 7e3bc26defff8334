"""demo: see liverseg/commands/demo.py (``python tools/demo.py --help``)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from liverseg.bootstrap import ensure_requirements

ensure_requirements(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "requirements.txt")
)

from liverseg.commands import demo  # noqa: E402

__doc__ = demo.__doc__

if __name__ == "__main__":
    demo.run()
