"""Memory: keep the lessons of long runs worth keeping, in MEMORY.md and topic files."""

from fcsft.memory.coordinator import MIN_NEW_MESSAGES, ExtractionCoordinator, Session
from fcsft.memory.writer import Memory, MemoryCorrupt, MemoryWriter

__all__ = [
    "MIN_NEW_MESSAGES",
    "ExtractionCoordinator",
    "Memory",
    "MemoryCorrupt",
    "MemoryWriter",
    "Session",
]
