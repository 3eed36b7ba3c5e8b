"""User-facing errors: one line naming the problem and the fix, exit status 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback.

    The message should say what was wrong (with the offending value) and how to fix it.
    The CLI turns it into ``Error: <message>`` on stderr and exit status 2.
    """

    exit_code = 2
