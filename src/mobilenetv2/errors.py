"""The one exception type for bad user input: the CLI prints its message on one line and exits 2."""


class UserError(ValueError):
    """Bad input from the user (file, option, data); the message says what and how to fix it."""


class MissingRuntime(UserError, ImportError):
    """An optional runtime or converter (an extra of the package) is not installed: a UserError for the CLI,
    an ImportError for code that leaves out what it cannot run (the bench table)."""
