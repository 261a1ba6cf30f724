"""User-facing errors of the harness; the CLI prints them as one line and exits with code 2."""
import re

from zoo.errors import ZooError


class LsbenchError(ZooError):
    """A user-caused error in lsbench (bad option, missing device, unwritable path...)."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """First non-empty line of an exception message, ANSI colours stripped, truncated: what a one-line
    error may quote of a third-party exception."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."
