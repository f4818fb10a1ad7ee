"""Workbench: a terminal workstation where a local LLM agent runs code in rootless containers."""

__version__ = "0.1.0"
