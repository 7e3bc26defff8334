"""Shared behaviour of the command-line tools: one-line errors, exit codes, logging."""

from __future__ import annotations

import logging
import sys

from liverseg.errors import LiverSegError

EXIT_ERROR = 1


def run_tool(main, argv) -> None:
    """Calls ``main(argv)``; a LiverSegError becomes one line on stderr and exit 1."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", force=True)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        result = main(argv)
    except LiverSegError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_ERROR)
    except MemoryError as exc:
        print(f"error: out of memory ({exc or 'the input is too large for this machine'})",
              file=sys.stderr, flush=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    if isinstance(result, int) and result:
        sys.exit(result)
