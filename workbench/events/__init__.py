"""Everything that happens is an event: the kinds, their typed payloads, the `Event` and the `EventBus`.

One place holds the event contract (see `contract`): every kind Workbench publishes (`kinds`), one frozen
payload dataclass per kind (`execution`, `install`, `agent`, `memory`, `session`), each encoding to the
JSON the audit log stores and decoding any version of it, and the registry of kind -> payload class that
the bus checks every publish against. Producers emit payload classes; the report, the TUI and the CLI
decode through `decode` / `Event.decoded`.
"""

from __future__ import annotations

from workbench.events.agent import (
    AgentApproval,
    AgentObservation,
    FileChanged,
    FileRefused,
    LlmAction,
    LlmMalformed,
    LlmRequest,
    TaskFinished,
    TaskStarted,
)
from workbench.events.approval import ApprovalDecided
from workbench.events.bus import (
    Event,
    EventBus,
    Subscriber,
    Subscription,
    current_user,
    new_session_id,
    utc_now,
)
from workbench.events.contract import Payload
from workbench.events.database import NetConnection
from workbench.events.declared import (
    PAYLOADS,
    PLUGIN_GROUP,
    STRICT_ENV,
    Declared,
    EventContractError,
    check,
    declare,
    declared_kinds,
    decode,
    payload_class,
    problems,
    strict,
    typed,
    version,
    violation,
)
from workbench.events.environment import EnvironmentRecorded
from workbench.events.execution import ExecFinished, ExecOutput, ExecStarted, SandboxStarted
from workbench.events.install import InstallEgress, PackageInstalled, PackageInstallStarted
from workbench.events.kinds import *  # noqa: F403  (every kind constant, as events.EXEC_STARTED)
from workbench.events.mcp import McpCall
from workbench.events.memory import (
    MemoryDeleted,
    MemoryIgnored,
    MemoryReindexed,
    MemoryRetrieved,
    MemoryRolledUp,
    MemorySaved,
)
from workbench.events.network import NetRequest, SecretLeak
from workbench.events.replay import ReplayCompared
from workbench.events.session import Error, SessionFinished, SessionStarted

__all__ = [  # noqa: F405  (the kinds come from the star import)
    "AgentApproval", "AgentObservation", "ApprovalDecided", "check", "current_user", "declare", "Declared", "declared_kinds",
    "decode", "EnvironmentRecorded", "Error", "Event", "EventBus", "EventContractError", "ExecFinished",
    "ExecOutput", "ExecStarted", "FileChanged", "FileRefused", "InstallEgress", "LlmAction", "LlmMalformed",
    "LlmRequest", "McpCall", "NetConnection", "NetRequest", "SecretLeak", "MemoryDeleted", "MemoryIgnored", "MemoryReindexed", "MemoryRetrieved",
    "MemoryRolledUp", "MemorySaved", "new_session_id", "PackageInstalled", "PackageInstallStarted",
    "Payload", "ReplayCompared", "payload_class", "PAYLOADS", "PLUGIN_GROUP", "problems", "SandboxStarted", "SessionFinished",
    "SessionStarted", "strict", "STRICT_ENV", "Subscriber", "Subscription", "TaskFinished", "TaskStarted",
    "typed", "utc_now", "version", "violation",
    # the kinds
    "SESSION_STARTED", "SESSION_FINISHED", "TASK_STARTED", "TASK_FINISHED", "LLM_REQUEST", "LLM_ACTION",
    "LLM_MALFORMED", "AGENT_APPROVAL", "AGENT_OBSERVATION", "SANDBOX_STARTED", "EXEC_STARTED",
    "EXEC_OUTPUT", "EXEC_FINISHED", "ENVIRONMENT_RECORDED", "REPLAY_COMPARED", "PACKAGE_INSTALL_STARTED", "INSTALL_EGRESS",
    "PACKAGE_INSTALLED", "FILE_CHANGED", "FILE_REFUSED", "MEMORY_SAVED", "MEMORY_DELETED",
    "MEMORY_RETRIEVED", "MEMORY_REINDEXED", "MEMORY_ROLLED_UP", "MEMORY_IGNORED", "MCP_CALL", "APPROVAL_DECIDED", "NET_CONNECTION", "NET_REQUEST", "SECRET_LEAK", "ERROR",
]
