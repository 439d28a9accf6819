"""Paths shared by the tests. Tests that need ../shared/data skip cleanly where it is absent (a user's clone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("T4R_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE_DATA = ROOT / "sample_data"
BAD_INPUTS = Path(__file__).parent / "bad_inputs"


def shared_file(rel: str) -> Path:
    """A file under ../shared/data, or skip the test when it is not there."""
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"{p} not present (shared data sets are only on the team's machines)")
    return p


