"""Errors a user can fix: raised with a one-line message that names the file or field and the fix.

The command line catches `UserError` and prints the message alone (no traceback)."""


class UserError(Exception):
    """An error the user can fix (a full disk, a lock held by a live run, a bad argument)."""
