"""The one error type for bad input.

Raise :class:`UserError` with one line that says what is wrong, where, and how to fix it. The CLI
prints it as ``error: <message>`` and exits with code 2; Python callers get the exception.
"""


class UserError(Exception):
    """Bad input from the user (a file, an option, a config key). Exit code 2 in the CLI."""

    exit_code = 2
