"""``--time-limit``: train for a wall-clock budget instead of a number of epochs.

Time to accuracy (DAWNBench) asks what a recipe reaches in, say, 30 minutes on a given machine.
A fixed ``--epochs`` answers it badly: the same count takes 28 minutes on one 2-core machine and
45 on another (or on the same VM on a busier day), and a cosine sized for more epochs than fit is
cut off half-way, at a high learning rate (train_cifar.json: 79.7% at 30 minutes for a 100-epoch
cosine that reached 83.25% at its end). So the plan is re-made after every epoch: as many epochs
as the time left holds at the mean epoch time so far, and the cosine's end moves with it
(:func:`edgecv.training.recipe.make_callbacks`). Ultralytics' ``time=`` argument works the same way.

Pure Python: no TensorFlow, so the planning is unit-tested on its own.
"""

from __future__ import annotations

import re

from edgecv.errors import UsageError

# --epochs when --time-limit is given without it: a cap the time ends long before
TIME_LIMITED_MAX_EPOCHS = 10_000

_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m(?:in)?)?(?:(\d+(?:\.\d*)?)s)?")


def parse_duration(text: str | float | None) -> float | None:
    """``30m``, ``1h``, ``1h30m``, ``90s``, ``45.5`` (seconds) -> seconds; None (no
    limit) -> None; a one-line UsageError for anything else or a duration that is not positive."""
    if text is None:
        return None
    value = None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        t = str(text).strip().lower().replace(" ", "")
        try:
            value = float(t)
        except ValueError:
            found = _DURATION.fullmatch(t)
            if found and any(found.groups()):
                hours, minutes, seconds = (float(g) if g else 0.0 for g in found.groups())
                value = hours * 3600 + minutes * 60 + seconds
    if value is None or not value > 0:
        raise UsageError(f"`time_limit` must be a positive duration such as 30m, 1h30m, 90s or "
                         f"1800 (seconds), received '{text}'.")
    return value


class TimePlan:
    """How many epochs fit in ``limit_s`` seconds of training, re-planned after each epoch.

    The plan after ``n`` finished epochs is ``n + floor(time left / mean epoch time)``, capped
    at ``max_epochs``, never below ``n``: the run then ends on average within the limit (an
    epoch slower than the mean overshoots by the difference). The mean leaves out the first
    epoch of the run and of this process once there are others: they include graph tracing,
    which does not recur. ``durations`` are epochs already trained (``--resume``: history.csv's
    ``epoch_time_s``); ``first_fresh`` is the index of this process's first epoch.
    """

    def __init__(self, limit_s: float, max_epochs: int, durations=()):
        self.limit_s = float(limit_s)
        self.max_epochs = int(max_epochs)
        self.durations = [float(d) for d in durations]
        self.first_fresh = len(self.durations)
        self.planned = self._plan()

    @property
    def used_s(self) -> float:
        return sum(self.durations)

    @property
    def done(self) -> int:
        return len(self.durations)

    @property
    def finished(self) -> bool:
        return self.done >= self.planned

    def mean_epoch_s(self) -> float | None:
        if not self.durations:
            return None
        steady = [d for i, d in enumerate(self.durations) if i not in (0, self.first_fresh)]
        sample = steady or self.durations
        return sum(sample) / len(sample)

    def _plan(self) -> int:
        mean = self.mean_epoch_s()
        if mean is None:  # nothing measured yet: the cap until the first epoch ends
            return self.max_epochs
        more = int(max(0.0, self.limit_s - self.used_s) // mean) if mean > 0 else self.max_epochs
        return max(self.done, min(self.max_epochs, self.done + more))

    def epoch_done(self, seconds: float) -> int:
        """Record one finished epoch; returns the new plan (total epochs)."""
        self.durations.append(float(seconds))
        self.planned = self._plan()
        return self.planned
