"""The package's expected errors: one root, so the command line maps them to exit status 2 in one place.

Every error a user can cause (a typo in a name, a missing file, a store that does not fit a head, a
run directory that is not one) derives from `IAAError`; its message is one line that says what is
wrong and what to do. Anything else reaching the command line is a bug and keeps its traceback.
"""
from __future__ import annotations

# Exit status of every `iaa` command: success; finished but some photos failed (each one listed);
# bad arguments or input (one `IAAError` line); interrupted or crashed work (rerun the same command to resume).
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


class IAAError(Exception):
    """Root of the expected errors: bad arguments, input files, stores or run directories."""


class UsageError(IAAError, ValueError):
    """An argument or setting that cannot be used as given."""
