"""User-facing errors. The CLI turns them into one line on stderr and an exit code."""


class PhysMLError(Exception):
    """Base class of every error the CLI reports without a traceback."""

    exit_code = 1


class UserError(PhysMLError):
    """Bad input: params, arguments or files. Exit code 2."""

    exit_code = 2


class RunFailed(PhysMLError):
    """A run that started on valid input and failed (diverged, a solver failed). Exit code 1."""

    exit_code = 1


class Interrupted(PhysMLError):
    """The user interrupted a run (Ctrl-C); the message says how a rerun resumes. Exit code 130."""

    exit_code = 130
