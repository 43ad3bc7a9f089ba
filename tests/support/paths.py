"""Where the tests find the repository and the shared data (SCP03 vectors)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared data folder: $TENANTCARD_SHARED, else ``../shared`` beside the repository."""
    return Path(os.environ.get("TENANTCARD_SHARED", REPO_ROOT.parent / "shared")).resolve()


def load_vectors(name: str) -> dict[str, Any]:
    """One of the public vector files, e.g. ``scp03-pysim.json``."""
    with (shared_dir() / "vectors" / name).open() as f:
        data: dict[str, Any] = json.load(f)
    return data
