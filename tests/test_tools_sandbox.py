"""The python sandbox: each escape or exhaustion attempt is contained, reported, and quick.

These tests run real hostile code. They need namespaces (root, or unprivileged user
namespaces); where the machine has neither, the sandbox refuses to run and these tests are
skipped with that reason, since there is nothing to contain with.
"""

import asyncio
import glob
import json
import os
import re
import socket
import textwrap
import time

import pytest

from fcsft.tools import SandboxLimits, Toolbox, python_tool, run_python
from fcsft.tools.sandbox import _UID_BASE

LIMITS = SandboxLimits(
    wall_s=4, cpu_s=2, memory_mb=256, output_bytes=20_000, processes=16, disk_mb=8
)


def sandboxed(code, limits=LIMITS):
    started = time.monotonic()
    run = asyncio.run(run_python(textwrap.dedent(code), limits))
    return run, time.monotonic() - started


_probe, _ = sandboxed("print('ready')")
pytestmark = pytest.mark.skipif(
    _probe.setup_error is not None, reason=f"no sandbox on this machine: {_probe.setup_error}"
)


def leftover_sandbox_processes():
    """Processes still running under a sandbox uid (there must be none after a run)."""
    found = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status) as handle:
                uid_line = next(line for line in handle if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) >= _UID_BASE:
            found.append(status)
    return found


def test_plain_code_runs_and_reports_its_confinement():
    run, _ = sandboxed("print(6 * 7)")
    assert run.ok and run.stdout == "42\n"
    described = "\n".join(run.confinement)
    assert "empty network namespace" in described
    assert "pivot_root" in described


def test_files_outside_the_scratch_folder_cannot_be_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    secret.chmod(0o600)
    shown = tmp_path / "readable.txt"
    shown.write_text("WORLD-READABLE-43")
    shown.chmod(0o644)
    run, _ = sandboxed(f"""
        import os
        for path in [{str(secret)!r}, {str(shown)!r}, "/etc/shadow", "/proc/1/root/etc/shadow"]:
            try:
                print(path, "READ", open(path).read())
            except OSError as exc:
                print(path, "refused", type(exc).__name__)
        print("root has", sorted(os.listdir("/")))
        print("cwd", os.getcwd(), "uid", os.getuid())
    """)
    assert run.ok, run.stderr
    assert "TOP-SECRET-42" not in run.stdout and "WORLD-READABLE-43" not in run.stdout
    assert (
        f"{secret} refused FileNotFoundError" in run.stdout
    )  # the host's /tmp is not there at all
    assert "/etc/shadow refused PermissionError" in run.stdout
    assert "'work'" not in run.stdout and "'home'" not in run.stdout
    uid = int(re.search(r"cwd /scratch uid (\d+)", run.stdout).group(1))
    if os.getuid() == 0:
        assert uid >= _UID_BASE  # a uid of its own, that owns nothing on the host


def test_a_listener_on_the_host_loopback_cannot_be_reached():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # the listener is reachable from outside the sandbox
        listener.accept()[0].close()
        run, _ = sandboxed(f"""
            import socket
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", {port}))
                print("CONNECTED")
            except OSError as exc:
                print("refused", exc.errno, exc.strerror)
            print(socket.if_nameindex())
        """)
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing arrived
    assert "CONNECTED" not in run.stdout
    assert "refused 101 Network is unreachable" in run.stdout
    assert "[(1, 'lo')]" in run.stdout  # the only interface, and it is down


def test_a_fork_bomb_is_stopped_and_leaves_nothing_behind():
    limits = LIMITS.model_copy(update={"wall_s": 2.0})
    run, elapsed = sandboxed(
        limits=limits,
        code="""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
    )
    verdict = run.verdict(limits)
    assert not run.ok
    assert verdict.startswith("killed: wall time 2s exceeded")
    if any("cgroup" in line and "limited" in line for line in run.confinement):
        assert "the process limit (16) refused" in verdict
    assert elapsed < limits.wall_s + 20  # stopped by the wall clock, not left to fork on
    assert leftover_sandbox_processes() == []


def test_allocating_10_gib_fails_inside_the_limit():
    run, _ = sandboxed("x = bytearray(10 * 2**30)")
    assert not run.ok
    assert "MemoryError" in run.stderr
    assert run.verdict(LIMITS) == "exit code 1 (memory limit 256 MiB reached)"


def test_memory_of_the_whole_process_tree_is_bounded():
    run, _ = sandboxed("""
        import json, os, time
        children = []
        for _ in range(6):  # 6 x 200 MiB touched: over the tree's 264 MiB, under each process's 256
            pid = os.fork()
            if pid == 0:
                block = bytearray(200 * 2**20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(1)
                os._exit(0)
            children.append(pid)
        print(json.dumps([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]))
    """)
    if not any("cgroup" in line and "limited" in line for line in run.confinement):
        pytest.skip("no writable cgroup here: memory is limited per process only")
    assert "process(es)" in run.verdict(
        LIMITS
    ) and "memory limit of the process tree" in run.verdict(LIMITS)
    assert -9 in json.loads(run.stdout)  # the kernel's OOM killer ended some children


def test_an_endless_loop_is_stopped_by_the_cpu_limit():
    # A wall clock far beyond the CPU limit: on a loaded host 2 s of CPU can take longer than
    # the usual 4 s of wall time, and then the wrong limit would stop the loop.
    limits = LIMITS.model_copy(update={"wall_s": 60.0})
    run, _ = sandboxed("while True:\n    pass", limits)
    assert run.verdict(limits) == "killed: CPU time limit 2s exceeded"


def test_sleeping_forever_is_stopped_by_the_wall_clock():
    limits = LIMITS.model_copy(update={"wall_s": 1.0})
    run, elapsed = sandboxed("import time\ntime.sleep(60)", limits)
    assert run.verdict(limits) == "killed: wall time 1s exceeded"
    assert elapsed < 30  # not slept out


def test_printing_a_gigabyte_is_cut_at_the_output_cap():
    limits = LIMITS.model_copy(update={"wall_s": 30.0, "cpu_s": 30.0})
    run, elapsed = sandboxed(
        limits=limits,
        code="""
        import fcntl, sys
        # A 1 MiB pipe: the host takes far more than the cap in one read, as a busy host
        # can with the default 64 KiB one; it must still read on to the end of the output.
        fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 2**20)
        chunk = "y" * 2**20
        for _ in range(1024):
            sys.stdout.write(chunk)
    """,
    )
    assert run.verdict(limits) == "killed: output exceeded 20000 bytes"
    assert len(run.stdout) + len(run.stderr) <= 20_000
    assert elapsed < 15  # ended at the cap, not by the 30 s wall clock


def test_the_scratch_disk_is_bounded_in_total():
    run, _ = sandboxed("""
        for name in ("a.bin", "b.bin"):  # 6 MiB each: each fits, together they exceed 8 MiB
            with open(name, "wb") as handle:
                handle.write(b"z" * (6 * 2**20))
            print("wrote", name)
    """)
    assert run.stdout == "wrote a.bin\n"
    assert "No space left on device" in run.stderr


def test_the_environment_holds_no_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    run, _ = sandboxed("import os, json; print(json.dumps(dict(os.environ)))")
    assert "sk-should-not-leak" not in run.stdout
    assert '"HOME": "/scratch"' in run.stdout
    assert "OPENAI_API_KEY" not in run.stdout


def test_each_run_gets_a_fresh_scratch_folder_that_is_deleted():
    before = set(glob.glob("/tmp/fcsft-sandbox-*"))
    first, _ = sandboxed(
        "open('note.txt', 'w').write('left behind'); print(sorted(__import__('os').listdir()))"
    )
    second, _ = sandboxed("import os; print(sorted(os.listdir()))")
    assert first.stdout == "['main.py', 'note.txt']\n"
    assert second.stdout == "['main.py']\n"
    assert set(glob.glob("/tmp/fcsft-sandbox-*")) == before


def test_the_python_tool_reports_output_errors_and_limits():
    tool = python_tool(wall_s=1, cpu_s=1, memory_mb=256)

    async def scenario():
        return [
            await tool.run({"code": "print('hello')"}),
            await tool.run({"code": "raise ValueError('bad input')"}),
            await tool.run({"code": "import time; time.sleep(30)"}),
            await tool.run({"code": "pass"}),
        ]

    ok, failed, slow, silent = asyncio.run(scenario())
    assert (ok.content, ok.error) == ("hello", False)
    assert failed.error and "ValueError: bad input" in failed.content
    assert failed.content.endswith("[exit code 1]")
    assert slow.error and slow.content == "[killed: wall time 1s exceeded]"
    assert (silent.content, silent.error) == ("(no output)", False)


def test_a_cancelled_call_leaves_no_process_and_no_folder():
    before = set(glob.glob("/tmp/fcsft-sandbox-*"))

    async def give_up():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(run_python("import time\ntime.sleep(60)", LIMITS), 0.5)

    asyncio.run(give_up())
    time.sleep(0.2)
    assert leftover_sandbox_processes() == []
    assert set(glob.glob("/tmp/fcsft-sandbox-*")) == before


def test_the_python_tool_from_config():
    async def scenario():
        async with await Toolbox.open(
            [{"builtin": "python", "wall_s": 2, "memory_mb": 256}]
        ) as box:
            return box.specs[0], await box.run("python", {"code": "print(sum(range(10)))"})

    spec, result = asyncio.run(scenario())
    assert spec.required == ["code"] and "no network access" in spec.description
    assert result.content == "45" and not result.error


def test_a_lone_surrogate_in_the_code_is_an_error_result_not_a_raise():
    run, _ = sandboxed("print('\ud800 alone')")
    assert not run.ok and run.exit_code == 1
    assert run.stderr.startswith("SyntaxError: the code is not valid text: '\\ud800'")
    result = asyncio.run(python_tool().run({"code": "x = '\udcff'"}))
    assert result.error and "SyntaxError: the code is not valid text" in result.content
    assert result.content.endswith("[exit code 1]")
