"""Memory across sessions: Markdown notes under `.workbench/memory/`, searchable by meaning and words.

- notes.py    the Markdown files (the truth): front-matter, safe names, atomic writes
- index.py    the derived search index (apsw + sqlite-vec vec0 + FTS5) in `.workbench/memory-index.db`
- fusion.py   FTS query building and reciprocal rank fusion
- embed.py    llama.cpp embeddings, loaded lazily, one model per process
- model.py    which embedding GGUF to use, and how good it is (doctor)
- context.py  retrieved notes as a prompt block within a token budget
- store.py    MemoryStore, the API the CLI, TUI and agent use

Nothing here imports Textual.
"""

from workbench.memory.notes import Note
from workbench.memory.store import MEMORY_DELETED, MEMORY_REINDEXED, MEMORY_RETRIEVED, MemoryStore

__all__ = ["MEMORY_DELETED", "MEMORY_REINDEXED", "MEMORY_RETRIEVED", "MemoryStore", "Note"]
