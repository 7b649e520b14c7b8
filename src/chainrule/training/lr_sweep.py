"""The learning-rate finder (``chainrule lr-find``): short runs from the same initial
model over exponentially spaced learning rates, and the range to try.

(Named ``lr_sweep``, not ``lr_find``: the package exports the function ``lr_find``,
which a submodule of that name would be shadowed by.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from chainrule.errors import DivergedError
from chainrule.training.config import ConfigError, TrainConfig
from chainrule.training.loop import train

__all__ = ["LRFindResult", "lr_find"]


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # the final loss of each short run; inf where it diverged
    suggested: tuple[float, float] | None  # None when every rate diverged


def lr_find(
    config: TrainConfig,
    lr_min: float = 1e-3,
    lr_max: float = 1e3,
    num: int = 13,
    steps: int = 20,
) -> LRFindResult:
    """Short runs from the same initial model over exponentially spaced learning rates.

    Each run uses a constant learning rate for ``steps`` steps; a run that diverges
    (see :func:`train`), or ends above 10× its starting loss, counts as diverged
    (``inf``). The suggested range is from a tenth of the best learning rate up to the
    best one -- the largest rates that still train well are the ones to try -- raised
    if need be so that it contains no rate that diverged. When every rate diverged
    there is no suggestion (``suggested`` is None).
    """
    if not 0 < lr_min < lr_max:
        raise ConfigError(f"need 0 < lr_min < lr_max, got {lr_min} and {lr_max}")
    if num < 2:
        raise ConfigError(f"need at least 2 learning rates, got {num}")
    config.validate()
    ratio = (lr_max / lr_min) ** (1.0 / (num - 1))
    lrs = [lr_min * ratio**i for i in range(num)]
    finals = []
    for lr in lrs:
        changes = {"lr": lr, "steps": steps, "schedule": "constant", "patience": None}
        run = TrainConfig(**{**asdict(config), **changes})
        try:
            result = train(run)
            first, last = result.history.loss[0], result.history.loss[-1]
            finals.append(last if last <= 10 * first else math.inf)
        except DivergedError:
            finals.append(math.inf)
    return LRFindResult(lrs, finals, _suggest(lrs, finals))


def _suggest(lrs: Sequence[float], finals: Sequence[float]) -> tuple[float, float] | None:
    """From a tenth of the best rate to the best, above every diverged rate below it."""
    if not any(math.isfinite(v) for v in finals):
        return None
    best = min(range(len(lrs)), key=finals.__getitem__)
    low = lrs[best] / 10.0
    for i in range(best):
        if not math.isfinite(finals[i]) and lrs[i] >= low:
            low = lrs[i + 1]  # the next tested rate up, which did not diverge
    return low, lrs[best]
