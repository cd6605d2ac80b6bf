"""When a ``dataselect dynamics`` run records its checkpoints: ``--checkpoints`` and ``--every-steps`` as a
:class:`Plan`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class Plan:
    """The training schedule of one run and the optimisation steps after which it records a checkpoint.

    Attributes
    ----------
    epochs : int
    steps_per_epoch : int
        ⌈n / batch_size⌉ (the last batch of an epoch may be shorter).
    steps : tuple of int
        Increasing step counts; checkpoint c is the model after ``steps[c]`` optimisation steps
        (0 = the initial model). Training stops at the last one.
    """

    epochs: int
    steps_per_epoch: int
    steps: tuple[int, ...]

    def epoch_of(self, step: int) -> float:
        """The (fractional) epoch a step count ends: step / steps_per_epoch."""
        return step / self.steps_per_epoch


def parse_checkpoints(text: str, epochs: int) -> list[int]:
    """``--checkpoints``: 'all' (every epoch), 'last', N (N evenly spaced epochs ending at the last) or a list of
    epochs '1,2,5,10' (0 = before training; one epoch alone as '3,'). Returns sorted distinct epochs.

    >>> parse_checkpoints("all", 3), parse_checkpoints("4", 10), parse_checkpoints("0,2,", 5)
    ([1, 2, 3], [3, 5, 8, 10], [0, 2])
    """
    text = str(text).strip().lower()
    if text in ("all", "last"):
        return list(range(1, epochs + 1)) if text == "all" else [epochs]
    if "," not in text:
        try:
            count = int(text)
        except ValueError:
            raise InputError(f"--checkpoints must be 'all', 'last', a number of evenly spaced epochs or a list of "
                             f"epochs such as 1,2,5,10; got {text!r}") from None
        if not 1 <= count <= epochs:
            raise InputError(f"--checkpoints {count}: the number of evenly spaced checkpoints must be in 1..{epochs} "
                             f"(--epochs {epochs}); give a list such as 1,2,5 for chosen epochs")
        return sorted({math.ceil(epochs * (i + 1) / count) for i in range(count)})
    out = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            e = int(part)
        except ValueError:
            raise InputError(f"--checkpoints: {part!r} is not a whole epoch number; list epochs such as 1,2,5,10") \
                from None
        if not 0 <= e <= epochs:
            raise InputError(f"--checkpoints: epoch {e} is beyond --epochs {epochs}; list epochs in 0..{epochs} "
                             "(0 = before training) or raise --epochs")
        out.add(e)
    if not out:
        raise InputError("--checkpoints lists no epoch; give e.g. 1,2,5,10 or all")
    return sorted(out)


def make_plan(checkpoints: str, epochs: int, n: int, batch_size: int, every_steps: int | None = None,
              every_until: float = 2.0) -> Plan:
    """The :class:`Plan` of a run on ``n`` rows: the epochs of ``--checkpoints``, plus every ``every_steps``
    optimisation steps during the first ``every_until`` epochs (frequent evaluation, as the forgetting score needs)."""
    if epochs < 1:
        raise InputError(f"--epochs must be >= 1; got {epochs}")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1; got {batch_size}")
    spe = -(-n // batch_size)
    steps = {e * spe for e in parse_checkpoints(checkpoints, epochs)}
    if every_steps is not None:
        if every_steps < 1:
            raise InputError(f"--every-steps must be >= 1; got {every_steps}")
        if not (math.isfinite(every_until) and 0 < every_until <= epochs):
            raise InputError(f"--every-steps-until must be a number of epochs in (0, {epochs}] (--epochs); "
                             f"got {every_until}")
        last = int(math.floor(every_until * spe + 1e-9))
        steps.update(range(every_steps, last + 1, every_steps))
    return Plan(epochs, spe, tuple(sorted(steps)))
