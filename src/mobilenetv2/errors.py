"""The one exception type for bad user input: the CLI prints its message on one line and exits 2."""


class UserError(ValueError):
    """Bad input from the user (file, option, data); the message says what and how to fix it."""
