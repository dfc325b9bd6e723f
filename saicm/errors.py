"""The one exception type users see.

Every failure a user can cause (bad file, unknown model, unwritable output)
raises :class:`SaicmError` with a one-line, human message. The CLI prints that
line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations


class SaicmError(Exception):
    """A user-facing error: ``str(err)`` is one line naming the cause."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class FormatError(SaicmError):
    """The bytes are not a valid ``.saicm`` stream (magic, version, CRC, truncation)."""


class ModelError(SaicmError):
    """Unknown model, wrong weights, or a quality the model does not have."""


class ImageError(SaicmError):
    """An input image that cannot be read or used."""
