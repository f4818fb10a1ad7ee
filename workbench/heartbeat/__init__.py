"""Heartbeat: scheduled, unattended runs (cron schedules, the scheduler, the runner)."""
