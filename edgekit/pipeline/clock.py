"""``--time-budget``: the clock an ``--optimize`` search asks before each step."""

from __future__ import annotations

import time
from typing import Callable

from ..errors import EdgekitError


class TimeBudget:
    """``--time-budget``: the search starts a step only if the time spent plus the step's estimate (its candidate
    count times the mean cost of a candidate so far) fits; skipped steps are recorded. ``seconds=None`` is no
    limit. The step in progress always finishes, so a step's estimate is the most the budget can be overrun."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if seconds is not None and seconds <= 0:
            raise EdgekitError(f"--time-budget {seconds}: give a positive number of seconds")
        self.seconds, self.clock = seconds, clock
        self.start = clock()
        self.done = 0
        self.skipped: list[str] = []

    def spent(self) -> float:
        return self.clock() - self.start

    def per_candidate(self) -> float:
        return self.spent() / self.done if self.done else 0.0

    def allows(self, what: str, n_candidates: int = 1) -> bool:
        if self.seconds is None or self.spent() + n_candidates * self.per_candidate() <= self.seconds:
            return True
        self.skipped.append(what)
        return False

    def allows_seconds(self, what: str, seconds: float) -> bool:
        """A step whose own cost is estimated in seconds (a fine-tuning), not in candidates."""
        if self.seconds is None or self.spent() + seconds <= self.seconds:
            return True
        self.skipped.append(what)
        return False

    def finished(self, n_candidates: int) -> None:
        self.done += n_candidates

    def describe(self) -> dict:
        return {"seconds": self.seconds, "spent_s": round(self.spent(), 3), "skipped": list(self.skipped)}
