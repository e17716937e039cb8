"""The one exception type for problems a user can cause and fix.

Stages catch it once at the entry point and print its message as a single line; anything else
is a bug and stays a full stack trace.
"""


class UserError(Exception):
    """Bad params, a corrupt input file or an unreachable tracking store: the user can fix it."""
