"""Argument types shared by every `iaa` command module."""
from __future__ import annotations

import argparse
from typing import List, Optional

from features.core.errors import UsageError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def floats(text: Optional[str]) -> Optional[List[float]]:
    """Comma-separated numbers (`1e-3,1e-4`) as floats; None for an empty option."""
    if not text:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"expected comma-separated numbers; received {text!r}") from None
