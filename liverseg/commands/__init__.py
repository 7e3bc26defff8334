"""The command-line tools (``tools/<name>.py``, installed as ``liverseg-<name>``).

Each module defines its flags (derived from the library's option
definitions where it has them) and a ``run()`` entry point.

TensorFlow's native start-up lines (oneDNN notice, CUDA probing and "failed
call to cuInit" on machines without a GPU, "All log messages before
absl::InitializeLog()") are written to file descriptor 2 while it loads and
first lists its devices, before any log setting applies. For the tools they are held
back while ``tensorflow`` is imported and shown only if the import fails
(``LIVERSEG_DEBUG=1`` shows them always).
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _native_stderr_held():
    """Redirects fd 2 to a temporary file; replays it if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and loads it with fd 2 held back."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            with _native_stderr_held():
                load(module)
                module.config.list_physical_devices()  # the CUDA probe, while held

        spec.loader.exec_module = exec_module
        return spec


if (
    "tensorflow" not in sys.modules
    and os.environ.get("LIVERSEG_DEBUG", "") in ("", "0")
    and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path)
):
    sys.meta_path.insert(0, _QuietTensorFlowImport())
