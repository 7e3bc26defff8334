"""Shared behaviour of the command-line tools: one-line errors, exit codes, logging.

What the user sees on failure is one line on stderr starting with ``error:``:

* a ``LiverSegError`` (bad input, existing output, bad option): its message,
  which names the file and the problem; exit status 1;
* ``MemoryError``: a readable "out of memory" line (never an empty one); exit 1;
* any other exception is a bug: one ``error: internal error (Type: message)``
  line; exit 2. Set ``LIVERSEG_DEBUG=1`` to get the Python traceback instead;
* SIGINT (Ctrl-C) and SIGTERM unwind like an exception, so every file being
  written is removed (atomic writes) and nothing partial is left; one line
  says so; exit 130 / 143. A rerun (``--skip_existing``, or training's
  resume) completes the work.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from liverseg.errors import LiverSegError

EXIT_ERROR = 1
EXIT_INTERNAL = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
DEBUG_ENV = "LIVERSEG_DEBUG"
_MAX_MESSAGE = 500


def _one_line(text, limit: int | None = None) -> str:
    """``text`` on one line (whitespace runs collapsed), cut at ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


class Terminated(BaseException):
    """SIGTERM, raised where the process is so that clean-up code runs."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _stopped(what: str, code: int) -> None:
    print(
        f"error: {what}; files being written were removed, a rerun completes the work",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(code)


def run_tool(main, argv) -> None:
    """Calls ``main(argv)``; failures become one line on stderr and a non-zero exit."""
    import signal

    signal.signal(signal.SIGTERM, _raise_terminated)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", force=True)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        result = main(argv)
    except LiverSegError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_ERROR)
    except MemoryError as exc:
        detail = _one_line(exc, _MAX_MESSAGE) or "the input is too large for this machine"
        print(f"error: out of memory ({detail})", file=sys.stderr, flush=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        _stopped("interrupted (SIGINT)", EXIT_INTERRUPTED)
    except Terminated:
        _stopped("terminated (SIGTERM)", EXIT_TERMINATED)
    except Exception as exc:  # a bug: no traceback for the user unless asked for
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(
            f"error: internal error ({type(exc).__name__}: {_one_line(exc, _MAX_MESSAGE)}); "
            f"please report it (set {DEBUG_ENV}=1 to see the traceback)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_INTERNAL)
    if isinstance(result, int) and result:
        sys.exit(result)


def main_entry(doc: str, main: Callable, module_name: str) -> None:
    """Runs a tool module's ``main`` with absl: its docstring and its flags are the
    help of the program however it was started (``tools/<name>.py`` or an
    installed ``liverseg-<name>`` command)."""
    from absl import app, flags

    sys.modules["__main__"].__doc__ = doc
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(lambda argv: run_tool(main, argv))
