"""The agent: a local LLM in a self-correcting ReAct loop that runs code in the sandbox.

Modules, one job each:

- `gguf`     read a GGUF file's header (metadata, tensor table) without loading weights
- `models`   find GGUF models on this machine and remember the project's choice
- `llm`      the model provider seam, llama.cpp and an OpenAI-compatible endpoint behind it
- `actions`  the JSON action schema, its strict grammar, parsing and validation
- `prompts`  the system prompt and how observations are worded for the model
- `repair`   deterministic hints for common failures (missing module, missing file, timeout)
- `loop`     the ReAct loop itself; emits events, never prints
"""
