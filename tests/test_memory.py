"""The coordinator's semantics under controlled timing, and the writer under two processes."""

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from fcsft.memory import ExtractionCoordinator, Memory, MemoryCorrupt, MemoryWriter, Session
from fcsft.memory.extract import clean, extract_with_model, lessons_from_validation
from fcsft.models.base import ChatResponse


def messages(n, start=0):
    return [{"role": "user", "content": f"m{i}"} for i in range(start, start + n)]


class Gate:
    """An extractor that records each batch and waits until the test lets it finish."""

    def __init__(self, fail_first=False):
        self.batches = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail_first = fail_first

    async def __call__(self, batch):
        self.batches.append([m["content"] for m in batch])
        self.started.set()
        await self.release.wait()
        if self.fail_first and len(self.batches) == 1:
            raise RuntimeError("model down")


def test_threshold():
    async def main():
        gate = Gate()
        gate.release.set()
        coordinator = ExtractionCoordinator(gate)
        session = Session(messages(3))
        assert await coordinator.maybe_extract(session) is False and gate.batches == []
        session.messages += messages(1, 3)
        assert await coordinator.maybe_extract(session) is True
        assert gate.batches == [["m0", "m1", "m2", "m3"]] and coordinator.cursor == 4
        session.messages += messages(3, 4)
        assert await coordinator.maybe_extract(session) is False  # 3 new since the last success

    asyncio.run(main())


def test_single_flight_and_exactly_one_rerun():
    async def main():
        gate = Gate()
        coordinator = ExtractionCoordinator(gate)
        session = Session(messages(4))
        first = asyncio.create_task(coordinator.maybe_extract(session))
        await gate.started.wait()
        session.messages += messages(5, 4)
        # Three requests during the run: none starts a second extraction; the flag is set.
        for _ in range(3):
            assert await coordinator.maybe_extract(session) is False
        assert coordinator.dirty and len(gate.batches) == 1
        gate.release.set()
        assert await first is True
        # Exactly one re-run, over what arrived meanwhile.
        assert gate.batches == [["m0", "m1", "m2", "m3"], ["m4", "m5", "m6", "m7", "m8"]]
        assert coordinator.runs == 2 and not coordinator.dirty and coordinator.cursor == 9

    asyncio.run(main())


def test_failed_extraction_loses_no_message():
    async def main():
        gate = Gate(fail_first=True)
        gate.release.set()
        coordinator = ExtractionCoordinator(gate)
        session = Session(messages(4))
        await coordinator.maybe_extract(session)
        assert coordinator.cursor == 0 and coordinator.failures == 1
        session.messages += messages(1, 4)
        await coordinator.maybe_extract(session)
        assert gate.batches[-1] == ["m0", "m1", "m2", "m3", "m4"] and coordinator.cursor == 5

    asyncio.run(main())


def test_writer_merges_replaces_and_indexes(tmp_path):
    writer = MemoryWriter(tmp_path)
    counts = writer.add(
        [
            Memory("teacher", "Always pass max_results to search", "omitted 7x"),
            Memory("teacher", "Answer 2+2 directly", "no tool needed"),
        ]
    )
    assert counts == {"added": 2, "replaced": 0, "duplicate": 0}
    counts = writer.add(
        [
            Memory("teacher", "always pass max_results to search", "again"),
            Memory("teacher", "Always pass max_results to every search call", "omitted 9x"),
        ]
    )
    assert counts == {"added": 0, "replaced": 1, "duplicate": 1}
    texts = [m.text for m in writer.read("teacher")]
    assert texts == ["Always pass max_results to every search call", "Answer 2+2 directly"]
    assert "- [teacher](teacher.md): 2" in (tmp_path / "MEMORY.md").read_text()
    assert writer.forget("teacher", "2+2") and [m.text for m in writer.read("teacher")] == texts[:1]


def test_corrupt_file_is_reported_not_overwritten(tmp_path):
    (tmp_path / "teacher.md").write_text("# teacher\n\n- fine (why: ok)\nsomething else\n")
    writer = MemoryWriter(tmp_path)
    with pytest.raises(MemoryCorrupt, match=r"teacher.md:4: expected"):
        writer.add([Memory("teacher", "new", "x")])
    assert (tmp_path / "teacher.md").read_text().endswith("something else\n")


def _write_many(root: str, worker: int, count: int) -> None:
    writer = MemoryWriter(Path(root))
    for i in range(count):  # words unique to each memory, so none replaces another
        writer.add([Memory("shared", f"fact{worker}x{i} noted{worker}x{i}", "test")])


def test_two_processes_lose_no_update(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(tmp_path), w, 25)) for w in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    texts = {m.text for m in MemoryWriter(tmp_path).read("shared")}
    assert len(texts) == 50


def test_model_extraction_and_cleaning():
    class Model:
        async def chat(self, request):
            return ChatResponse(
                message={
                    "content": 'Sure: {"memories": [{"topic": "teacher", '
                    '"text": "Use python for arithmetic", "why": "x"}, '
                    '{"topic": "teacher", "text": " ", "why": "empty"}, '
                    '{"topic": "teacher", "text": "Use python for '
                    'arithmetic", "why": "dup"}]}'
                }
            )

    found = asyncio.run(extract_with_model(Model(), "m", messages(4)))
    assert found == [Memory("teacher", "Use python for arithmetic", "x")]
    assert clean([Memory("", "x"), Memory("t", "")]) == []


def test_lessons_from_validation(tmp_path):
    import json

    (tmp_path / "stats.json").write_text(
        json.dumps(
            {"in": 40, "reasons": {"format.missing_required": 7, "logic.ungrounded_answer": 3}}
        )
    )
    rows = [
        {
            "id": f"t{i}",
            "reasons": [
                {
                    "stage": "validate",
                    "rule": "format.missing_required",
                    "passed": False,
                    "reason": "c0 search: 'max_results' is a required property",
                }
            ],
            "record": None,
        }
        for i in range(7)
    ]
    (tmp_path / "rejected.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lessons = lessons_from_validation(tmp_path)
    assert lessons[0].text == "Always pass every required parameter (format.missing_required)"
    assert lessons[0].why.startswith("7 of 40 trajectories rejected")
    assert any("'max_results' is a required property" in m.text for m in lessons)
