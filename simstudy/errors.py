"""The one user-facing error type: bad input that the command line turns into exit code 2."""


class InputError(ValueError):
    """Bad input (config, path or data) found before any work starts.

    Parameters
    ----------
    field
        Dotted name of the offending setting, e.g. ``study.factors.N[1]``.
    value
        The value that was given.
    allowed
        What would have been accepted, in words.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field} = {value!r} is not allowed: {allowed}.")
