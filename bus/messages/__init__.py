"""Every message FlipSync sends over NATS, as versioned msgspec Structs.

Money is integer micro-dollars (``*_micro_usd``) on the wire, never float. Each Struct carries
``v``, its schema version; a reader rejects a version it does not know with a clear error
(see ``bus.codec``). New optional fields may be added without a version bump.

One module per idea: ``llm`` (requests and results), ``ledger`` (ledger events, quality
signals and grade alerts), ``budgets``, ``workflow``, ``chat``, ``flags``; every name is
importable from here.
"""

from __future__ import annotations

from bus.messages.base import WIRE_VERSION, now_ms
from bus.messages.budgets import (
    BudgetAlert,
    BudgetChange,
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
    BudgetSpec,
    RequestCap,
    TierQuota,
)
from bus.messages.chat import ChatAsk, ChatReply, ChatTurn
from bus.messages.flags import FlagChange, FlagRule, PromptPatch
from bus.messages.ledger import GradeAlert, LedgerEvent, QualitySignal
from bus.messages.llm import (
    DEFAULT_PROJECT,
    DEFAULT_WORKSPACE,
    CachePolicy,
    ChatMessage,
    DeadLetter,
    ErrorCode,
    FlightOutcome,
    ImagePart,
    Lever,
    LlmRequest,
    LlmResult,
    LlmStreamChunk,
    OutputSchema,
    Part,
    Priority,
    Status,
    TaskType,
    TextPart,
    Usage,
    error_result,
)
from bus.messages.workflow import (
    AgentCheckpoint,
    AgentDone,
    Photo,
    PhotoAnalysis,
    PhotoRendition,
    ProductUploaded,
    RunAgent,
    UploadCheckpoint,
    WorkflowDone,
    WorkflowProgress,
    WorkflowState,
)

__all__ = [
    "AgentCheckpoint",
    "AgentDone",
    "BudgetAlert",
    "BudgetChange",
    "BudgetPeriod",
    "BudgetPolicy",
    "BudgetScope",
    "BudgetSpec",
    "CachePolicy",
    "ChatAsk",
    "ChatMessage",
    "ChatReply",
    "ChatTurn",
    "DEFAULT_PROJECT",
    "DEFAULT_WORKSPACE",
    "DeadLetter",
    "ErrorCode",
    "FlagChange",
    "FlagRule",
    "FlightOutcome",
    "GradeAlert",
    "ImagePart",
    "LedgerEvent",
    "Lever",
    "LlmRequest",
    "LlmResult",
    "LlmStreamChunk",
    "OutputSchema",
    "Part",
    "Photo",
    "PhotoAnalysis",
    "PhotoRendition",
    "Priority",
    "ProductUploaded",
    "PromptPatch",
    "QualitySignal",
    "RequestCap",
    "RunAgent",
    "Status",
    "TaskType",
    "TextPart",
    "TierQuota",
    "UploadCheckpoint",
    "Usage",
    "WIRE_VERSION",
    "WorkflowDone",
    "WorkflowProgress",
    "WorkflowState",
    "error_result",
    "now_ms",
]
