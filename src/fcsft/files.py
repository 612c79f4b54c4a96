"""Files a user names: read only once they are known to be readable, written whole or not at all.

Reading: a missing file, a folder where a file belongs or one that may not be read is a
UserError naming it; text is UTF-8, a byte order mark is dropped, and bytes that are not UTF-8
are named by line. Writing: a target must not be one of the command's inputs (the same file
under any name: symlinks and hard links included); it is written to a temporary file in its
own folder and renamed into place, so a command that fails or is killed leaves the old file
as it was and a reader never sees half of it (a folder likewise: `replacing_folder`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from fcsft.errors import UserError

BOM = b"\xef\xbb\xbf"


def open_input(path: Path | str) -> BinaryIO:
    """`path` opened for reading bytes; a path that is not a readable file is a UserError."""
    path = Path(path)
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; name a file") from None
    except PermissionError:
        raise UserError(f"{path}: not allowed to read it; check its permissions") from None


def decode(data: bytes, path: Path | str, first: bool = True) -> str:
    """UTF-8 bytes as text, a leading byte order mark dropped (when `first`: the file's start);
    UnicodeDecodeError if they are not UTF-8. Text in UTF-16 is a UserError: it needs saving
    again, not line-by-line repair."""
    if first:
        if data.startswith(BOM):
            data = data[len(BOM) :]
        elif data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise UserError(f"{path}: the text is UTF-16; save it as UTF-8")
    return data.decode("utf-8")


def not_utf8(exc: UnicodeDecodeError, line_start: int = 0) -> str:
    """Where decoding failed, counted from the start of the line (at `line_start`)."""
    return f"not valid UTF-8 at byte {exc.start - line_start} (0x{exc.object[exc.start]:02x})"


def read_text(path: Path | str) -> str:
    """A whole text file (YAML, a script); bytes that are not UTF-8 are a UserError naming the
    line they are on."""
    with open_input(path) as handle:
        data = handle.read()
    try:
        return decode(data, path)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: {not_utf8(exc, start)}; save the file as UTF-8") from None


def same_file(one: Path | str, other: Path | str) -> bool:
    """Whether two paths name one file: after symlinks, or as hard links of one inode."""
    one, other = Path(one), Path(other)
    try:
        return os.path.samefile(one, other)
    except OSError:  # one of them does not exist yet: compare where they would be
        return one.resolve() == other.resolve()


def check_target(target: Path | str, *inputs: Path | str, option: str = "") -> Path:
    """`target` as a file a command may write: not a folder, in no file's place, and none of
    `inputs`. Returns it."""
    target = Path(target)
    name = f"{option} {target}" if option else str(target)
    if target.is_dir():
        raise UserError(f"{name}: is a folder; name the file to write")
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{name}: {parent} is a file, not a folder")
    for source in inputs:
        if same_file(target, source):
            raise UserError(f"{name}: is the input {source} itself; write to another file")
    return target


def check_output_dir(target: Path | str, *inputs: Path | str, option: str = "--out") -> Path:
    """`target` as a folder a command fills: not a file, and holding none of `inputs` (which
    writing there could replace or delete). Returns it."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{option} {target}: is a file; name a folder to write into")
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{option} {target}: {parent} is a file, not a folder")
    folder = target.resolve()
    for source in inputs:
        if folder in Path(source).resolve().parents:
            raise UserError(
                f"{option} {target}: holds the input {source}; write into another folder"
            )
    return target


@contextlib.contextmanager
def replacing(path: Path | str) -> Iterator[TextIO]:
    """A text handle whose content becomes `path` when the block ends without an error; on an
    error the temporary file goes and `path` is as it was. A symlink is followed (its target
    is replaced, the link stays) and an existing file keeps its permissions."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # Created as any new file is (the umask applies), then given the old file's permissions.
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, stat.S_IMODE(path.stat().st_mode))
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


@contextlib.contextmanager
def replacing_folder(path: Path | str) -> Iterator[Path]:
    """A folder to fill (PATH.partial) that becomes `path` when the block ends without an
    error, the old folder removed just before; on an error it goes and `path` is as it was. A
    folder that exists under its name is whole (a checkpoint, a saved model)."""
    path = Path(path)
    staging = path.with_name(path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)  # left by a process that was killed
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)


def write_text(path: Path | str, text: str) -> None:
    """Write a whole text file atomically."""
    with replacing(path) as handle:
        handle.write(text)


def file_hash(paths: Iterable[Path]) -> str:
    """One SHA-256 over the bytes of `paths`, in order: what a stage's key says of its input."""
    digest = hashlib.sha256()
    for path in paths:
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def with_block(text: str, begin: str, end: str, block: str, where: str = "the text") -> str:
    """`text` with what lies between the marker lines `begin` and `end` replaced by `block`:
    how a README keeps a paragraph that a script writes from a run's files."""
    head, found, rest = text.partition(begin)
    _, ended, tail = rest.partition(end)
    if not (found and ended):
        raise UserError(f"{where}: the markers {begin} ... {end} are missing")
    return f"{head}{begin}\n{block}\n{end}{tail}"
