"""Run as a script (`python -I -S _sandbox_launcher.py CONFIG`): confine, then exec the user's code.

Standard library only and no fcsft import, because it starts fresh for every call. It runs as
the same user as fcsft and builds the confinement in three processes:

    launcher   joins the cgroups, unshares the namespaces, waits
    reaper     pid 1 of the new pid namespace: builds the new root (a fresh /proc must be
               mounted from inside the pid namespace, and before the old root is detached),
               waits for the user process; when it exits, the kernel kills everything left
               in the namespace
    user       resource limits, unprivileged uid, no_new_privs, exec python main.py

Progress goes to the parent as JSON lines on the status pipe (`status_fd`): what confinement
was achieved, and how the user process ended (exit code or signal, CPU seconds used). The
user process never holds that pipe, so it cannot forge its own verdict.
"""

import ctypes
import json
import os
import platform
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}  # syscall numbers; glibc has no wrapper
DEVICES = ("null", "zero", "full", "random", "urandom")
SCRATCH = "/scratch"
SETUP_FAILED = 125

_libc = ctypes.CDLL(None, use_errno=True)


def main() -> None:
    config = json.loads(sys.argv[1])
    status = config["status_fd"]
    achieved: list[str] = []
    try:
        for procs in config["cgroups"]:
            with open(procs, "w") as handle:
                handle.write(str(os.getpid()))
        if config["cgroups"]:
            achieved.append("cgroup: memory and process count limited for the whole tree")
        code = _read(os.path.join(config["box"], "main.py"))
        namespaces = _unshare(config, achieved)
    except OSError as exc:
        _report(status, setup_error=_describe(exc))
        os._exit(SETUP_FAILED)
    workdir = SCRATCH if namespaces else config["box"]
    reaper = os.fork()
    if reaper == 0:
        _reap(config, status, code, workdir, achieved, namespaces)
    _, wait_status = os.waitpid(reaper, 0)
    os._exit(os.waitstatus_to_exitcode(wait_status) & 0xFF)


def _unshare(config: dict, achieved: list[str]) -> bool:
    """New net, mount, pid, ipc and uts namespaces; a user namespace too when not root."""
    flags = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        flags |= CLONE_NEWUSER
    if _libc.unshare(flags) != 0:
        error = ctypes.get_errno()
        if config["isolation"] == "required":
            raise OSError(error, f"cannot create namespaces: {os.strerror(error)}")
        achieved.append(f"no namespaces ({os.strerror(error)}): the network is NOT isolated")
        return False
    if uid != 0:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
    achieved.append("network: empty network namespace (no interfaces up, not even loopback)")
    return True


def _build_file_system(config: dict, achieved: list[str]) -> None:
    """A new root holding only the listed folders (read-only), a few devices and the scratch.

    It is built on a tmpfs and made the root with pivot_root; the old root is then detached,
    so no path, `..` or open-directory trick leads back to the host's files.
    """
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    new_root = config["new_root"]
    _mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    # /tmp is a tmpfs of its own, not the scratch: a visible path under /tmp (a virtualenv
    # there) gets its mount point in /tmp and leaves the working folder as the code made it.
    # Tmpfs pages count against the run's memory cgroup, so two of them do not double its cap.
    owner = "uid=0,gid=0" if config["uid"] is None else f"uid={config['uid']},gid={config['uid']}"
    size = config["limits"]["disk_bytes"]
    for folder in (SCRATCH, "/tmp"):
        os.makedirs(new_root + folder, mode=0o755)
        _mount(
            "tmpfs",
            new_root + folder,
            "tmpfs",
            MS_NOSUID | MS_NODEV,
            f"mode=700,size={size},{owner}",
        )
    os.makedirs(new_root + "/proc", mode=0o555)
    try:
        _mount("proc", new_root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except PermissionError:  # a user namespace under a /proc with masked parts
        achieved.append("proc: not mounted (not permitted here); /proc is empty")
    shown = [path for path in config["visible"] if _show(path, new_root, achieved)]
    for device in DEVICES:
        _bind(f"/dev/{device}", new_root, read_only=False)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{new_root}/dev/{name}")
    os.makedirs(new_root + "/dev/shm", mode=0o755)  # POSIX semaphores (multiprocessing) live here
    _mount("tmpfs", new_root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={size}")
    _enter(new_root, achieved)
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    achieved.append(f"files: only {', '.join(shown)} (read-only), {SCRATCH} and a few devices")
    achieved.append(f"scratch: {SCRATCH} and /tmp, private tmpfs of {size // 2**20} MiB each")


def _show(path: str, new_root: str, achieved: list[str]) -> bool:
    """Bring `path` into the new root, read-only.

    A relative symlink is copied as a symlink (`/bin -> usr/bin` on merged-/usr systems): its
    target is shown too. Anything else is bound, so an absolute link shows its target's content.
    """
    if os.path.islink(path) and not os.readlink(path).startswith("/"):
        os.makedirs(os.path.dirname(new_root + path), mode=0o755, exist_ok=True)
        os.symlink(os.readlink(path), new_root + path)
        return True
    if not os.path.exists(path):
        return False
    try:
        _bind(path, new_root, read_only=True)
    except PermissionError:  # a user namespace may not change flags the host locked
        achieved.append(f"files: {path} is visible but could not be made read-only")
    return True


def _bind(path: str, new_root: str, read_only: bool) -> None:
    target = new_root + path
    if os.path.isdir(path):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    _mount(path, target, None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _enter(new_root: str, achieved: list[str]) -> None:
    """Make `new_root` the root: pivot_root(".", ".") stacks the old root on it, then detach it."""
    os.chdir(new_root)
    number = PIVOT_ROOT.get(platform.machine())
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        if _libc.umount2(b".", MNT_DETACH) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"detaching the old root: {os.strerror(error)}")
        achieved.append("root: pivot_root into the new root, old root detached")
    else:
        os.chroot(".")  # weaker: the old root stays mounted, out of reach of an unprivileged uid
        achieved.append("root: chroot into the new root (pivot_root unavailable)")
    os.chdir("/")


def _reap(
    config: dict, status: int, code: bytes, workdir: str, achieved: list[str], namespaces: bool
) -> None:
    """pid 1: start the user process, wait for it, report how it ended, then exit."""
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if namespaces:
            _build_file_system(config, achieved)
        main_py = os.path.join(workdir, "main.py")
        with open(main_py, "wb") as handle:
            handle.write(code)
        if config["uid"] is not None:
            os.chown(main_py, config["uid"], config["uid"])
    except OSError as exc:
        _report(status, setup_error=_describe(exc))
        os._exit(SETUP_FAILED)
    user = os.fork()
    if user == 0:
        _become_user(config, status, workdir, achieved)
    while True:  # as pid 1 this also reaps the orphans the user process leaves
        pid, wait_status, usage = os.wait4(-1, 0)
        if pid == user:
            break
    ended = {"cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_kb": usage.ru_maxrss}
    if os.WIFSIGNALED(wait_status):
        _report(status, signal=os.WTERMSIG(wait_status), **ended)
    else:
        _report(status, exit=os.WEXITSTATUS(wait_status), **ended)
    os._exit(0)


def _become_user(config: dict, status: int, workdir: str, achieved: list[str]) -> None:
    limits = config["limits"]
    try:
        cpu = int(limits["cpu_s"] + 0.999)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["disk_bytes"],) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if config["uid"] is not None:
            os.setgroups([])
            os.setgid(config["uid"])
            os.setuid(config["uid"])
            achieved.append(f"user: uid {config['uid']}, no groups, owns no file outside scratch")
        # After the uid change, so that the count is of this uid's processes only.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"],) * 2)
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.chdir(workdir)
        achieved.append(
            f"limits: {limits['cpu_s']:g}s CPU, {limits['memory_bytes'] // 2**20} MiB address "
            f"space, {limits['processes']} processes, {limits['disk_bytes'] // 2**20} MiB per file"
        )
        _report(status, started=True, confinement=achieved)
        os.set_inheritable(status, False)
        env = dict(config["env"], HOME=workdir, TMPDIR=workdir)
        os.execve(config["python"], [config["python"], "-E", "-s", "-u", "-B", "main.py"], env)
    except OSError as exc:
        _report(status, setup_error=f"cannot start python: {_describe(exc)}")
    except Exception as exc:  # a bug here must not leave this fork running the reaper's code
        _report(status, setup_error=f"cannot start python: {type(exc).__name__}: {exc}")
    os._exit(SETUP_FAILED)


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    def encode(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    if _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {target}: {os.strerror(error)}")


def _describe(exc: OSError) -> str:
    if exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _report(status: int, **fields) -> None:
    os.write(status, (json.dumps(fields) + "\n").encode())


if __name__ == "__main__":
    main()
