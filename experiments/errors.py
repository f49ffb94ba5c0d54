"""The error a user can fix, shared by every command and pipeline (``dyadic`` prints it without a traceback)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad argument, missing file); printed without a traceback."""
