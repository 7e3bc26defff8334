"""The command-line tools (``tools/<name>.py``, installed as ``liverseg-<name>``).

Each module defines its flags (derived from the library's option
definitions where it has them) and a ``run()`` entry point. TensorFlow's
C++ start-up chatter is silenced before any of them imports it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
