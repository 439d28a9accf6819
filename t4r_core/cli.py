"""Command line: `t4r <command>` or `python -m t4r_core <command>`.

Bad input or config exits with status 2 and one line on stderr (no traceback); set T4R_DEBUG=1
to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .config import DataConfig
from .errors import T4RError


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--session-col", help="session id column (default: inferred)")
    p.add_argument("--item-col", help="item id column (default: inferred)")
    p.add_argument("--time-col", help="timestamp column (default: inferred)")
    p.add_argument("--user-col", help="user id column (default: inferred)")
    p.add_argument("--sep", help="CSV delimiter (default: sniffed among , ; TAB |)")
    p.add_argument("--min-session-len", type=int, help="drop sessions shorter than this (default 2)")
    p.add_argument("--dedup", action="store_true", help="drop back-to-back duplicate clicks")


def _data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, key in [("session_col", "session_col"), ("item_col", "item_col"), ("time_col", "time_col"),
                      ("user_col", "user_col"), ("sep", "sep"), ("min_session_len", "min_session_len")]:
        v = getattr(args, flag, None)
        if v is not None:
            out[key] = "\t" if (key == "sep" and v in ("\\t", "tab", "TAB")) else v
    if getattr(args, "dedup", False):
        out["dedup_consecutive"] = True
    return out


def cmd_profile(args: argparse.Namespace) -> int:
    from .profile import format_profile, profile_file

    cfg = DataConfig(**_data_overrides(args))
    cfg.validate()
    p = profile_file(args.data, cfg)
    print(json.dumps(p, indent=None if args.json else 2) if args.json else format_profile(p))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t4r", description="Session-based recommendation with Transformers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", help="profile an interaction log (counts, lengths, time range, column roles)")
    p.add_argument("data", help="CSV/TSV/Parquet/JSONL file, optionally .gz")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except T4RError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected error is a bug: one line, traceback on request
        if os.environ.get("T4R_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {e} (set T4R_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
