"""The one exception type for errors a user can cause (bad name, bad checkpoint, bad input)."""


class ZooError(Exception):
    """A user-facing error: the message is one self-explanatory line."""
