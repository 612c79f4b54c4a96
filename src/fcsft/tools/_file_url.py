"""`file://` URLs for `fetch`, confined to one folder, which is their `/`.

The path is resolved the way the kernel would (`..` collapsed, every symlink followed) and
must land inside the resolved root; the file opened is that resolved path, opened without
following a final symlink, so a link swapped in after the check is not followed either.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit


class FileRefused(PermissionError):
    """A file URL outside the root, or any file URL when no root is configured."""


def read_file_url(url: str, root: Path | None, max_bytes: int) -> tuple[bytes, bool]:
    """The first `max_bytes` of the file `url` names, and whether there was more."""
    if root is None:
        raise FileRefused("file:// URLs are disabled (no root folder is configured for fetch)")
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FileRefused(
            f"file URL names another host ({parts.netloc}); only local files can be read"
        )
    real_root = Path(os.path.realpath(root))
    given = unquote(parts.path)
    path = given
    if not any(given.startswith(f"{prefix}/") for prefix in (str(root), str(real_root))):
        # The root is the top of the file system a model sees: file:///prices/a.csv is
        # ROOT/prices/a.csv, so datasets name files the same way on every machine.
        path = os.path.join(real_root, given.lstrip("/"))
        if not os.path.exists(path) and os.path.isabs(given) and os.path.exists(given):
            path = given  # a host path, refused below; a path found nowhere is just missing
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(real_root):
        raise FileRefused(f"{given} is outside the fetch root {root}")
    if not target.exists():
        raise FileNotFoundError(errno.ENOENT, f"no such file under the fetch root {root}")
    if target.is_dir():
        raise IsADirectoryError(f"{given} is a directory")
    # O_NONBLOCK: opening a FIFO must not hang the tool; it is refused just below.
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileRefused(f"{unquote(parts.path)} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(max_bytes + 1)
    return data[:max_bytes], len(data) > max_bytes
