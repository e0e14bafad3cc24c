"""One exception type for every user-facing problem.

The CLI turns an LlinkError into a one-line message and exit code 2, so bad input never
surfaces as a traceback from deep inside torch.
"""


class LlinkError(Exception):
    """A problem the user can fix: bad input, a missing file, mismatched models."""
