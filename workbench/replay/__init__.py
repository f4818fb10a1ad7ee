"""Replay: run a session's recorded executions again, in a throw-away copy of the workspace restored to their
recorded inputs, on their recorded image, and say per execution whether it reproduced bit for bit
(`workbench audit replay`). `record` reads the log, `scratch` makes the copy, `compare` judges, `run` drives.
"""

from workbench.replay.record import REPLAY_TRIGGER, ReplayError
from workbench.replay.run import DIFFERS, NOT_REPLAYED, REPRODUCED, Outcome, Report, replay

__all__ = ["DIFFERS", "NOT_REPLAYED", "Outcome", "REPLAY_TRIGGER", "Report", "REPRODUCED", "ReplayError", "replay"]
