"""Typed errors. Every message says what is wrong, where, and how to fix it.

The CLI turns these into one line on stderr and exit status 2; the app into `st.error`.
Anything else escaping is a bug.
"""

from __future__ import annotations


class T4RError(Exception):
    """Base class of every error the product raises on purpose (bad input, bad config)."""


class DataError(T4RError, ValueError):
    """The input data cannot be used as it is (format, columns, values)."""


class ConfigError(T4RError, ValueError):
    """An experiment config names an unknown key or an invalid combination."""


class RunError(T4RError):
    """A run folder is missing, incomplete or does not match its config."""
