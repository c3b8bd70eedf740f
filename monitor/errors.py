"""The one exception type that reaches the user as a one-line message (no traceback) and a non-zero exit."""


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong option. Printed as one line."""

    exit_code = 2
