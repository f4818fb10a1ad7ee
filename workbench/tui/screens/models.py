"""The model picker (palette → "Choose model"): the servers and GGUF files found on this machine.

What it lists comes from `services.model_choices` (run in a thread worker by the caller; probing servers and
reading GGUF headers must not block the event loop). Each row shows the name, size, quantisation and where
the model lives; the bundled demo model is marked as such. Names come from servers and from disk, so they
are shown as plain text on one line (no markup, escapes visible). Skipped servers are listed as notes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from workbench.inert import one_line
from workbench.tui.services import human_size


def describe(choice: Any) -> str:
    """One line: name · size · quantisation · source · where (the file's path or the server's URL)."""
    size = human_size(choice.size) if choice.size else "size ?"
    demo = "  ·  demo model, cannot do real tasks" if choice.is_demo else ""
    problem = f"  ·  unusable: {choice.problem}" if choice.problem else ""
    return one_line(f"{choice.name}  ·  {size}  ·  {choice.quantization}  ·  {choice.source}  ·  "
                    f"{choice.where}{demo}{problem}")


class ModelChooser(ModalScreen[Any]):
    """Dismisses with the picked `Choice`, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, choices: list[Any], notes: list[str] | None = None) -> None:
        super().__init__()
        self.choices = [c for c in choices if not c.problem]  # an unreadable file is not offered
        self.notes = list(notes or [])

    def compose(self) -> ComposeResult:
        with Vertical(id="model-dialog", classes="dialog"):
            yield Label("Choose model (enter picks, esc cancels)", classes="dialog-title")
            options = [Option(Text(describe(c), style="yellow" if c.is_demo else ""), id=str(i))
                       for i, c in enumerate(self.choices)]
            if options:
                yield OptionList(*options, id="model-choices")
            else:
                yield Label(Text("No model found: no server answers on 127.0.0.1 (Ollama 11434, LM Studio "
                                 "1234, llama-server 8080) and no GGUF file in the known caches."))
            for note in self.notes:
                yield Label(Text(one_line(note), style="dim"), classes="model-note")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id or 0)])

    def action_cancel(self) -> None:
        self.dismiss(None)
