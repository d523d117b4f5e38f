"""``mvsearch validate``: a real (tiny, synthetic) search, its front and presets retrained longer, the
verdicts against the presets, ``--by validated`` in pareto/report/export, resume, two workers, and
one-line refusals."""
from __future__ import annotations

import dataclasses

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from mvsearch.analysis import validation as va
from mvsearch.cli.main import main
from mvsearch.core.errors import StudyError
from mvsearch.proxy.settings import ProxySettings
from mvsearch.search import validate as vd
from mvsearch.search.record import TrialRecord
from mvsearch.search.storage import open_search
from mvsearch.space.loader import load_space
from tests._signals import sigint_after

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
# the search's proxy: 1 epoch on 64 synthetic images at 32x32 (tiny's resolution), 64 validation images
SPACE = (ROOT / "mvsearch" / "space" / "spaces" / "tiny.yaml").read_text().replace(
    "epochs: 2", "epochs: 1").replace("train_samples: 256", "train_samples: 64").replace(
    "val_samples: 128", "val_samples: 64")
LONGER = ["--epochs", "2", "--train-samples", "128", "--val-samples", "128", "--threads", "1", "--resamples", "200"]


def cli(*args):
    return runner.invoke(main, [*map(str, args)])


def one_line_error(r, *words):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A real search of 4 candidates and the three paper presets (synthetic data), never validated."""
    d = tmp_path_factory.mktemp("validate")
    space = d / "small.yaml"
    space.write_text(SPACE.replace("name: tiny", "name: small"))
    url = f"sqlite:///{d / 'base.db'}"
    r = cli("run", "--space", space, "--data", "synthetic", "--trials", "4", "--with-baselines", "--threads", "1",
            "--study", "s", "--storage", url)
    assert r.exit_code == 0, r.output + r.stderr
    with sqlite3.connect(d / "base.db") as con:  # the whole study in the one file (WAL folded in)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return d / "base.db"


@pytest.fixture()
def study(searched, tmp_path):
    """A fresh copy of the searched study for one test."""
    db = tmp_path / "s.db"
    shutil.copy(searched, db)
    return f"sqlite:///{db}"


def validate(url, *extra):
    r = cli("validate", "--study", "s", "--storage", url, *LONGER, *extra, "--json")
    assert r.exit_code == 0, r.output + r.stderr
    return json.loads(r.stdout)


# ---------------------------------------------------------------------- the setting and the choice
def test_the_default_setting_is_ten_times_the_images_and_at_least_2048_validation_images():
    p = load_space("mobile").proxy_settings()
    s = vd.setting(p)
    assert (s.epochs, s.train_samples, s.val_samples) == (p.epochs, 10 * p.train_samples, 3072)  # mobile's own 3,072
    assert vd.setting(dataclasses.replace(p, val_samples=512)).val_samples == 2048  # at least 2,048
    assert s.resolution == p.resolution and s.lr == p.lr  # the rest is the search's proxy
    assert vd.setting(p, train_samples="all").train_samples is None
    every = ProxySettings(train_samples=None, epochs=2)
    assert vd.setting(every).epochs == 6  # all images already: three times the epochs
    with pytest.raises(StudyError, match="must train longer"):
        vd.setting(p, epochs=p.epochs, train_samples=p.train_samples)
    with pytest.raises(StudyError, match="must train longer"):
        vd.setting(p, epochs=1, train_samples=p.train_samples)  # fewer epochs on the same images
    with pytest.raises(StudyError, match="--train-samples"):
        vd.setting(p, train_samples="many")


def test_the_choice_is_the_top_of_each_tiers_front_every_preset_and_its_rival(study):
    search = open_search("s", study)
    recs = [r for r in search.records() if r.state == "COMPLETE"]
    chosen = vd.choose(search, 1)
    presets = sorted(r.preset for r, why in chosen if why == "preset")
    assert presets == ["mobilevit_s", "mobilevit_xs", "mobilevit_xxs"]
    fronts = [r for r, why in chosen if why.startswith("front")]
    best = max((r for r in recs if not r.baseline), key=lambda r: (r.accuracy, -r.flops))
    assert len(fronts) == 1 and fronts[0].accuracy == best.accuracy
    # each preset's rival: the most accurate searched trial at no more FLOPs, listed once
    refs = [r.ref for r, _ in chosen]
    assert len(refs) == len(set(refs))
    for b in (r for r in recs if r.baseline):
        fit = [r for r in recs if not r.baseline and r.flops <= b.flops]
        if fit:
            rival = max(fit, key=lambda r: (r.accuracy, -r.flops))
            assert rival.ref in refs, (b.preset, rival.ref, refs)
    rivals = [(r, why) for r, why in chosen if why.startswith("vs ")]
    assert all(r.flops <= next(b.flops for b in recs if b.preset == why[3:]) for r, why in rivals)
    assert set(refs) == {r.ref for r in fronts} | {r.ref for r, why in chosen if why == "preset"} | \
        {r.ref for r, _ in rivals}
    two = [r for r, why in vd.choose(search, 2) if why.startswith("front")]
    assert len(two) >= 1 and all(r.tier == fronts[0].tier for r in two)
    assert two[0].accuracy >= two[-1].accuracy and (len(two) == 1 or two[1].flops < two[0].flops)  # a front


class _Records:
    """A search's records, as :func:`vd.choose` reads them (``name`` and ``records()``)."""

    def __init__(self, recs):
        self.name, self._recs = "made-up", recs

    def records(self):
        return self._recs


def _rec(ref, flops, acc, preset=None):
    return TrialRecord(ref=ref, state="COMPLETE", accuracy=acc, arch={"made": "up"}, flops=flops,
                       params=1, tier=None if preset else "1.5G", baseline=preset is not None, preset=preset)


def test_a_preset_below_the_fronts_top_gets_its_rival_validated_too():
    # the front's most accurate member (1.06G) costs more than mobilevit_xs (1.05G): without its rival
    # (the most accurate searched model at <= 1.05G) the validated XS would have nothing to face
    recs = [_rec("1.5G/2", 1_064_645_120, 0.766), _rec("1.5G/5", 936_431_104, 0.755),
            _rec("1.5G/3", 1_000_000_000, 0.703), _rec("1.5G/4", 600_000_000, 0.70),
            _rec("1.5G/0", 418_183_680, 0.667, "mobilevit_xxs"), _rec("1.5G/1", 1_052_168_192, 0.692, "mobilevit_xs")]
    chosen = [(r.ref, why) for r, why in vd.choose(_Records(recs), 1)]
    assert chosen == [("1.5G/0", "preset"), ("1.5G/5", "vs mobilevit_xs"), ("1.5G/1", "preset"),
                      ("1.5G/2", "front 1.5G #1")]  # by FLOPs; nothing searched fits below XXS
    top2 = [(r.ref, why) for r, why in vd.choose(_Records(recs), 2)]
    assert ("1.5G/5", "front 1.5G #2") in top2 and len(top2) == 4  # the rival is listed once


# ---------------------------------------------------------------------- end to end
def test_validate_retrains_the_chosen_models_with_their_seeds_and_compares_them_with_the_presets(study):
    out = validate(study, "--top", "1", "--seeds", "2")
    models = out["models"]
    assert {m["preset"] for m in models} >= {"mobilevit_xxs", "mobilevit_xs", "mobilevit_s"}
    assert len(models) == 4 and out["run"]["trained"] == 8
    for m in models:
        assert m["seeds"] == 2 and len(m["trainings"]) == 2 and m["val_samples"] == 128
        assert m["validated_accuracy"] == pytest.approx(sum(m["validated_accuracies"]) / 2)
        lo, hi = m["validated_interval"]
        assert lo <= m["validated_accuracy"] <= hi and m["proxy_val_samples"] == 64
    assert sorted(m["validated_rank"] for m in models) == [1, 2, 3, 4]
    assert [v["preset"] for v in out["versus"]] == ["mobilevit_xxs", "mobilevit_xs", "mobilevit_s"]
    for v in out["versus"]:
        assert v["verdict"] in ("win", "tie", "loss")
        lo, hi = v["gain_interval"]
        assert lo <= v["gain_points"] <= hi
        assert v["verdict"] == ("win" if lo > 0 else "loss" if hi < 0 else "tie")
        assert v["gain_points"] == pytest.approx(100 * (v["best_accuracy"] - v["preset_accuracy"]))
        assert v["proxy"]["verdict"] in ("win", "tie", "loss")
    assert out["tau"]["n"] == 4 and -1 <= out["tau"]["value"] <= 1
    assert sum(out["tally"].values()) == 3
    # stored beside the trials, as an ordinary Optuna study, one trial per (model, seed)
    ts = optuna.load_study(study_name="s@validate", storage=study).get_trials(deepcopy=False)
    done = [(TrialRecord.from_user_attrs(t.user_attrs).point, TrialRecord.from_user_attrs(t.user_attrs).seed)
            for t in ts if t.state == TrialState.COMPLETE]
    assert len(done) == len(set(done)) == 8
    # a rerun trains nothing and says the same
    again = validate(study, "--top", "1", "--seeds", "2")
    assert again["run"]["trained"] == 0 and again["models"] == models and again["versus"] == out["versus"]
    # the search's own commands still see only the search's trials
    r = cli("trials", "--study", "s", "--storage", study, "--format", "json")
    rows = json.loads(r.stdout)
    assert r.exit_code == 0 and all(not t["trial"].startswith("validate") for t in rows)
    # ... and trials shows each one's validated accuracy beside its proxy accuracy
    by_ref = {m["ref"]: m for m in models}
    for t in rows:
        m = by_ref.get(t["trial"])
        assert t["validated"] == (m["validated_accuracy"] if m else None), t["trial"]
        if m:
            assert [t["validated_lo"], t["validated_hi"]] == pytest.approx(m["validated_interval"])
            assert t["validated_accuracies"] == m["validated_accuracies"] and t["validated_val_samples"] == 128
    r = cli("trials", "--study", "s", "--storage", study, "--sort", "validated")
    head, first = r.stdout.splitlines()[1:3]
    assert "validated" in head.split()
    assert by_ref[first.split()[0]]["validated_accuracy"] == max(m["validated_accuracy"] for m in models)


def test_the_text_output_says_the_verdicts_and_the_rank_agreement(study):
    r = cli("validate", "--study", "s", "--storage", study, *LONGER, "--top", "1", "--seeds", "1")
    assert r.exit_code == 0, r.output + r.stderr
    text = r.stdout
    assert "validated under: 2 epochs on 128 train images, 128 val images, 1 seed(s) each" in text
    assert "mobilevit_xs (" in text and "best searched at <= its FLOPs, validated:" in text
    assert "after validation the searched models win" in text and "proxy vs validated order: Kendall tau" in text
    assert r.stderr.count("validate/") == 4  # one progress line per training


def test_a_new_setting_supersedes_the_old_one_and_by_validated_reads_the_latest(study):
    first = validate(study, "--top", "1", "--seeds", "1")
    second = validate(study, "--top", "1", "--seeds", "1", "--epochs", "3")
    assert second["run"]["trained"] == 4  # another setting: another training of each model
    assert second["setting"].startswith("3 epochs")
    search = open_search("s", study)
    vals = vd.validated(search)
    assert vals.proxy.epochs == 3
    for m in second["models"]:
        assert vals.get(m["ref"]).accuracy == pytest.approx(m["validated_accuracy"])
    assert len(first["models"]) == len(second["models"])


def test_by_validated_ranks_pareto_export_and_report_by_the_validated_accuracy(study, tmp_path):
    out = validate(study, "--top", "2", "--seeds", "1")
    acc = {m["ref"]: m["validated_accuracy"] for m in out["models"]}
    r = cli("pareto", "--study", "s", "--storage", study, "--by", "validated", "--json", "-o", tmp_path / "p.html")
    assert r.exit_code == 0, r.stderr
    p = json.loads(r.stdout)
    assert p["y"]["name"] == "validated" and p["front"]
    for pt in p["front"]:
        assert pt["trial"] in acc and pt["accuracy"] == pytest.approx(acc[pt["trial"]])
        assert pt["val_samples"] == 128
    best = max(acc.values())
    assert p["front"][0]["accuracy"] == pytest.approx(best)
    r = cli("export", "--study", "s", "--storage", study, "--best", "--by", "validated", "-o", tmp_path / "ex")
    assert r.exit_code == 0, r.stderr
    chosen = next(m for m in out["models"] if m["validated_accuracy"] == best)
    assert f"validated accuracy {best:.4f}" in r.stdout
    assert chosen["ref"] in r.stdout or sum(m["validated_accuracy"] == best for m in out["models"]) > 1
    r = cli("report", "--study", "s", "--storage", study, "--by", "validated", "-o", tmp_path / "r.html")
    assert r.exit_code == 0, r.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Validation: the winners retrained longer" in html and "Pareto front: validated accuracy vs FLOPs" in html
    assert 'class="sortable validated"' in html


# ---------------------------------------------------------------------- the verdict
def test_the_verdict_follows_the_interval_of_the_difference():
    gain, (lo, hi), verdict = va.compare(0.90, 2000, 0.80, 2000)
    assert gain == pytest.approx(10.0) and lo > 0 and verdict == "win"
    assert va.compare(0.80, 2000, 0.90, 2000)[2] == "loss"
    assert va.compare(0.76, 512, 0.74, 512)[2] == "tie"  # 2 points on 512 images: within the noise
    assert va.compare(0.76, 50_000, 0.74, 50_000)[2] == "win"  # the same gap on 50,000: beyond it


# ---------------------------------------------------------------------- two workers
def _cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mvsearch", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ))


def test_two_workers_train_each_model_and_seed_exactly_once(study):
    args = ["validate", "--study", "s", "--storage", study, *LONGER, "--top", "2", "--seeds", "2", "--json"]
    procs = [_cli(*args)]
    time.sleep(1.0)
    procs.append(_cli(*args))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e
    runs = [json.loads(o)["run"] for o, _ in outs]
    ts = optuna.load_study(study_name="s@validate", storage=study).get_trials(deepcopy=False)
    done = [(TrialRecord.from_user_attrs(t.user_attrs).point, TrialRecord.from_user_attrs(t.user_attrs).seed)
            for t in ts if t.state == TrialState.COMPLETE]
    models = json.loads(outs[1][0])["models"]
    assert len(done) == len(set(done)) == 2 * len(models) == sum(r["trained"] for r in runs)


# ---------------------------------------------------------------------- bad input: one line, exit 2, nothing made
@pytest.mark.parametrize("extra, words", [
    (["--top", "0"], ["--top", "got 0"]),
    (["--seeds", "0"], ["--seeds", "got 0"]),
    (["--seeds", "21"], ["--seeds", "got 21"]),
    (["--epochs", "1", "--train-samples", "64"], ["must train longer", "1 epochs on 64"]),
    (["--epochs", "0"], ["--epochs"]),
    (["--train-samples", "lots"], ["--train-samples", "'all'"]),
    (["--val-samples", "100000"], ["val_samples"]),
])
def test_bad_options_are_one_line_and_make_no_validation_study(study, extra, words):
    r = cli("validate", "--study", "s", "--storage", study, "--threads", "1", *extra)
    one_line_error(r, *words)
    assert "s@validate" not in optuna.get_all_study_names(storage=study)


def test_a_study_without_completed_trials_and_an_unvalidated_study_are_refused(tmp_path, study):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="e@1G", storage=url)
    one_line_error(cli("validate", "--study", "e", "--storage", url), "no completed trial to validate",
                   "mvsearch run")
    one_line_error(cli("validate", "--study", "nope", "--storage", study), "no study named 'nope'")
    for cmd in (["pareto", "-o", tmp_path / "p.html"], ["report", "-o", tmp_path / "r.html"],
                ["export", "--best", "-o", tmp_path / "x"]):
        one_line_error(cli(*cmd, "--study", "s", "--storage", study, "--by", "validated"),
                       "no validated trial", "mvsearch validate --study s")
    one_line_error(cli("pareto", "--study", "s", "--storage", study, "--by", "best", "-o", tmp_path / "p.html"),
                   "--by", "proxy or validated")
    assert not (tmp_path / "p.html").exists() and not (tmp_path / "x").exists()


# ---------------------------------------------------------------------- Ctrl-C while a training is set up
# the training's trial is RUNNING and being set up, not yet training
SIGINT_WHILE_SET_UP = sigint_after("mvsearch.search.trainings", "proxy_arch")


def test_ctrl_c_while_a_training_is_set_up_marks_it_interrupted_and_a_rerun_retrains_it(study):
    # the planned-training half (validate, fidelity, scale) of the run's set-up fix
    # (test_cli_run::test_ctrl_c_while_a_trial_is_set_up_marks_it_interrupted)
    args = ["validate", "--study", "s", "--storage", study, *LONGER, "--top", "1", "--seeds", "1"]
    p = subprocess.run([sys.executable, "-c", SIGINT_WHILE_SET_UP, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 130 and "interrupted" in p.stderr and "Traceback" not in p.stderr, (p.stdout, p.stderr)
    ts = optuna.load_study(study_name="s@validate", storage=study).get_trials(deepcopy=False)
    assert [t.state for t in ts] == [TrialState.FAIL] and ts[0].user_attrs["interrupted"] is True
    assert not ts[0].user_attrs.get("accuracy_curve")  # it never trained
    interrupted = TrialRecord.from_user_attrs(ts[0].user_attrs).point
    out = validate(study, "--top", "1", "--seeds", "1")  # the rerun trains it, and everything else, once
    ts = optuna.load_study(study_name="s@validate", storage=study).get_trials(deepcopy=False)
    done = [TrialRecord.from_user_attrs(t.user_attrs).point for t in ts if t.state == TrialState.COMPLETE]
    assert interrupted in done and len(done) == len(set(done)) == len(out["models"])
