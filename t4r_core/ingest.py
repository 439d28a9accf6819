"""read_table(): an interaction log file -> pandas DataFrame, with format and size checks.

Formats: CSV/TSV (delimiter sniffed among , ; TAB |), Parquet, JSON lines, each optionally gzip.
The format is decided from the bytes (gzip and Parquet magic numbers, a leading '{'), the file
name only breaks ties, so a misnamed file still reads or fails with a message that says why.
Nested JSONL/Parquet (one row per session holding a list of events, as OTTO and
Transformers4Rec data are) is flattened to one row per event with vectorised Arrow kernels.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .errors import DataError

DELIMITERS = [",", ";", "\t", "|"]
MAX_BYTES_DEFAULT = 2 * 1024**3  # 2 GiB uncompressed; the app passes its own upload limit
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"
_NON_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")  # what bytes.strip() keeps


def read_table(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    sep: str | None = None,
    max_bytes: int = MAX_BYTES_DEFAULT,
) -> pd.DataFrame:
    """Read an interaction log into a DataFrame (one row per event).

    `source` is a path or the raw bytes of an upload (then `name` is its file name, for messages).
    Raises `DataError` with the file name and the fix for anything unreadable.
    """
    if isinstance(source, (bytes, bytearray)):
        raw, label = bytes(source), name or "uploaded file"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.exists():
            raise DataError(f"{label}: file not found")
        if path.is_dir():
            raise DataError(f"{label}: is a folder; give a CSV/TSV/Parquet/JSONL file")
        with path.open("rb") as f:
            if f.read(4) == _PARQUET_MAGIC:  # streamed by row groups: no size limit, no raw bytes held
                return _finish(_flatten_lists(_read_parquet_file(path, label), label), label)
        size = path.stat().st_size
        if size > max_bytes:
            raise DataError(f"{label}: file is {size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit; "
                            "sample it or raise the limit")
        raw = path.read_bytes()
    if len(raw) > max_bytes:
        raise DataError(f"{label}: file is {len(raw) / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit; "
                        "sample it or raise the limit")

    lower = label.lower()
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip(raw, label, max_bytes)
        lower = lower.removesuffix(".gz")
    elif lower.endswith(".gz"):
        raise DataError(f"{label}: named .gz but is not gzip-compressed; rename it without .gz or compress it")

    if not raw or raw.isspace():  # == `not raw.strip()` without copying the whole file
        raise DataError(f"{label}: file is empty; it needs a header row and at least one event per row")

    if raw[:4] == _PARQUET_MAGIC or lower.endswith(".parquet") or lower.endswith(".pq"):
        table = _read_parquet(raw, label)
    else:
        text_start = raw[3:] if raw[:3] == _BOM else raw
        _check_text(text_start[:65536], label)
        first = _first_byte(text_start)
        if first in (b"{", b"[") or lower.endswith((".jsonl", ".ndjson", ".json")):
            table = _read_jsonl(text_start, label)
        else:
            table = _read_csv(text_start, label, sep)
    return _finish(_flatten_lists(table, label), label)


def _finish(table: pa.Table, label: str) -> pd.DataFrame:
    df = table.to_pandas(split_blocks=True)  # no consolidation copy of the numeric columns
    _check_columns(df, label)
    return df


# ------------------------------------------------------------------------------ decoding


def _gunzip(raw: bytes, label: str, max_bytes: int) -> bytes:
    try:
        d = zlib.decompressobj(wbits=31)
        out = d.decompress(raw, max_bytes + 1)
    except zlib.error as e:
        raise DataError(f"{label}: gzip data is corrupt ({e}); re-compress the file") from None
    if len(out) > max_bytes:
        raise DataError(f"{label}: decompressed size is over the {max_bytes / 1e6:.0f} MB limit; "
                        "sample the file or raise the limit")
    if not d.eof:
        raise DataError(f"{label}: gzip data is truncated; re-compress or re-download the file")
    return out


def _first_byte(raw: bytes) -> bytes:
    """`raw.lstrip()[:1]` without copying the whole file."""
    m = _NON_SPACE.search(raw)
    return raw[m.start() : m.start() + 1] if m else b""


def _check_text(head: bytes, label: str) -> None:
    """Refuse binary garbage early: NUL bytes or undecodable UTF-8 in the first 64 KiB."""
    if b"\x00" in head:
        raise DataError(f"{label}: looks like a binary file, not CSV/TSV/JSONL text or Parquet; "
                        "export it as CSV or Parquet")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # a cut multi-byte char at the very end is fine
            raise DataError(f"{label}: not UTF-8 text (byte {e.start}); save it as UTF-8 CSV") from None


def sniff_delimiter(sample: str) -> str:
    """The delimiter among , ; TAB | that splits the first lines into the same number (>1) of fields."""
    lines = [ln for ln in sample.splitlines()[:50] if ln.strip()]
    if lines and len(lines) > 1 and lines[-1] is not None and not sample.endswith(("\n", "\r")):
        lines = lines[:-1] or lines  # last line may be cut
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        pass
    best, best_score = ",", -1
    for d in DELIMITERS:
        counts = [len(next(csv.reader([ln], delimiter=d))) for ln in lines]
        if counts and min(counts) > 1 and len(set(counts)) == 1 and counts[0] > best_score:
            best, best_score = d, counts[0]
    return best


def _read_csv(raw: bytes, label: str, sep: str | None) -> pa.Table:
    sample = raw[:65536].decode("utf-8", errors="ignore")
    if sep is None:
        sep = sniff_delimiter(sample)
    header_line = sample.splitlines()[0] if sample else ""
    header = next(csv.reader([header_line], delimiter=sep), [])
    if len(header) < 2:
        raise DataError(
            f"{label}: found a single column {header[:1]} with delimiter {sep!r}; the file needs at least "
            "session and item columns separated by , ; TAB or | (pass --sep to force one)"
        )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{label}: duplicate column name(s) {dupes} in the header; rename them so each is unique")
    empty = [i for i, h in enumerate(header) if not h.strip()]
    if empty:
        raise DataError(f"{label}: header column {empty[0] + 1} has no name; give every column a name")
    read_opts = pacsv.ReadOptions(block_size=1 << 24)
    parse_opts = pacsv.ParseOptions(delimiter=sep, newlines_in_values=False)
    convert_opts = pacsv.ConvertOptions(
        null_values=["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"],
        strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(pa.BufferReader(raw), read_opts, parse_opts, convert_opts)
    except pa.ArrowInvalid as e:
        raise DataError(f"{label}: {_csv_error(str(e), sep)}") from None
    if table.num_rows == 0:
        raise DataError(f"{label}: has a header ({', '.join(header)}) but no rows; add one event per row")
    return table


def _csv_error(msg: str, sep: str) -> str:
    if "Expected" in msg and "columns" in msg:
        # pyarrow: "CSV parse error: Expected 3 columns, got 4: <row text>"
        row = msg.split(":", 2)[-1].strip()[:80]
        return (f"rows have a different number of fields than the header (delimiter {sep!r}); "
                f"first bad row: {row!r}. Quote fields that contain the delimiter, or pass --sep")
    return f"cannot parse as CSV with delimiter {sep!r}: {msg.splitlines()[0][:200]}"


def _read_jsonl(raw: bytes, label: str) -> pa.Table:
    if _first_byte(raw) == b"[":
        try:
            rows = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"{label}: invalid JSON at line {e.lineno}: {e.msg}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DataError(f"{label}: a JSON array must hold one object per event or session")
        return pa.Table.from_pylist(rows)
    try:
        table = pajson.read_json(pa.BufferReader(raw), pajson.ReadOptions(block_size=1 << 24))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        line, why = _first_bad_json_line(raw)
        if line is not None:
            raise DataError(f"{label}: line {line} is not valid JSON ({why}); fix or remove that line") from None
        raise DataError(f"{label}: cannot read as JSON lines: {str(e).splitlines()[0][:200]}") from None
    if table.num_rows == 0:
        raise DataError(f"{label}: no JSON objects found; expected one object per line")
    return table


def _first_bad_json_line(raw: bytes) -> tuple[int | None, str]:
    for i, line in enumerate(io.BytesIO(raw), start=1):
        s = line.strip()
        if not s:
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            return i, e.msg
        if not isinstance(obj, dict):
            return i, "not a JSON object"
    return None, ""


PARQUET_BATCH_ROWS = 1 << 20


def _read_parquet_file(path: Path, label: str) -> pa.Table:
    """A Parquet file read in row-group batches. Text columns are dictionary-encoded batch by
    batch and the dictionaries unified at the end, so the table holds int codes plus each distinct
    string once (pandas sees Categorical columns), never the file's raw strings: a log whose text
    would not fit in memory still loads when its codes do (about 4-8 bytes per value)."""
    try:
        pf = pq.ParquetFile(path)
        chunks = []
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            arrays = [a.dictionary_encode() if pa.types.is_string(a.type) or pa.types.is_large_string(a.type) else a
                      for a in batch.columns]
            chunks.append(pa.Table.from_arrays(arrays, names=batch.schema.names))
        if not chunks:
            return pf.schema_arrow.empty_table()
        return pa.concat_tables(chunks).unify_dictionaries()
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{label}: not a readable Parquet file (truncated or corrupt: "
                        f"{str(e).splitlines()[0][:120]}); re-export it") from None


def _read_parquet(raw: bytes, label: str) -> pa.Table:
    try:
        return pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{label}: not a readable Parquet file (truncated or corrupt: "
                        f"{str(e).splitlines()[0][:120]}); re-export it") from None


# ------------------------------------------------------------------------------ nesting


def _flatten_lists(table: pa.Table, label: str) -> pa.Table:
    """One row per session with list columns -> one row per event.

    A list<struct> column (OTTO's `events`) contributes the struct's fields; plain list columns
    (Transformers4Rec's Parquet) are flattened together and must have equal lengths per row.
    Scalar columns are repeated for every event of their row.
    """
    list_cols = [f.name for f in table.schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
    if not list_cols:
        return table
    first = table.column(list_cols[0]).combine_chunks()
    lengths = pc.list_value_length(first).fill_null(0)
    for name in list_cols[1:]:
        other = pc.list_value_length(table.column(name).combine_chunks()).fill_null(0)
        if not pc.all(pc.equal(lengths, other)).as_py():
            bad = int(np.flatnonzero(lengths.to_numpy() != other.to_numpy())[0])
            raise DataError(f"{label}: list columns {list_cols[0]!r} and {name!r} have different lengths "
                            f"in row {bad + 1}; each row's lists must describe the same events")
    parents = pc.list_parent_indices(first)
    out: dict[str, pa.Array] = {}
    for f in table.schema:
        col = table.column(f.name).combine_chunks()
        if f.name in list_cols:
            flat = pc.list_flatten(col)
            if pa.types.is_struct(flat.type):
                for i in range(flat.type.num_fields):
                    out[flat.type.field(i).name] = flat.field(i)
            else:
                out[f.name] = flat
        else:
            out[f.name] = col.take(parents)
    return pa.table(out)


def _check_columns(df: pd.DataFrame, label: str) -> None:
    if df.shape[1] < 2:
        raise DataError(f"{label}: only {df.shape[1]} column; need at least session and item columns")
    if df.columns.duplicated().any():
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        raise DataError(f"{label}: duplicate column name(s) {dup}; rename them so each is unique")
    nested = [c for c in df.columns if df[c].dtype == object and len(df) and isinstance(df[c].iloc[0], (dict, list, np.ndarray))]
    if nested:
        raise DataError(f"{label}: column(s) {nested} hold nested values; flatten them to one value per event")

