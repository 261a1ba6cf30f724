"""User-facing errors of the harness; the CLI prints them as one line and exits with code 2."""
from zoo.errors import ZooError


class LsbenchError(ZooError):
    """A user-caused error in lsbench (bad option, missing device, unwritable path...)."""
