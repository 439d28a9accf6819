"""The bad-input corpus: every case gives its exact message (Python: DataError; CLI: exit 2, one
line, no traceback), or, for odd-but-valid files, the right counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from t4r_core.cli import main
from t4r_core.errors import DataError
from t4r_core.ingest import read_table
from t4r_core.profile import profile_file

from .paths import BAD_INPUTS

CASES = yaml.safe_load((BAD_INPUTS / "cases.yaml").read_text())


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert all((BAD_INPUTS / name).exists() for name in CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_python(name):
    case = CASES[name]
    path = BAD_INPUTS / name
    if "error" in case:
        with pytest.raises(DataError) as e:
            profile_file(path)
        assert case["error"] in str(e.value)
        assert name in str(e.value) or "uploaded" in str(e.value)  # says which file
    else:
        p = profile_file(path)
        for k, v in case["ok"].items():
            assert p[k] == v, (k, p)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if "error" in c))
def test_case_cli_exit_2_one_line(name, capsys):
    rc = main(["profile", str(BAD_INPUTS / name), "--json"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert CASES[name]["error"] in lines[0]
    assert "Traceback" not in err


def test_upload_limit():
    with pytest.raises(DataError, match="over the .* limit"):
        read_table(BAD_INPUTS / "crlf.csv", max_bytes=20)
    with pytest.raises(DataError, match="over the .* limit"):
        read_table(b"session_id,item_id\n" + b"1,2\n" * 100, name="up.csv", max_bytes=50)


def test_upload_bytes_same_as_file():
    raw = (BAD_INPUTS / "bom.csv").read_bytes()
    a = read_table(raw, name="bom.csv")
    b = read_table(BAD_INPUTS / "bom.csv")
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["session_id", "item_id", "timestamp"]  # BOM not in the name


def test_giant_session(tmp_path):
    n = 100_000
    df = pd.DataFrame({"session_id": 1, "item_id": np.arange(n) % 977, "timestamp": 1_600_000_000 + np.arange(n)})
    f = tmp_path / "giant.csv"
    df.to_csv(f, index=False)
    p = profile_file(f)
    assert p["n_sessions"] == 1 and p["session_length"]["max"] == n and p["n_items"] == 977


def test_a_million_distinct_items(tmp_path):
    n = 1_000_000
    df = pd.DataFrame({"session_id": np.arange(n) // 2, "item_id": np.arange(n), "timestamp": 1_600_000_000 + np.arange(n)})
    f = tmp_path / "many.parquet"
    df.to_parquet(f)
    p = profile_file(f)
    assert p["n_items"] == n and p["n_sessions"] == n // 2
