"""Payloads of package installs: what was asked for, where the install reached, what it installed."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class PackageInstallStarted(Payload):
    """An install began: the manager (pip, r, apt, conda, ...) and the package specs as checked."""

    KIND = K.PACKAGE_INSTALL_STARTED

    manager: str = C.text(required=True)
    packages: tuple[str, ...] = C.items()


@declare
@dataclass(frozen=True, slots=True)
class InstallEgress(Payload):
    """Where an install reached through the egress proxy, and what it was refused (before
    `package.installed`, so the log reads: what the install reached, then what it installed)."""

    KIND = K.INSTALL_EGRESS

    manager: str = C.text()
    reached: tuple[str, ...] = C.items()
    refused: tuple[str, ...] = C.items()
    unreachable: tuple[str, ...] = C.items()
    requests: int | None = C.integer()
    refusals: tuple[str, ...] = C.items()


@declare
@dataclass(frozen=True, slots=True)
class PackageInstalled(Payload):
    """A package now in the project. `build` and `channel` (version 2) say which conda build it is and
    from which channel; other managers leave them out."""

    KIND = K.PACKAGE_INSTALLED
    VERSION = 2

    name: str = C.text(required=True)
    version: str = C.text()
    manager: str = C.text()
    build: str | None = C.text(None, omit=True, since=2)
    channel: str | None = C.text(None, omit=True, since=2)
