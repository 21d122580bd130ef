"""User-facing errors: one line that says what is wrong and how to fix it."""


class EdgeopsError(Exception):
    """An error caused by input or environment that the user can fix.

    The CLI prints its message on one line (no traceback) and exits with code 2.
    """
