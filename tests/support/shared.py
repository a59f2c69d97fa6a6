"""Where the shared conformance data lives: ../shared beside the repository, or $NERVE_SHARED_DIR."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("NERVE_SHARED_DIR") or REPO.parent / "shared")
CONFORMANCE = SHARED / "conformance"


def conformance(*parts: str) -> Path:
    path = CONFORMANCE.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"conformance data {path} is missing; set NERVE_SHARED_DIR to the shared/ folder")
    return path
