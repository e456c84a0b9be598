"""The one exception type for user mistakes.

The CLI prints a ``UserError`` as a single line and exits with its ``exit_code``; any other exception is our bug and
keeps its traceback. Exit codes are shared by every command (see the "Exit codes" table in docs/errors.md).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USER_ERROR = 1  # bad input, bad config, bad file, non-finite loss
EXIT_UNKNOWN_COMMAND = 2  # `mmtrain COMMAND` with a command that does not exist
EXIT_PARTIAL = 3  # some inputs failed, nothing was produced (e.g. caption found no readable image)
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM: stopped early (fit writes last.ckpt first)
EXIT_BROKEN_PIPE = 141  # stdout was closed by its reader (`mmtrain fit --help | head`): 128 + SIGPIPE, as a shell shows


class UserError(Exception):
    """A mistake in what the user gave us: a file, an override, a value. Printed on one line, no traceback."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USER_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code
