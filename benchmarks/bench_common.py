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


class GpuUtilisation:
    """Samples `nvidia-smi` (utilisation %, memory MiB of every GPU) every 250 ms while in a `with` block;
    `summary()` is None when there is no nvidia-smi (CPU machines), so figures never pretend a GPU."""

    def __enter__(self) -> "GpuUtilisation":
        import subprocess

        self.lines, self.proc = [], None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                          "--format=csv,noheader,nounits", "-lms", "250"],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            out, _ = self.proc.communicate(timeout=10)
            self.lines = [line for line in out.splitlines() if line.strip()]

    def summary(self) -> Optional[dict]:
        rows = []
        for line in self.lines:
            try:
                rows.append([float(v) for v in line.split(",")])
            except ValueError:
                continue
        if not rows:
            return None
        util = [r[0] for r in rows]
        return {"gpu_util_mean_pct": sum(util) / len(util), "gpu_util_max_pct": max(util),
                "gpu_mem_max_mib": max(r[1] for r in rows), "samples": len(rows)}
