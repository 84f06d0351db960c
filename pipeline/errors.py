"""Errors a user can fix: the command line prints their message as one line and exits with code 2.

Raise `UserError` with a message that names the file or field and says what to change; no traceback
is shown unless `--debug` is given."""


class UserError(Exception):
    """An error the user can fix (a bad file, field or option); the message says how."""
