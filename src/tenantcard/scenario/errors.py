"""Errors of the scenario layer. Messages never carry keys, PINs or credentials."""

from __future__ import annotations


class ScenarioError(Exception):
    """The scenario cannot go on (a server did not start, a precondition is missing)."""


class ProcessStartError(ScenarioError):
    """A server process exited or did not become ready in time; the message names its log file."""


class Interrupted(ScenarioError):
    """Ctrl-C or SIGTERM: the scenario stops, its servers are stopped."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


class StepFailed(ScenarioError):
    """A step did not have its expected outcome; ``detail`` says what happened instead."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
