"""The optimizer's errors: each carries a reason a person can act on."""

from __future__ import annotations


class OptimizerError(Exception):
    """Something the optimizer refuses to do, with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadInput(OptimizerError):
    """The command's input names nothing that exists or cannot be read (exit status 2)."""


class FlagError(OptimizerError):
    """A flag rule that cannot be applied (bad percentage, unknown lever or policy...)."""


class ExperimentError(OptimizerError):
    """An experiment that cannot be started, reported or promoted."""


class FineTuneError(OptimizerError):
    """A fine-tuning run that failed (no data, upload refused, job failed)."""
