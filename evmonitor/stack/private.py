"""Files that hold secrets (generated passwords, database URLs) are created for their owner only."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, mode 0600 from the first byte whatever the umask.

    Through a temporary file beside it and a rename, so a reader never sees half a file, and the
    mode is set on the open descriptor, so there is no moment at which others may read it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left over from a crash
        with os.fdopen(fd, "w") as handle:
            fd = -1
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
