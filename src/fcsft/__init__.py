"""fcsft: function-calling SFT by data engineering."""

from fcsft._version import __version__
from fcsft.errors import UserError
from fcsft.formats import FormatError, get_format
from fcsft.records import (
    Call,
    FinalAnswer,
    Meta,
    Observation,
    Say,
    Seed,
    Task,
    Think,
    Tool,
    ToolCall,
    Trajectory,
    Usage,
    Verdict,
)
from fcsft.runner.run import run_stage
from fcsft.stage import Outcome, Stage

__all__ = [
    "Call",
    "FinalAnswer",
    "FormatError",
    "Meta",
    "Observation",
    "Outcome",
    "Say",
    "Seed",
    "Stage",
    "Task",
    "Think",
    "Tool",
    "ToolCall",
    "Trajectory",
    "Usage",
    "UserError",
    "Verdict",
    "__version__",
    "get_format",
    "run_stage",
]
