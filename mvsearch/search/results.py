"""What a search found: the best trials of each tier, and the searched models against the paper presets."""
from __future__ import annotations

from dataclasses import dataclass

from mvsearch.search.record import TrialRecord
from mvsearch.search.storage import SearchStudies


def best_trials(search: SearchStudies, per_tier: int = 3) -> list[TrialRecord]:
    """The most accurate completed trials of each tier, and every baseline; sorted by FLOPs."""
    recs = [r for r in search.records() if r.state == "COMPLETE" and r.accuracy is not None]
    out, seen = [], {}
    for r in sorted(recs, key=lambda r: -r.accuracy):
        key = r.tier if not r.baseline else ("baseline", r.preset)
        if r.baseline or seen.get(key, 0) < per_tier:
            seen[key] = seen.get(key, 0) + 1
            out.append(r)
    return sorted(out, key=lambda r: ((r.flops or 0), -(r.accuracy or 0)))


@dataclass(frozen=True)
class Versus:
    """A trained paper preset and the most accurate searched trial at no more FLOPs than it."""

    baseline: TrialRecord
    best: TrialRecord | None  # None: no searched trial completed at or below the preset's FLOPs

    @property
    def gain(self) -> float | None:
        """Accuracy points (percentage points) the searched model gains over the preset."""
        if self.best is None:
            return None
        return 100.0 * (self.best.accuracy - self.baseline.accuracy)


def versus_baselines(search: SearchStudies) -> list[Versus]:
    """For each completed baseline, the best searched trial at matched (<=) FLOPs, under the same proxy."""
    recs = [r for r in search.records() if r.state == "COMPLETE" and r.accuracy is not None
            and r.flops is not None]
    searched = [r for r in recs if not r.baseline]
    out = []
    for b in sorted((r for r in recs if r.baseline), key=lambda r: r.flops):
        fit = [r for r in searched if r.flops <= b.flops]
        out.append(Versus(b, max(fit, key=lambda r: (r.accuracy, -r.flops)) if fit else None))
    return out


__all__ = ["best_trials", "Versus", "versus_baselines"]
