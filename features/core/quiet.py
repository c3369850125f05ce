"""Start-up a person can read: TensorFlow imported with its native logging silenced.

TensorFlow's C++ libraries print `I0000 … oneDNN custom operations are on`, `Could not find cuda
drivers` and `E0000 … failed call to cuInit` to file descriptor 2 while loading, before absl logging is
initialised, so `TF_CPP_MIN_LOG_LEVEL` cannot hold them back. `quiet_tensorflow()` imports TensorFlow
(and initialises its devices) with descriptor 2 pointed at a buffer, and sets `TF_CPP_MIN_LOG_LEVEL=3`
for what comes later. If the import fails, the buffer is replayed before the exception propagates.
`--verbose` or `IAA_VERBOSE=1` leaves everything as TensorFlow prints it. Dask workers call it too.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile

VERBOSE_ENV = "IAA_VERBOSE"


def verbose() -> bool:
    """Whether the user asked for TensorFlow's own start-up messages."""
    return os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0")


@contextlib.contextmanager
def _native_stderr_captured():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            buffer.seek(0)
            sys.stderr.write(buffer.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def quiet_tensorflow() -> None:
    """Imports TensorFlow silently (once per process; a no-op when verbose or already imported)."""
    if verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with _native_stderr_captured():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # loads the CUDA stubs now (cuInit), not at the first op
