"""User-facing errors: one line that says what is wrong and how to fix it."""


class EdgeopsError(Exception):
    """An error caused by input or environment that the user can fix.

    The CLI prints its message on one line (no traceback) and exits with code 2.
    """


class ServiceUnavailable(EdgeopsError):
    """A server the pipeline needs (MLflow, S3, the DVC remote) did not answer, even after its retries.

    Not the user's input: the CLI prints `unavailable: …` and exits with 75 (EX_TEMPFAIL), and the
    Prefect flow retries the stage, where an input error would not be retried."""
