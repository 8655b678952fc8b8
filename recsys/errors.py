"""Errors that carry a one-line message for the user.

Every error raised for bad input names the file, column or row, and the fix. The CLI prints
``Error: <message>`` and exits with code 2, without a traceback.
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class of every error whose message is meant for the user."""


class DataError(RecsysError, ValueError):
    """The input data breaks the data contract (missing column, bad encoding, ...)."""


class ConfigError(RecsysError, ValueError):
    """An argument, option or config file value is invalid."""


class ArtifactError(RecsysError):
    """An artifact folder is missing, corrupt, or of another schema version."""
