"""Every event kind Workbench publishes, by name. Each has one payload class (see `workbench.events`)."""

# A session: one trigger (a person, the CLI, a schedule) from open to close.
SESSION_STARTED = "session.started"
SESSION_FINISHED = "session.finished"

# An agent run within a session.
TASK_STARTED = "task.started"
TASK_FINISHED = "task.finished"
LLM_REQUEST = "llm.request"
LLM_ACTION = "llm.action"
LLM_MALFORMED = "llm.malformed"
AGENT_APPROVAL = "agent.approval"
AGENT_OBSERVATION = "agent.observation"

# The sandbox.
SANDBOX_STARTED = "sandbox.started"
EXEC_STARTED = "exec.started"
EXEC_OUTPUT = "exec.output"
EXEC_FINISHED = "exec.finished"
ENVIRONMENT_RECORDED = "environment.recorded"  # the packages of an image + workspace state, once per state
REPLAY_COMPARED = "replay.compared"  # a recorded execution run again (workbench audit replay), and the verdict

# Installs.
PACKAGE_INSTALL_STARTED = "package.install_started"
INSTALL_EGRESS = "install.egress"  # where an install reached, and what it was refused
PACKAGE_INSTALLED = "package.installed"

# Files the agent's tools touched or would not touch.
FILE_CHANGED = "file.changed"
FILE_REFUSED = "file.refused"  # a file tool would not touch a path (a symlink, a FIFO, a device)

# Memory.
MEMORY_SAVED = "memory.saved"
MEMORY_DELETED = "memory.deleted"
MEMORY_RETRIEVED = "memory.retrieved"
MEMORY_REINDEXED = "memory.reindexed"
MEMORY_ROLLED_UP = "memory.rolled_up"
MEMORY_IGNORED = "memory.ignored"  # a note file that is not a regular file: ignored, never read

# A call another agent made through the MCP server (`workbench mcp`).
MCP_CALL = "mcp.call"

# An approval another process (the MCP server) asked the open TUI for (workbench.approvals).
APPROVAL_DECIDED = "approval.decided"

# The network code may reach (workbench network allow): one per database connection.
NET_CONNECTION = "net.connection"
# ... one per HTTP request through the policy proxy, and an injected secret found in an execution's output.
NET_REQUEST = "net.request"
SECRET_LEAK = "secret.leak"

# Something went wrong that the record must show (a memory failure, a failed scheduled run, ...).
ERROR = "error"
