"""What every benchmark script shares: a scratch directory removed afterwards, figures saved as JSON."""
from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory for stores and runs, removed however the benchmark ends."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def save_json(path: Optional[str], figures) -> None:
    """Writes the figures to `path` (the scripts' `--json`), when one is given."""
    if path:
        Path(path).write_text(json.dumps(figures, indent=2))
