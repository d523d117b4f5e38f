"""Do a search's winners still beat the paper presets after a longer training? (``mvsearch validate``)

Given the search's trials and their validations (:func:`mvsearch.search.validate.validated`):

* one row per validated model: its proxy accuracy and its validated accuracy (mean of the seeds),
  each with its 95% Wilson interval, and its rank under each;
* for every validated paper preset, the most accurate validated *searched* model at no more FLOPs
  (matched FLOPs, as ``run`` compares them under the proxy) and the gain in points with the 95%
  interval of a difference of two accuracies (Newcombe's hybrid score interval,
  :func:`mvsearch.core.interval.difference`); the verdict is **win** when the interval lies above 0,
  **loss** when below, **tie** otherwise; the same comparison under the proxy stands beside it, so a
  lead that the longer training erased shows;
* Kendall's τ-b (and Spearman's ρ) between the proxy and the validated accuracies of the validated
  models, with the seed-stratified bootstrap interval of :mod:`mvsearch.analysis.rank_stats` (from 3
  models on; fewer say so).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from mvsearch.analysis.rank_stats import MIN_ARCHS, Agreement, agreement
from mvsearch.core.interval import difference, format_interval, wilson
from mvsearch.core.units import format_count, format_flops
from mvsearch.search.record import TrialRecord
from mvsearch.search.validate import Validated, Validation, describe


@dataclass(frozen=True)
class Row:
    """One validated model (a search trial)."""

    rec: TrialRecord
    validation: Validation
    proxy_rank: int = 0  # 1 = most accurate under the proxy, among the validated
    validated_rank: int = 0

    @property
    def ref(self) -> str:
        return self.rec.ref

    def to_dict(self) -> dict[str, Any]:
        r, v = self.rec, self.validation
        return {"ref": r.ref, "tier": r.tier, "preset": r.preset if r.baseline else None, "flops": r.flops,
                "params": r.params, "proxy_accuracy": r.accuracy, "proxy_interval": _interval(r.accuracy, r.val_samples),
                "proxy_val_samples": r.val_samples, "validated_accuracy": v.accuracy,
                "validated_interval": _interval(v.accuracy, v.val_samples), "validated_accuracies": list(v.accuracies),
                "seeds": v.seeds, "val_samples": v.val_samples, "trainings": list(v.refs),
                "proxy_rank": self.proxy_rank, "validated_rank": self.validated_rank}


def _interval(acc: float | None, n: int | None) -> list[float] | None:
    return list(wilson(acc, n)) if acc is not None and n else None


@dataclass(frozen=True)
class Comparison:
    """A preset against the best searched model at no more FLOPs, under one measurement."""

    preset_accuracy: float | None
    best_ref: str | None
    best_accuracy: float | None
    gain_points: float | None
    gain_interval: tuple[float, float] | None  # points
    verdict: str  # win, tie, loss, no candidate, not validated

    def shown(self) -> str:
        if self.gain_points is None:
            return self.verdict
        if self.gain_interval is None:
            return f"{self.gain_points:+.1f} pts: {self.verdict}"
        lo, hi = self.gain_interval
        return f"{self.gain_points:+.1f} pts [{lo:+.1f}, {hi:+.1f}]: {self.verdict}"

    def to_dict(self) -> dict[str, Any]:
        return {"preset_accuracy": self.preset_accuracy, "best_ref": self.best_ref, "best_accuracy": self.best_accuracy,
                "gain_points": self.gain_points,
                "gain_interval": list(self.gain_interval) if self.gain_interval else None, "verdict": self.verdict}


def compare(a: float, n_a: int | None, b: float, n_b: int | None) -> tuple[float, tuple[float, float] | None, str]:
    """(gain in points, its 95% interval, verdict) of ``a`` over ``b``; without image counts, no verdict."""
    gain = 100.0 * (a - b)
    if not n_a or not n_b:
        return gain, None, "tie (no validation count)"
    lo, hi = difference(a, n_a, b, n_b)
    verdict = "win" if lo > 0 else "loss" if hi < 0 else "tie"
    return gain, (100.0 * lo, 100.0 * hi), verdict


@dataclass(frozen=True)
class Versus:
    preset: str
    preset_ref: str
    flops: int
    validated: Comparison  # under the validation setting
    proxy: Comparison  # under the search's proxy (the same two models when both were validated)

    def to_dict(self) -> dict[str, Any]:
        out = {"preset": self.preset, "preset_ref": self.preset_ref, "flops": self.flops}
        out.update(self.validated.to_dict())
        out["proxy"] = self.proxy.to_dict()
        return out


@dataclass
class ValidationReport:
    name: str
    setting: str  # describe(proxy)
    search_setting: str
    seeds: int
    rows: list[Row]
    versus: list[Versus]
    agreement: Agreement | None  # proxy vs validated, None below MIN_ARCHS models
    missing: list[str] = field(default_factory=list)  # chosen trials with no validation yet

    def tally(self) -> dict[str, int]:
        out = {"win": 0, "tie": 0, "loss": 0}
        for v in self.versus:
            key = v.validated.verdict.split(" ")[0]
            if key in out:
                out[key] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        tau = self.agreement.tau if self.agreement else None
        return {"study": self.name, "setting": self.setting, "search_setting": self.search_setting, "seeds": self.seeds,
                "models": [r.to_dict() for r in self.rows], "versus": [v.to_dict() for v in self.versus],
                "tally": self.tally(),
                "tau": {"value": _plain(tau.value) if tau else None,
                        "interval": [_plain(tau.lo), _plain(tau.hi)] if tau else None, "n": len(self.rows)},
                "agreement": self.agreement.to_dict() if self.agreement else None, "not_validated": self.missing}

    def lines(self) -> list[str]:
        out = [f"validated under: {self.setting}, {self.seeds} seed(s) each (the search's proxy: {self.search_setting})"]
        if not self.rows:
            return out + ["nothing validated yet; rerun `mvsearch validate` to train"]
        out.append(f"  {'trial':>10} {'FLOPs':>8} {'params':>7}  {'proxy':>14} {'#':>2}  {'validated':>14} {'#':>2} "
                   f"{'seeds':>5}  model")
        for r in self.rows:
            rec, v = r.rec, r.validation
            spread = "" if v.seeds < 2 else f" ({100 * min(v.accuracies):.1f}-{100 * max(v.accuracies):.1f})"
            out.append(f"  {rec.ref:>10} {format_flops(rec.flops):>8} {format_count(rec.params):>7}  "
                       f"{format_interval(rec.accuracy, rec.val_samples):>14} {r.proxy_rank:>2}  "
                       f"{format_interval(v.accuracy, v.val_samples):>14} {r.validated_rank:>2} {v.seeds:>5}  "
                       f"{rec.summary()}{spread}")
        for v in self.versus:
            out.append(f"{v.preset} ({format_flops(v.flops)}): best searched at <= its FLOPs, validated: "
                       f"{v.validated.best_ref or '-'} {v.validated.shown()}; under the proxy: "
                       f"{v.proxy.best_ref or '-'} {v.proxy.shown()}")
        if not self.versus:
            out.append("no paper preset was trained in this study (run it with --with-baselines to compare)")
        else:
            t = self.tally()
            out.append(f"after validation the searched models win {t['win']}, tie {t['tie']}, lose {t['loss']} "
                       f"against the presets (95% intervals of the difference)")
        if self.agreement is not None:
            out.append(f"proxy vs validated order: Kendall tau {self.agreement.tau.shown()}, Spearman rho "
                       f"{self.agreement.rho.shown()} over {len(self.rows)} models (95% bootstrap intervals)")
        else:
            out.append(f"proxy vs validated order: needs at least {MIN_ARCHS} validated models, have {len(self.rows)}")
        if self.missing:
            out.append(f"not validated yet: {', '.join(self.missing)} (rerun to train them)")
        return out


def _plain(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _best(cands: Sequence[TrialRecord], acc) -> TrialRecord | None:
    return max(cands, key=lambda r: (acc(r), -(r.flops or 0)), default=None)


def build(name: str, recs: Sequence[TrialRecord], vals: Validated, *, chosen: Sequence[str] = (),
          search_setting: str = "", resamples: int = 1000) -> ValidationReport:
    """The report over the search's records ``recs`` and their validations ``vals``; ``chosen`` are the
    refs the validation planned (those without a validation are listed as missing)."""
    done = [r for r in recs if r.state == "COMPLETE" and r.accuracy is not None and vals.get(r.ref) is not None]
    done.sort(key=lambda r: (r.flops or 0, r.ref))
    by_proxy = sorted(done, key=lambda r: -r.accuracy)
    by_val = sorted(done, key=lambda r: -vals.get(r.ref).accuracy)
    rows = [Row(r, vals.get(r.ref), by_proxy.index(r) + 1, by_val.index(r) + 1) for r in done]
    versus = []
    searched = [r for r in done if not r.baseline]
    all_searched = [r for r in recs if r.state == "COMPLETE" and r.accuracy is not None and not r.baseline]
    for b in (r for r in recs if r.baseline and r.state == "COMPLETE" and r.accuracy is not None):
        fit = [r for r in searched if (r.flops or 0) <= (b.flops or 0)]
        vb = vals.get(b.ref)
        if vb is None:
            v_cmp = Comparison(None, None, None, None, None, "not validated")
        else:
            best = _best(fit, lambda r: vals.get(r.ref).accuracy)
            if best is None:
                v_cmp = Comparison(vb.accuracy, None, None, None, None, "no candidate")
            else:
                vw = vals.get(best.ref)
                gain, iv, verdict = compare(vw.accuracy, vw.val_samples, vb.accuracy, vb.val_samples)
                v_cmp = Comparison(vb.accuracy, best.ref, vw.accuracy, gain, iv, verdict)
        pbest = _best([r for r in all_searched if (r.flops or 0) <= (b.flops or 0)], lambda r: r.accuracy)
        if pbest is None:
            p_cmp = Comparison(b.accuracy, None, None, None, None, "no candidate")
        else:
            gain, iv, verdict = compare(pbest.accuracy, pbest.val_samples, b.accuracy, b.val_samples)
            p_cmp = Comparison(b.accuracy, pbest.ref, pbest.accuracy, gain, iv, verdict)
        versus.append(Versus(b.preset or b.ref, b.ref, int(b.flops or 0), v_cmp, p_cmp))
    agree = None
    if len(rows) >= MIN_ARCHS:
        agree = agreement([r.rec.seed_accuracies or [r.rec.accuracy] for r in rows],
                          [list(r.validation.accuracies) for r in rows], resamples=resamples)
    missing = [ref for ref in chosen if vals.get(ref) is None]
    setting = describe(vals.proxy) if vals.proxy is not None else "-"
    return ValidationReport(name, setting, search_setting, vals.seeds, rows, versus, agree, missing)


__all__ = ["Row", "Comparison", "Versus", "ValidationReport", "build", "compare"]
