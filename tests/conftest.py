"""Shared fixtures."""

import pytest


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
