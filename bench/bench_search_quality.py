"""Benchmark: the search against its baselines, at equal training compute (issue #12, item 5).

Two arms search the shipped ``mobile`` space (real Fashion-MNIST, budget 1.5G FLOPs, whose paper presets
mobilevit_xxs and mobilevit_xs are trained as baselines in every study), once per seed, by driving
the real CLI in subprocesses as a user would (``mvsearch run``), and the studies are read back with
the library (:func:`mvsearch.search.storage.open_search`):

* ``tpe``     TPE and the space's tier-fair pruner (median, per tier), ``--trials N``;
* ``random``  random search without pruning (``--sampler random --pruner none``), given the same
  training compute: compute = epochs trained, summed over the searched (non-baseline) COMPLETE and
  PRUNED trials (``len(accuracy_curve)``). The baselines are left out of both arms' compute (each arm
  trains the same two presets in full, identically). An unpruned random trial trains every epoch, so
  random gets ``ceil(compute_tpe / epochs)`` trials (topped up in rounds if a trial failed): its
  compute reaches TPE's and exceeds it by less than one trial.

Same seed, same screened draws: a tier's start-up candidates (TPE's first ``n_startup`` trials,
every random trial) are uniform draws within the budget band seeded by (seed, trial number), so both
arms of a seed share their first trials (a paired design); they part where TPE's model takes over.

Per arm and seed it prints the hypervolume (HV) of the accuracy-vs-FLOPs front of the searched COMPLETE
trials (FLOPs / the budget's upper edge on x, reference point x = 1, accuracy = 0.1 = chance on 10
classes; the largest possible HV is 0.9), the best accuracy, and for each preset the most accurate
searched COMPLETE trial at no more FLOPs: win / tie / loss by the 95% Wilson intervals of the two
accuracies (win: the searched model's lower bound above the preset's upper bound; loss: the reverse).
Then the mean TPE/random HV ratio over seeds with its 95% t-interval, and the win rate with its Wilson
interval. With ``--validate`` it also runs ``mvsearch validate --top 1 --seeds 1`` on every study and
counts its verdicts (the presets against the best validated searched model) the same way
(``--validate-top K`` for more of each front).

There is no target: it measures. Exit 0 when every run finished, 2 when a command failed.

    python bench/bench_search_quality.py                    # the shipped proxy, 8 TPE trials, 3 seeds (hours)
    python bench/bench_search_quality.py --quick --keep     # 4 trials, 1 epoch of 256 images, 3 seeds
    python bench/bench_search_quality.py --quick --workdir /tmp/sq --validate --json   # resumes /tmp/sq
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

import mvsearch  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, as the CLI does)
from mvsearch.budget import parse_budget
from mvsearch.core.interval import wilson

SPACE = Path(mvsearch.__file__).resolve().parent / "space" / "spaces" / "mobile.yaml"
CHANCE = 0.1  # HV reference accuracy: chance on Fashion-MNIST's 10 classes
ARMS = {"tpe": ["--sampler", "tpe", "--pruner", "median"],  # median: the space's own pruner (mobile.yaml)
        "random": ["--sampler", "random", "--pruner", "none"]}
#: --quick: a pipeline check, minutes instead of hours (explicit options still win)
QUICK = {"seeds": 3, "trials": 4, "epochs": 1, "train_samples": 256, "val_samples": 512,
         "validate_epochs": 1, "validate_train_samples": 512, "validate_val_samples": 512}
#: Student's t 97.5% quantiles by degrees of freedom (a larger df not listed takes the next smaller: wider)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}
MAX_ROUNDS = 4  # runs per arm and seed to reach the trial count / compute (more only when trials keep failing)


# ------------------------------------------------------------------ pure parts (tests/test_bench_search_quality.py)
def hypervolume(points: Iterable[tuple[float, float]], ref: tuple[float, float] = (1.0, CHANCE)) -> float:
    """Area dominated by ``points`` (x: cost, lower is better; y: accuracy, higher is better) up to ``ref``.

    The area of the union of the rectangles [x_i, ref_x] x [ref_y, y_i]; points at or beyond the
    reference (x >= ref_x or y <= ref_y) add nothing. A sweep along x: between two consecutive x the
    covered height is the best accuracy among the points at or left of the first.
    """
    rx, ry = ref
    pts = sorted((float(x), float(y)) for x, y in points if x < rx and y > ry)
    area, best = 0.0, ry
    for i, (x, y) in enumerate(pts):
        best = max(best, y)
        right = pts[i + 1][0] if i + 1 < len(pts) else rx
        area += (right - x) * (best - ry)
    return area


def compute_epochs(records: Iterable[Any]) -> int:
    """Training compute of a study in epochs: searched (non-baseline) COMPLETE and PRUNED trials."""
    return sum(len(r.accuracy_curve) for r in records if not r.baseline and r.state in ("COMPLETE", "PRUNED"))


def trials_to_match(target: int, have: int, epochs: int) -> int:
    """Unpruned trials of ``epochs`` each still needed for compute ``have`` to reach ``target``."""
    if epochs < 1:
        raise ValueError(f"epochs per trial must be >= 1, got {epochs}")
    return max(0, math.ceil((target - have) / epochs))


def verdict(a: float, n_a: int, b: float, n_b: int) -> str:
    """``a`` (searched) against ``b`` (preset): win when a's 95% Wilson interval lies wholly above b's,
    loss when wholly below, tie when they overlap."""
    lo_a, hi_a = wilson(a, n_a)
    lo_b, hi_b = wilson(b, n_b)
    return "win" if lo_a > hi_b else "loss" if hi_a < lo_b else "tie"


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student-t interval of the mean of ``values`` (nan bounds below 2 values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T975[max(k for k in T975 if k <= n - 1)]
    return mean, mean - t * sd / math.sqrt(n), mean + t * sd / math.sqrt(n)


@dataclass(frozen=True)
class Versus:
    """A preset against the most accurate searched COMPLETE trial at no more FLOPs (under one measurement)."""

    preset: str
    preset_accuracy: float | None
    preset_n: int | None
    best_ref: str | None
    best_accuracy: float | None
    best_n: int | None
    verdict: str  # win, tie, loss, no candidate

    def shown(self) -> str:
        if self.best_ref is None:
            return f"{self.preset} {_pct(self.preset_accuracy, self.preset_n)}: no candidate"
        return (f"{self.preset} {_pct(self.preset_accuracy, self.preset_n)} vs {self.best_ref} "
                f"{_pct(self.best_accuracy, self.best_n)}: {self.verdict}")


def versus(records: Sequence[Any]) -> list[Versus]:
    """Each baseline preset of a study against its best searched COMPLETE trial at <= its FLOPs."""
    out = []
    done = [r for r in records if r.state == "COMPLETE" and r.accuracy is not None and r.flops is not None]
    for b in sorted((r for r in done if r.baseline), key=lambda r: r.flops):
        cands = [r for r in done if not r.baseline and r.flops <= b.flops]
        best = max(cands, key=lambda r: r.accuracy, default=None)
        v = verdict(best.accuracy, best.val_samples, b.accuracy, b.val_samples) if best else "no candidate"
        out.append(Versus(b.preset or b.ref, b.accuracy, b.val_samples, best.ref if best else None,
                          best.accuracy if best else None, best.val_samples if best else None, v))
    return out


def tally(verdicts: Iterable[str]) -> dict[str, int]:
    """Counts of win / tie / loss / other (no candidate, not validated) over ``verdicts``."""
    out = {"win": 0, "tie": 0, "loss": 0, "other": 0}
    for v in verdicts:
        key = v.split(" ")[0]
        out[key if key in out else "other"] += 1
    return out


def _pct(acc: float | None, n: int | None) -> str:
    if acc is None:
        return "-"
    if not n:
        return f"{100 * acc:.1f}%"
    lo, hi = wilson(acc, n)
    return f"{100 * acc:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def _rate(t: dict[str, int]) -> str:
    """The win rate over the comparisons that had a searched candidate (win, tie or loss), with its Wilson
    interval; a preset without one (nothing searched at its FLOPs, or not validated) is no comparison."""
    n = t["win"] + t["tie"] + t["loss"]
    if not n:
        return "no comparison"
    lo, hi = wilson(t["win"] / n, n)
    return f"win rate {t['win']}/{n} = {100 * t['win'] / n:.0f}%, 95% Wilson [{100 * lo:.0f}%, {100 * hi:.0f}%]"


def _wtl(t: dict[str, int]) -> str:
    return f"W/T/L {t['win']}/{t['tie']}/{t['loss']}" + (f" (+{t['other']} without a candidate)" if t["other"] else "")


def _plain(x: Any) -> Any:
    """``x`` made JSON-ready: dataclasses as dicts, tuples as lists, nan/inf as null."""
    if isinstance(x, Versus):
        return _plain(x.__dict__)
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _dur(s: float) -> str:
    return f"{int(s // 60)}m{s % 60:02.0f}s"


# ------------------------------------------------------------------ driving the CLI
def mvsearch_cmd() -> list[str]:
    """The ``mvsearch`` console script beside this interpreter (the venv's), else ``python -m mvsearch``."""
    exe = Path(sys.executable).parent / "mvsearch"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mvsearch"]


class CommandFailed(RuntimeError):
    pass


def call(args: list[str], log: Path, cwd: Path) -> tuple[str, float]:
    """Run ``mvsearch ARGS`` (stdout returned, both streams appended to ``log``); (stdout, seconds)."""
    t0 = time.perf_counter()
    p = subprocess.run(mvsearch_cmd() + args, cwd=cwd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    with log.open("a") as f:
        f.write(f"$ mvsearch {' '.join(args)}\n{p.stdout}{p.stderr}[exit {p.returncode}, {secs:.0f} s]\n")
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-8:])
        raise CommandFailed(f"mvsearch {' '.join(args)} exited {p.returncode} (log: {log}):\n{tail}")
    return p.stdout, secs


def records(name: str, url: str) -> list[Any]:
    """The study's trials (budget rejections left out); none before its first run."""
    from mvsearch.core.errors import StudyError
    from mvsearch.search.storage import open_search

    try:
        return open_search(name, url).records()
    except StudyError:  # no study (database) yet: a fresh workdir
        return []


@dataclass
class Arm:
    """One arm and seed: its study and how it is run."""

    arm: str
    seed: int
    name: str
    url: str

    def run_args(self, space: Path, trials: int, threads: int) -> list[str]:
        return ["run", "--space", str(space), "--study", self.name, "--storage", self.url, "--seed", str(self.seed),
                "--trials", str(trials), "--threads", str(threads), "--no-save-weights", *ARMS[self.arm]]


def searched_trained(recs: Sequence[Any]) -> int:
    return sum(1 for r in recs if not r.baseline and r.state in ("COMPLETE", "PRUNED"))


def run_tpe(a: Arm, space: Path, trials: int, threads: int, work: Path) -> float:
    """Train TPE's study up to ``trials`` searched trials (a resumed study only tops up); seconds spent."""
    spent = 0.0
    for _ in range(MAX_ROUNDS):
        need = trials - searched_trained(records(a.name, a.url))
        if need <= 0:
            break
        spent += call(a.run_args(space, need, threads), work / f"{a.name}.log", work)[1]
    return spent


def run_random(a: Arm, space: Path, target: int, epochs: int, threads: int, work: Path) -> float:
    """Train random search's study until its compute reaches ``target`` epochs; seconds spent."""
    spent = 0.0
    for _ in range(MAX_ROUNDS):
        need = trials_to_match(target, compute_epochs(records(a.name, a.url)), epochs)
        if need <= 0:
            break
        spent += call(a.run_args(space, need, threads), work / f"{a.name}.log", work)[1]
    return spent


def validate(a: Arm, opts: list[str], work: Path) -> dict[str, Any]:
    """``mvsearch validate --seeds 1 OPTS --json`` on one study: its JSON object."""
    out, _ = call(["validate", "--study", a.name, "--storage", a.url, "--seeds", "1", *opts, "--json"],
                  work / f"{a.name}.log", work)
    try:
        return json.loads(out)
    except json.JSONDecodeError:  # anything printed before the object
        return json.loads(out[out.index("{"):])


def validated_versus(report: dict[str, Any]) -> list[Versus]:
    """validate's preset comparisons, judged by :func:`verdict` (image counts from its model rows)."""
    n_of = {m.get("ref"): m.get("val_samples") for m in report.get("models", [])}
    out = []
    for v in report.get("versus", []):
        pa, ba = v.get("preset_accuracy"), v.get("best_accuracy")
        pn, bn = n_of.get(v.get("preset_ref")), n_of.get(v.get("best_ref"))
        if pa is None or ba is None:
            mine = v.get("verdict") or "not validated"
        else:
            mine = verdict(ba, bn, pa, pn) if pn and bn else v.get("verdict", "tie")
        out.append(Versus(v.get("preset", "?"), pa, pn, v.get("best_ref"), ba, bn, mine))
    return out


# ------------------------------------------------------------------ one arm and seed, read back
def measure(recs: Sequence[Any], x_max: int, spent: float) -> dict[str, Any]:
    """What the bench reports of one study: trials, compute, HV, best accuracy, the presets' comparison."""
    done = [r for r in recs if not r.baseline and r.state == "COMPLETE" and r.accuracy is not None]
    return {"trained": searched_trained(recs), "pruned": sum(r.state == "PRUNED" and not r.baseline for r in recs),
            "failed": sum(r.state == "FAIL" for r in recs), "compute": compute_epochs(recs),
            "hv": hypervolume((r.flops / x_max, r.accuracy) for r in done),
            "best": max((r.accuracy for r in done), default=None),
            "best_n": max((r.val_samples or 0 for r in done), default=None),
            "versus": versus(recs), "run_s": spent,
            "train_s": sum(r.train_wall_s or 0.0 for r in recs if not r.baseline)}


def report_search(rows: dict[tuple[str, int], dict[str, Any]], seeds: range) -> dict[str, Any]:
    """Print compute, HV and its ratio, best accuracy, and the presets' comparison; the figures as a dict."""
    comp = {arm: sum(rows[arm, s]["compute"] for s in seeds) for arm in ARMS}
    print("\ncompute (epochs) per seed, tpe / random: "
          + ", ".join(f"{rows['tpe', s]['compute']}/{rows['random', s]['compute']}" for s in seeds)
          + f"; total {comp['tpe']} / {comp['random']}: ratio random/tpe {comp['random'] / max(1, comp['tpe']):.3f}")
    print("training seconds of the searched trials per seed, tpe / random: "
          + ", ".join(f"{rows['tpe', s]['train_s']:.0f}/{rows['random', s]['train_s']:.0f}" for s in seeds))
    hv = {arm: [rows[arm, s]["hv"] for s in seeds] for arm in ARMS}
    print("HV per seed, tpe / random: " + ", ".join(f"{t:.4f}/{r:.4f}" for t, r in zip(hv["tpe"], hv["random"])))
    ratios = [t / r for t, r in zip(hv["tpe"], hv["random"]) if r > 0]
    mean, lo, hi = t_interval(ratios)
    higher = sum(t > r for t, r in zip(hv["tpe"], hv["random"]))
    equal = sum(t == r for t, r in zip(hv["tpe"], hv["random"]))
    print(f"HV ratio tpe/random: per seed {', '.join(f'{r:.3f}' for r in ratios)}; mean {mean:.3f}, 95% t-interval "
          f"[{lo:.3f}, {hi:.3f}] (width {hi - lo:.3f}; {len(ratios)} seeds, t with {len(ratios) - 1} df); "
          f"tpe higher in {higher}, equal in {equal} of {len(seeds)} seeds")
    for arm in ARMS:
        best = [(rows[arm, s]["best"], rows[arm, s]["best_n"]) for s in seeds if rows[arm, s]["best"] is not None]
        print(f"best accuracy {arm:<6}: per seed {', '.join(_pct(b, n) for b, n in best)}; "
              f"mean {100 * sum(b for b, _ in best) / max(1, len(best)):.1f}%")
    print("\nbest searched model per preset, under the proxy (win/loss: disjoint 95% Wilson intervals):")
    tallies = {}
    for arm in ARMS:
        for s in seeds:
            for v in rows[arm, s]["versus"]:
                print(f"  {arm:<6} seed {s}: {v.shown()}")
        tallies[arm] = {"proxy": tally(v.verdict for s in seeds for v in rows[arm, s]["versus"])}
        print(f"  {arm:<6}: {_wtl(tallies[arm]['proxy'])}; {_rate(tallies[arm]['proxy'])}")
    return {"compute": comp, "hv_ratio": {"per_seed": ratios, "mean": mean, "interval": [lo, hi]}, "tally": tallies}


def run_validation(arms: dict[tuple[str, int], Arm], seeds: range, vopts: list[str], work: Path,
                   tallies: dict[str, dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """``mvsearch validate`` on every study: print each comparison and the tallies (added to ``tallies``)."""
    if subprocess.run(mvsearch_cmd() + ["validate", "--help"], capture_output=True).returncode != 0:
        print("\nvalidate is not available (`mvsearch validate --help` failed): skipping the after-validate part")
        return {}
    print(f"\nafter `mvsearch validate --seeds 1 {' '.join(vopts)}` (win/loss: disjoint 95% Wilson intervals; "
          f"validate's own verdict, from Newcombe's interval of the difference, in brackets):", flush=True)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for s in seeds:
        for arm in ARMS:
            t0 = time.perf_counter()
            rep = validate(arms[arm, s], vopts, work)
            out[arm, s] = {"versus": validated_versus(rep), "own": [v.get("verdict") for v in rep.get("versus", [])],
                           "tau": rep.get("tau")}
            for v, own in zip(out[arm, s]["versus"], out[arm, s]["own"]):
                print(f"  {arm:<6} seed {s}: {v.shown()} [{own}]", flush=True)
            tau = rep.get("tau") or {}
            shown = f"{tau['value']:.2f}" if isinstance(tau.get("value"), (int, float)) else "-"
            print(f"  {arm:<6} seed {s}: Kendall tau proxy vs validated {shown} over {tau.get('n')} "
                  f"models; {_dur(time.perf_counter() - t0)}", flush=True)
    for arm in ARMS:
        t = tally(v.verdict for s in seeds for v in out[arm, s]["versus"])
        own = tally(o or "other" for s in seeds for o in out[arm, s]["own"])
        tallies[arm].update(validated=t, validated_own=own)
        print(f"  {arm:<6}: {_wtl(t)}; {_rate(t)} (validate's verdicts: {_wtl(own)})")
    return out


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"a small configuration: {QUICK}")
    ap.add_argument("--seeds", type=int, help="seeds 0..S-1 per arm (default 3)")
    ap.add_argument("--trials", type=int, help="TPE's searched trials per seed (default: the space's search.trials)")
    ap.add_argument("--epochs", type=int, help="proxy epochs (default: the space's)")
    ap.add_argument("--train-samples", type=int, help="proxy training images (default: the space's)")
    ap.add_argument("--val-samples", type=int, help="proxy validation images (default: the space's)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of every run (default 1)")
    ap.add_argument("--validate", action="store_true", help="also run `mvsearch validate` on every study")
    ap.add_argument("--validate-top", type=int, default=1, help="validate's --top: front members per tier (1)")
    ap.add_argument("--validate-epochs", type=int, help="validation epochs (default: validate's)")
    ap.add_argument("--validate-train-samples", type=int, help="validation training images (default: validate's)")
    ap.add_argument("--validate-val-samples", type=int, help="validation images (default: validate's)")
    ap.add_argument("--workdir", type=Path, help="where the studies live; a rerun with it resumes (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the default temp workdir")
    ap.add_argument("--json", action="store_true", help="end with one JSON line: the summary")
    a = ap.parse_args(argv)

    base = yaml.safe_load(SPACE.read_text())
    shipped = {"seeds": 3, "trials": base["search"]["trials"], "epochs": base["proxy"]["epochs"],
               "train_samples": base["proxy"]["train_samples"], "val_samples": base["proxy"]["val_samples"],
               "validate_epochs": None, "validate_train_samples": None, "validate_val_samples": None}
    cfg = {k: getattr(a, k) if getattr(a, k) is not None else (QUICK if a.quick else shipped)[k] for k in shipped}
    for k in ("seeds", "trials", "epochs", "train_samples", "val_samples"):
        if cfg[k] < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1, got {cfg[k]}")
    label = ("--quick" if a.quick else "shipped") + (" with options" if any(  # the search's options, not validate's
        getattr(a, k) is not None for k in shipped if not k.startswith("validate_")) else "")
    budget = parse_budget(base["search"]["budget"])
    x_max = budget.max_flops

    made = a.workdir is None
    work = Path(tempfile.mkdtemp(prefix="bench-search-quality-")) if made else a.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tag = f"e{cfg['epochs']}-t{cfg['train_samples']}-v{cfg['val_samples']}"  # a study per proxy: no mixing on resume
    space = work / f"mobile-{tag}.yaml"
    derived = dict(base, proxy=dict(base["proxy"], epochs=cfg["epochs"], train_samples=cfg["train_samples"],
                                    val_samples=cfg["val_samples"]))
    space.write_text(yaml.safe_dump(derived, sort_keys=False))
    arms = {(arm, s): Arm(arm, s, f"sq-{arm}-{tag}-s{s}", f"sqlite:///{work / f'sq-{arm}-{tag}-s{s}.db'}")
            for s in range(cfg["seeds"]) for arm in ARMS}
    vopts = [f for k, opt in (("validate_epochs", "--epochs"), ("validate_train_samples", "--train-samples"),
                              ("validate_val_samples", "--val-samples")) if cfg[k] is not None
             for f in (opt, str(cfg[k]))] + ["--top", str(a.validate_top), "--threads", str(a.threads)]

    print(f"search quality on {base['proxy']['data']}: space {SPACE.name} with proxy {cfg['epochs']} epoch(s), "
          f"{cfg['train_samples']} train / {cfg['val_samples']} val images ({label} configuration); budget "
          f"{budget.describe()}; seeds 0..{cfg['seeds'] - 1}; {a.threads} thread(s); "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"  tpe:    mvsearch run --space {space.name} --trials {cfg['trials']} {' '.join(ARMS['tpe'])} --seed S")
    print(f"  random: mvsearch run --space {space.name} {' '.join(ARMS['random'])} --seed S --trials "
          f"ceil(compute_tpe / {cfg['epochs']})")
    print("  compute = epochs trained by searched COMPLETE + PRUNED trials; the 2 baselines (trained in full in "
          "both arms, identically) are left out of both")
    print(f"  HV: front of searched COMPLETE trials, x = FLOPs / {x_max / 1e9:g}G, reference (1, {CHANCE}); max 0.9")
    if a.validate:
        print(f"  validate: mvsearch validate --seeds 1 {' '.join(vopts)} (unset: validate's defaults)")
    print(f"  workdir {work} (logs: <study>.log){'' if not made or a.keep else '; removed at the end (--keep)'}",
          flush=True)

    t_start = time.perf_counter()
    seeds = range(cfg["seeds"])
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    validated: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        for s in seeds:
            tpe, rnd = arms["tpe", s], arms["random", s]
            spent = {"tpe": run_tpe(tpe, space, cfg["trials"], a.threads, work)}
            target = compute_epochs(records(tpe.name, tpe.url))
            spent["random"] = run_random(rnd, space, target, cfg["epochs"], a.threads, work)
            for arm in ARMS:
                r = rows[arm, s] = measure(records(arms[arm, s].name, arms[arm, s].url), x_max, spent[arm])
                print(f"seed {s} {arm:<6}: {r['trained']} trained ({r['pruned']} pruned, {r['failed']} failed), "
                      f"compute {r['compute']} epochs, HV {r['hv']:.4f}, best {_pct(r['best'], r['best_n'])}"
                      f"; this run {_dur(spent[arm])}", flush=True)
        summary = report_search(rows, seeds)
        if a.validate:
            validated = run_validation(arms, seeds, vopts, work, summary["tally"])
    except CommandFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    total = time.perf_counter() - t_start
    print(f"\ntotal {_dur(total)}; studies in {work}")
    if a.json:
        per_seed = [{"arm": arm, "seed": s, **rows[arm, s], "validated": validated.get((arm, s))}
                    for s in seeds for arm in ARMS]
        config = dict(cfg, threads=a.threads, quick=a.quick, workdir=str(work), space=str(space),
                      budget_flops=x_max, chance=CHANCE)
        print(json.dumps(_plain({"config": config, "per_seed": per_seed, **summary, "wall_s": total})))
    if made and not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
