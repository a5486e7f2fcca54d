"""One divergence rule for every torch training loop: a loss that is not finite, or that has grown far above
where the run started, means the run diverged (e.g. plain gradient descent with a learning rate of 1e6)."""

from __future__ import annotations

import math

from .errors import RunFailed

GROWTH_LIMIT = 1e4  # a loss 10^4 times its first value: no converging run gets there


class Diverged(RunFailed):
    """A training run diverged; the message names the run. Exit code 1."""


class DivergenceGuard:
    """Watches one run's loss. ``diverged(loss)`` says whether the run has diverged; ``check`` raises instead.

    The first finite loss seen is the reference; a non-finite loss, or one above ``growth_limit`` times the
    reference (or above ``growth_limit`` when the reference is below 1), is a divergence.
    """

    def __init__(self, run: str, growth_limit: float = GROWTH_LIMIT) -> None:
        self.run = run
        self.growth_limit = growth_limit
        self.reference: float | None = None
        self.reason: str | None = None

    def diverged(self, loss: float, step: int | None = None) -> bool:
        loss = float(loss)
        where = f" at step {step}" if step is not None else ""
        if not math.isfinite(loss):
            self.reason = f"loss became {loss}{where}"
            return True
        if self.reference is None:
            self.reference = loss
            return False
        limit = self.growth_limit * max(abs(self.reference), 1.0)
        if loss > limit:
            self.reason = f"loss grew to {loss:.3g}{where}, over {self.growth_limit:g} times its first value " \
                          f"{self.reference:.3g}"
            return True
        return False

    def check(self, loss: float, step: int | None = None) -> None:
        """Raise Diverged naming the run when ``loss`` shows a divergence."""
        if self.diverged(loss, step):
            raise Diverged(f"{self.run} diverged: {self.reason}; lower its learning rate "
                           "(earlier outputs were kept)")
