"""When a challenger becomes the champion: pure rules, one primary metric per model.

- It must beat the strongest baseline strictly (a model no better than "always the commonest
  class" is not a model): this is the blocking asset check.
- It must be at least as good as the current champion measured on the same holdout (ties promote
  the newer model, which has seen more recent data).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Decision:
    metric: str
    higher_is_better: bool
    challenger: float
    best_baseline: str
    best_baseline_value: float
    champion_version: str | None
    champion: float | None  # the champion rescored on the challenger's holdout
    beats_baseline: bool
    promote: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def decide(metric: str, higher_is_better: bool, challenger: dict[str, float],
           baselines: dict[str, dict[str, float]], champion: dict[str, float] | None = None,
           champion_version: str | None = None) -> Decision:
    """Compare a challenger with every baseline and the champion on `metric`."""
    def better(a: float, b: float, strict: bool) -> bool:
        if strict:
            return a > b if higher_is_better else a < b
        return a >= b if higher_is_better else a <= b

    value = float(challenger.get(metric, math.nan))
    scored = {n: float(m[metric]) for n, m in baselines.items() if math.isfinite(float(m.get(metric, math.nan)))}
    if not scored:
        raise ValueError(f"no baseline reports {metric}")
    pick = max if higher_is_better else min
    base_name = pick(scored, key=scored.get)
    base_value = scored[base_name]
    direction = "higher" if higher_is_better else "lower"
    champ = None if champion is None else float(champion.get(metric, math.nan))

    if not math.isfinite(value):
        beats, promote = False, False
        reason = f"challenger {metric} is not a number"
    elif not better(value, base_value, strict=True):
        beats, promote = False, False
        reason = (f"not promoted: {metric} {_fmt(value)} does not beat the best baseline "
                  f"{base_name} ({_fmt(base_value)}; {direction} is better)")
    elif champ is None or not math.isfinite(champ):
        beats, promote = True, True
        reason = (f"promoted: {metric} {_fmt(value)} beats the best baseline {base_name} ({_fmt(base_value)}) "
                  "and there is no champion yet")
    elif better(value, champ, strict=False):
        beats, promote = True, True
        reason = (f"promoted: {metric} {_fmt(value)} is at least as good as champion v{champion_version} "
                  f"({_fmt(champ)}) on the same holdout and beats {base_name} ({_fmt(base_value)})")
    else:
        beats, promote = True, False
        reason = (f"not promoted: {metric} {_fmt(value)} is worse than champion v{champion_version} "
                  f"({_fmt(champ)}) on the same holdout ({direction} is better)")
    return Decision(metric=metric, higher_is_better=higher_is_better, challenger=value, best_baseline=base_name,
                    best_baseline_value=base_value, champion_version=champion_version, champion=champ,
                    beats_baseline=beats, promote=promote, reason=reason)
