"""The one exception type for problems a user can cause and fix, and the one way to print a
text that may hold a password.

Stages catch UserError once at the entry point and print its message as a single line; anything
else is a bug and stays a full stack trace.
"""

import re

# The password of a URL (`scheme://user:password@host`): from the first ':' after the user name
# to the last '@' of the authority, which ends at the first '/', '?', '#' or space, as in
# urllib.parse.urlsplit (a password's own '@' is thus hidden too).
URL_PASSWORD = re.compile(r"(?P<user>[a-z][a-z0-9+.-]*://[^:/?#@\s]*):[^/?#\s]*@", re.IGNORECASE)
MASK = "***"


class UserError(Exception):
    """Bad params, a corrupt input file or an unreachable tracking store: the user can fix it."""


def redact(text: str, *secrets: str | None) -> str:
    """`text` (a URL, or an error message naming some) with every URL's password, and each of
    `secrets` wherever it appears, replaced by `***`, so it can be printed or logged.

    `postgresql://alice:s3cret@db:5432/x` -> `postgresql://alice:***@db:5432/x`.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return URL_PASSWORD.sub(rf"\g<user>:{MASK}@", text)
