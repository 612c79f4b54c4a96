"""The extraction coordinator: decides when lessons are extracted from a growing conversation.

Semantics, exactly:

- `maybe_extract(session)` returns at once when fewer than `min_new_messages` messages arrived
  since the last *successful* extraction;
- when an extraction is already running it sets a dirty flag and returns;
- when the running extraction ends and the flag is set, the flag is cleared and exactly one more
  extraction runs, over what arrived meanwhile (if that is still enough messages);
- the cursor advances only after the extracted memories were written, so a failed extraction
  loses nothing: the same messages are offered again next time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MIN_NEW_MESSAGES = 4

Extract = Callable[[Sequence[dict[str, Any]]], Awaitable[Any]]
"""Given the new messages, extract and persist memories; raising means nothing was persisted."""


@dataclass
class Session:
    """A conversation that grows; `messages` only ever get appended to."""

    messages: list[dict[str, Any]] = field(default_factory=list)


class ExtractionCoordinator:
    def __init__(self, extract: Extract, min_new_messages: int = MIN_NEW_MESSAGES):
        self.extract = extract
        self.min_new_messages = min_new_messages
        self.cursor = 0  # messages[:cursor] have been extracted and persisted
        self.running = False
        self.dirty = False
        self.runs = 0  # extractions started, for reports and tests
        self.failures = 0

    def pending(self, session: Session) -> int:
        return len(session.messages) - self.cursor

    async def maybe_extract(self, session: Session) -> bool:
        """Extract if due; returns whether this call ran (at least) one extraction."""
        if self.pending(session) < self.min_new_messages:
            return False
        if self.running:
            self.dirty = True
            return False
        self.running = True
        try:
            await self._run(session)
            while self.dirty:
                self.dirty = False  # exactly one re-run per flag, however often it was set
                if self.pending(session) >= self.min_new_messages:
                    await self._run(session)
        finally:
            self.running = False
        return True

    async def _run(self, session: Session) -> None:
        end = len(session.messages)  # what arrives during the run is left for the next one
        batch = session.messages[self.cursor : end]
        self.runs += 1
        try:
            await self.extract(batch)
        except Exception as exc:
            self.failures += 1
            log.warning(
                "memory extraction failed (%s); %d messages kept for the next try", exc, len(batch)
            )
            return
        self.cursor = end
