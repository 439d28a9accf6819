"""The app on the bad-input corpus: each malformed file gives `st.error` with the library's
message (which names the fix), never an exception or a traceback."""

from __future__ import annotations

import shutil

import pytest
import yaml

pytest.importorskip("streamlit")

from .paths import BAD_INPUTS  # noqa: E402
from .test_app_pages import goto_allowing_errors, new_app, runs_dir  # noqa: E402,F401

CASES = yaml.safe_load((BAD_INPUTS / "cases.yaml").read_text())
ERRORS = sorted(n for n, c in CASES.items() if "error" in c)


def test_every_corpus_error_is_an_st_error(runs_dir):  # noqa: F811
    from app.components import state

    missing = []
    for name in ERRORS:
        dest = runs_dir / "data" / f"case__00000000_{name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BAD_INPUTS / name, dest)
        st = state.AppState.load()
        st.choose_data(dest, f"Upload: {name}")
        st.save()
        at = goto_allowing_errors(new_app(), "data")
        shown = " ".join(e.value for e in at.error)
        if CASES[name]["error"] not in shown or "Traceback" in shown:
            missing.append((name, shown[:200]))
    assert not missing, missing
