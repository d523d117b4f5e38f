"""``mvsearch fidelity`` on the tiny space with synthetic data: the plan, end to end (tau and rho with
intervals, baselines, ceiling, costs, verdict, page), resume, two workers, and one-line refusals."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from mvsearch.analysis.fidelity_report import NO_PROXY
from mvsearch.arch.config import ArchConfig
from mvsearch.budget import parse_budget
from mvsearch.cli.main import main
from mvsearch.core.errors import StudyError
from mvsearch.proxy.settings import ProxySettings
from mvsearch.search import fidelity as fd
from mvsearch.search.record import StudyRecord, TrialRecord
from mvsearch.search.trainings import point_key
from mvsearch.space.loader import load_space

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "epochs=2,train_samples=128"
PROXY = "epochs=1,train_samples=64"
# 5 architectures, trainings of 64-256 synthetic images at 32x32: well under a second each
FAST = ["--space", "tiny", "--data", "synthetic", "--archs", "5", "--reference", REFERENCE, "--threads", "1",
        "--resamples", "200"]

runner = CliRunner()


def fidelity(*args):
    return runner.invoke(main, ["fidelity", *map(str, args)])


def one_line_error(r, *words):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def trials(url: str, name: str):
    return optuna.load_study(study_name=f"{name}@fidelity", storage=url).get_trials(deepcopy=False)


def done_jobs(ts) -> list[tuple[str, int]]:
    return [(r.point, r.seed) for r in (TrialRecord.from_user_attrs(t.user_attrs) for t in ts
                                        if t.state == TrialState.COMPLETE)]


def planned_jobs(out: dict) -> list[tuple[str, int]]:
    """Every (point, seed) the JSON's plan asks for: the reference with its seeds, each proxy with its own."""
    jobs = []
    for a in out["archs"]:
        arch = ArchConfig.from_dict(a["arch"])
        for s in [out["reference"], *out["proxies"]]:
            key = point_key(arch, out["resolution"], ProxySettings.from_dict(s["proxy"]))
            jobs += [(key, seed) for seed in range(s["seeds"])]
    return jobs


# ---------------------------------------------------------------------- settings and the plan
def test_a_setting_overrides_the_spaces_proxy_and_reads_back_canonically():
    base = load_space("tiny").proxy_settings(data="synthetic")
    s = fd.parse_setting(" epochs=3, train-samples=all ,lr=0.01", base, seeds=2)
    assert s.text == "epochs=3,train_samples=all,lr=0.01"
    assert (s.proxy.epochs, s.proxy.train_samples, s.proxy.lr, s.seeds) == (3, None, 0.01, 2)
    assert s.proxy.resolution == base.resolution and s.proxy.data == "synthetic"  # the rest is the space's
    with pytest.raises(StudyError, match="unknown key 'epoch'; known: resolution, stem_stride, epochs"):
        fd.parse_setting("epoch=3", base, seeds=1)
    with pytest.raises(StudyError, match="epochs must be an integer, got '1.5'"):
        fd.parse_setting("epochs=1.5", base, seeds=1)


def test_the_plan_spreads_the_archs_over_equal_log_flops_strata_and_repeats_for_a_seed():
    space, budget = load_space("tiny"), parse_budget("15M")
    base = space.proxy_settings(data="synthetic")
    ref = fd.parse_setting(REFERENCE, base, seeds=2, reference=True)
    proxy = fd.parse_setting(PROXY, base, seeds=1)
    p = fd.plan(space, budget, 6, ref, [proxy], seed=0)
    lo, hi = (math.log(f) for f in p.band)
    for c in p.candidates:  # candidate i was drawn from stratum i of the band
        assert min(5, int((math.log(c.flops) - lo) / ((hi - lo) / 6))) == c.index, (c.index, c.flops, p.band)
        assert c.flops <= 15_000_000 and c.tier == "15M"
    assert len({c.arch for c in p.candidates}) == 6
    assert fd.plan(space, budget, 6, ref, [proxy], seed=0).candidates == p.candidates  # a rerun plans the same
    assert fd.plan(space, budget, 6, ref, [proxy], seed=1).candidates != p.candidates
    e = p.entry(2, ref)  # each (architecture, setting) is a point with the setting's seeds
    assert (e.index, e.seeds, e.proxy, e.arch) == (2, 2, ref.proxy, p.candidates[2].arch)
    assert p.entry(2, proxy).seeds == 1 and p.entry(2, proxy).key != e.key
    assert p.trainings() == 6 * 3


def test_the_paper_presets_in_the_band_replace_the_draw_of_their_stratum():
    space, budget = load_space("mobile"), parse_budget(tiers="paper")
    cands, band = fd.draw_archs(space, budget, 6, 0)
    named = {c.preset: c for c in cands if c.preset}
    assert set(named) == {"mobilevit_xxs", "mobilevit_xs", "mobilevit_s"}
    assert {c.tier for c in named.values()} == {"0.42G", "1.05G", "2.03G"}  # each in its own tier
    assert len(cands) == 6 and [c.flops for c in cands] == sorted(c.flops for c in cands)
    # a space that cannot encode the presets (tiny's widths) plans none
    assert not any(c.preset for c in fd.draw_archs(load_space("tiny"), parse_budget("15M"), 5, 0)[0])


# ---------------------------------------------------------------------- the report, on made-up accuracies
def _made_up(reference_of, proxies_of, budget="2.5M,15M", n=9):
    """A plan on tiny with two tiers, and results whose accuracies the test chooses (no training)."""
    from mvsearch.search.trainings import Result

    space = load_space("tiny")
    base = space.proxy_settings(data="synthetic")
    ref = fd.parse_setting(REFERENCE, base, seeds=2, reference=True)
    proxies = [fd.parse_setting("epochs=1,train_samples=128", base, seeds=1),
               fd.parse_setting(PROXY, base, seeds=1)]  # the second is the cheaper
    p = fd.plan(space, parse_budget(budget), n, ref, proxies, seed=0)
    results = {}
    for c in p.candidates:
        accs = {ref.text: reference_of(c), **{s.text: [f(c)] for s, f in zip(proxies, proxies_of)}}
        for s in p.settings:
            key = p.entry(c.index, s).key
            results[key] = [Result(key, i, a, 128, 1.0 + s.proxy.epochs, f"fidelity/{c.index}") for i, a in
                            enumerate(accs[s.text])]
    return p, results


def test_the_verdict_is_the_cheapest_proxy_whose_interval_clears_the_flops_tau():
    from mvsearch.analysis.fidelity_report import build

    # accuracy falls with FLOPs (tau of FLOPs = -1); the dearer proxy follows the reference exactly, the
    # cheaper one is the reverse of the reference
    p, results = _made_up(lambda c: [0.9 - 0.01 * c.index, 0.89 - 0.01 * c.index],
                          [lambda c: 0.5 - 0.01 * c.index, lambda c: 0.2 + 0.01 * c.index])
    rep = build(p, results, resamples=300)
    good, bad = rep.proxies
    assert rep.flops.tau.value == -1.0 and good.agreement.tau.value == 1.0 and bad.agreement.tau.value == -1.0
    assert (good.beats_flops, bad.beats_flops) == (True, False)
    assert rep.chosen == good.setting.text and rep.verdict.startswith(f"use --proxy {good.setting.text}")
    assert (good.cost.images_ratio, bad.cost.images_ratio) == (128 / 256, 64 / 256)
    assert good.cost.seconds_ratio == pytest.approx(2.0 / 3.0)  # one 2 s training vs a 3 s reference training
    # tau within each tier: both tiers hold enough architectures here, each ordered perfectly
    tiers = [c.tier for c in p.candidates]
    assert set(tiers) == {"2.5M", "15M"} and min(tiers.count(t) for t in set(tiers)) >= 3
    assert {t: a.tau.value for t, a in good.tiers.items()} == {"2.5M": 1.0, "15M": 1.0}
    text = "\n".join(rep.lines())
    assert "tau within each FLOP tier" in text and f"verdict: {rep.verdict}" in text


def test_no_proxy_beats_flops_when_flops_already_order_the_reference():
    from mvsearch.analysis.fidelity_report import build

    p, results = _made_up(lambda c: [0.5 + 0.01 * c.index, 0.51 + 0.01 * c.index],
                          [lambda c: 0.3 + 0.01 * c.index, lambda c: 0.3])
    rep = build(p, results, resamples=300)
    assert rep.flops.tau.value == 1.0 and rep.proxies[0].agreement.tau.value == 1.0
    assert rep.proxies[1].agreement.tau.shown() == "undefined"  # a constant proxy orders nothing
    assert rep.verdict == NO_PROXY and rep.chosen is None
    assert rep.ceiling.tau.value == 1.0


def test_a_partly_trained_study_reports_what_it_has_and_says_what_is_missing():
    from mvsearch.analysis.fidelity_report import build

    p, results = _made_up(lambda c: [0.5 + 0.01 * c.index, 0.51 + 0.01 * c.index],
                          [lambda c: 0.3 + 0.01 * c.index, lambda c: 0.3 - 0.01 * c.index])
    for c in p.candidates[:7]:  # the cheaper proxy trained on two architectures only
        results[p.entry(c.index, p.proxies[1]).key] = []
    rep = build(p, results, resamples=300)
    assert rep.proxies[1].agreement is None and rep.proxies[1].archs == 2
    assert rep.proxies[0].agreement.tau.archs == 9
    assert rep.chosen is None and rep.verdict.startswith("not judged yet")
    assert any("7 of 27" in n for n in rep.notes)


# ---------------------------------------------------------------------- end to end
def test_fidelity_trains_reports_tau_with_intervals_and_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    page = tmp_path / "fidelity.html"
    args = [*FAST, "--proxy", PROXY, "--proxy", "train_samples=64", "--storage", url, "--name", "fid"]
    r = fidelity(*args, "--json", "-o", page)
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    jobs = planned_jobs(out)
    assert len(jobs) == 5 * (2 + 1 + 1)
    assert sorted(done_jobs(trials(url, "fid"))) == sorted(jobs)  # each (arch, setting, seed) exactly once
    assert out["run"]["trained"] == len(jobs)
    for p in out["proxies"]:
        assert p["archs"] == 5
        for stat in ("tau", "rho"):
            lo, hi = p[stat]["interval95"]
            assert -1 <= lo <= p[stat]["value"] <= hi <= 1, p[stat]
        assert p["tiers"]["15M"]["tau"]["value"] == p["tau"]["value"]  # one tier: all five archs
    for base in ("flops", "params"):
        lo, hi = out["baselines"][base]["tau"]["interval95"]
        assert lo <= out["baselines"][base]["tau"]["value"] <= hi
    ceiling = out["ceiling"]["tau"]
    assert ceiling["archs"] == 5 and ceiling["interval95"][0] <= ceiling["value"] <= ceiling["interval95"][1]
    # cost: images per architecture relative to one reference training (2 x 128)
    costs = {p["setting"]: p["cost"] for p in out["proxies"]}
    assert costs[PROXY]["images_per_arch"] == 64 and costs[PROXY]["images_vs_reference"] == 64 / 256
    assert costs["train_samples=64"]["images_vs_reference"] == 128 / 256
    assert all(c["train_s_per_arch"] > 0 and c["train_s_vs_reference"] > 0 for c in costs.values())
    # the verdict: the cheapest proxy whose whole tau interval lies above FLOPs' tau, or none
    flops_tau = out["baselines"]["flops"]["tau"]["value"]
    beating = [p for p in out["proxies"] if p["tau"]["interval95"][0] > flops_tau]
    assert [p["beats_flops"] for p in out["proxies"]] == [p in beating for p in out["proxies"]]
    if beating:
        best = min(beating, key=lambda p: p["cost"]["images_per_arch"])
        assert out["verdict"]["proxy"] == best["setting"] and out["verdict"]["text"].startswith("use --proxy")
    else:
        assert out["verdict"] == {"proxy": None, "text": NO_PROXY}
    # the study's record says what was planned
    st = optuna.load_study(study_name="fid@fidelity", storage=url)
    rec = StudyRecord.from_attrs(st.user_attrs)
    assert rec.tier == "fidelity" and rec.fidelity["archs"] == 5 and rec.fidelity["reference"]["setting"] == REFERENCE
    assert page.stat().st_size > 100_000 and b'content="mvsearch' in page.read_bytes()
    # the same command again trains nothing and reports the same figures
    r2 = fidelity(*args, "--json")
    assert r2.exit_code == 0, r2.output
    out2 = json.loads(r2.stdout)
    assert out2["run"]["trained"] == 0
    assert out2["proxies"] == out["proxies"] and out2["verdict"] == out["verdict"]
    # text: the plan, the settings table, the baselines, the ceiling and the verdict
    r3 = fidelity(*args)
    assert r3.exit_code == 0
    for words in ("plan: 5 architectures x 3 settings, 20 trainings", f"proxy {PROXY}", "FLOPs alone",
                  "reference seed 0 vs 1", f"verdict: {out['verdict']['text']}"):
        assert words in r3.stdout, words
    # another space under the same name is refused, before anything is trained
    other = tmp_path / "tiny2.yaml"
    other.write_text((ROOT / "spaces" / "tiny.yaml").read_text().replace("name: tiny", "name: tiny2"))
    r4 = fidelity(*args[:1], other, *args[2:])
    one_line_error(r4, "measured space 'tiny'", "--name")
    assert len(trials(url, "fid")) == len(jobs)


def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path):
    r = fidelity(*FAST, "--proxy", PROXY, "--storage", f"sqlite:///{tmp_path / 'd.db'}", "--dry-run")
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == list(range(5))
    assert "15 trainings" in r.stdout and r.stdout.rstrip().endswith("dry run: nothing trained")
    assert not (tmp_path / "d.db").exists()


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "mvsearch", "fidelity", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ))


def test_two_workers_train_each_arch_setting_and_seed_exactly_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    args = [*FAST, "--archs", "6", "--proxy", PROXY, "--storage", url, "--name", "two", "--json"]
    procs = [_cli(*args)]
    time.sleep(1.0)
    procs.append(_cli(*args))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e
    runs = [json.loads(o)["run"] for o, _ in outs]
    jobs = planned_jobs(json.loads(outs[1][0]))
    assert len(jobs) == 6 * 3
    done = done_jobs(trials(url, "two"))
    assert sorted(done) == sorted(jobs)  # each job COMPLETE exactly once
    assert sum(r["trained"] for r in runs) == len(jobs)
    assert all(r["trained"] > 0 for r in runs), runs  # both workers trained


# ---------------------------------------------------------------------- bad input: one line, exit 2, nothing made
@pytest.mark.parametrize("extra, words", [
    (["--proxy", "epochs=1,learning_rate=0.1"], ["unknown key 'learning_rate'", "known: resolution", "train_samples"]),
    (["--proxy", "data=cifar10"], ["unknown key 'data'", "--data"]),
    (["--proxy", "epochs=1", "--archs", "0"], ["--archs", "got 0"]),
    (["--proxy", "epochs=4,train_samples=128"], ["the reference must be longer than every proxy", "512", "256"]),
    ([], ["--proxy"]),
    (["--proxy", "epochs=x"], ["epochs must be an integer"]),
    (["--proxy", "epochs"], ["KEY=VALUE"]),
    (["--proxy", REFERENCE], ["exactly as the reference"]),
    (["--proxy", PROXY, "--proxy", "train_samples=64,epochs=1"], ["the same training"]),
    (["--proxy", PROXY, "--seeds", "0"], ["--seeds"]),
    (["--proxy", PROXY, "--reference-seeds", "0"], ["--reference-seeds"]),
    (["--proxy", PROXY, "--name", "../x"], ["--name"]),
    (["--proxy", PROXY, "--budget", "1k"], ["budget"]),
    (["--proxy", "epochs=1,resolution=4"], ["proxy resolution"]),
])
def test_bad_input_is_one_line_and_creates_nothing(tmp_path, extra, words):
    db, page = tmp_path / "bad.db", tmp_path / "bad.html"
    r = fidelity(*FAST, "--storage", f"sqlite:///{db}", "-o", page, *extra)
    one_line_error(r, *words)
    assert not db.exists() and not page.exists()


def test_a_reference_on_all_images_is_checked_against_the_real_split(tmp_path):
    # train_samples=all is only known once the data is read (synthetic: 512 images, 128 of them validation)
    db = tmp_path / "all.db"
    r = fidelity(*FAST[:-6], "--reference", "epochs=1,train_samples=all", "--proxy", "epochs=2,train_samples=256",
                 "--threads", "1", "--storage", f"sqlite:///{db}")
    one_line_error(r, "the reference must be longer than every proxy", "384", "512")
    assert not db.exists()
