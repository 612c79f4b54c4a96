"""Installed in every Ray worker process of the test cluster (`worker_process_setup_hook`): an
audit hook that refuses, and writes down, any file operation under `FCSFT_TEST_FORBIDDEN`, the
folder that holds the run directories only the driver may touch."""

import os
import sys

_EVENTS = {
    "open",
    "sqlite3.connect",
    "os.mkdir",
    "os.listdir",
    "os.scandir",
    "os.remove",
    "os.rename",
    "os.truncate",
    "shutil.rmtree",
    "os.chdir",
}


def install() -> None:
    forbidden = os.path.join(os.environ["FCSFT_TEST_FORBIDDEN"], "")
    log = os.environ["FCSFT_TEST_VIOLATIONS"]

    def guard(event: str, args: tuple) -> None:
        if event not in _EVENTS or not args or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        if os.path.join(path, "").startswith(forbidden):
            # Written down too, so that a caller swallowing the error cannot hide it.
            handle = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(handle, f"{os.getpid()} {event} {path}\n".encode())
            os.close(handle)
            raise PermissionError(f"a Ray worker touched the run directory: {event} {path}")

    sys.addaudithook(guard)
