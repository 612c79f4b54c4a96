"""The `memory:` section of project.yaml: lessons learned while a run generates."""

from __future__ import annotations

from pydantic import Field

from fcsft.section import Section


class MemoryConfig(Section):
    enabled: bool = False
    """Turn validation failures into teacher lessons during generation: each trajectory is
    checked by the validate rules as it is committed, lessons are extracted and written to
    `RUN_DIR/generate/memory/` (MEMORY.md and its topic files), and tasks not yet started are
    generated with them. Off by default, so a run writes the same records as without memory."""
    window: int = Field(16, ge=1)
    """Tasks generated ahead of the lessons: task N is generated with the lessons as they stood
    once the first N + 1 - window tasks were committed and checked. It bounds the tasks in
    flight (with the teacher's `concurrency`); smaller lets lessons reach the teacher sooner, and
    any value gives the same records on every run of the same config."""
    model: str | None = None
    """Role (a key of `models`) that extracts the lessons from the validation messages; none
    turns the rules that rejected most into advice, without a model."""
    top: int = Field(5, ge=1)
    """Most lessons drawn from one batch of messages (rule-based extraction)."""
