"""mvsearch.search.record: the one place trial and study keys are spelled, and old studies still read.

``tests/fixtures/schema1.db`` is a real study written by the release before per-tier studies (one
Optuna study ``schema1`` for the whole search: ``mvsearch run --space tiny --budget 3M --trials 3
--with-baselines --save-weights`` on synthetic data, made with commit 1a010ee).
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from mvsearch.arch.presets import get_preset
from mvsearch.cli.main import main
from mvsearch.search.record import ATTR_FIELDS, SCHEMA_VERSION, StudyRecord, TrialRecord, records_of
from mvsearch.search.storage import open_search

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "schema1.db"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def full_record() -> TrialRecord:
    arch = get_preset("mobilevit_xxs", 10)
    values = {
        "arch": arch, "params": 1, "flops": 2, "thop_macs": 3, "activations": 4, "resolution": [64, 64],
        "tier": "1.05G", "baseline": True, "preset": "mobilevit_xxs", "over_budget": False, "reject_reason": "r",
        "screened_out": 7, "accuracy_curve": [0.25, 0.5], "val_samples": 512, "images_per_s": 10.5,
        "train_wall_s": 1.5, "wall_s": 2.5, "seed": 3, "data": "synthetic", "proxy": {"epochs": 2},
        "proxy_arch": dataclasses.replace(arch, stem_stride=1), "weights": "w.pt", "worker": "h:1",
        "interrupted": True, "error": "e", "retry_of": 4, "mvsearch_version": "0.1.0", "point": "0123abcd",
        "seed_accuracies": [0.5, 0.75], "peak_rss": 123456789, "malloc": "jemalloc (held)",
    }
    assert set(values) == set(ATTR_FIELDS)  # the test sets every field
    return TrialRecord(**values)


def test_a_record_round_trips_through_a_stored_trial():
    rec = full_record()
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, params={"x": 1},
                                 distributions={"x": IntDistribution(0, 2)}, user_attrs=rec.to_attrs(),
                                 intermediate_values={1: 0.25, 2: 0.5}))
    back = TrialRecord.from_trial(study.trials[0], "s@1.05G", "1.05G/0")
    for name in ATTR_FIELDS:
        assert getattr(back, name) == getattr(rec, name), name
    assert (back.ref, back.study, back.state, back.accuracy, back.intermediate) == \
        ("1.05G/0", "s@1.05G", "COMPLETE", 0.5, {1: 0.25, 2: 0.5})


def test_to_attrs_refuses_a_key_that_is_not_a_field():
    with pytest.raises(KeyError, match="not a trial attribute"):
        TrialRecord().to_attrs("acuracy")


def test_a_pruned_trial_reads_its_last_reported_accuracy_and_a_bad_arch_reads_none():
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.3, 2: 0.4},
                                 user_attrs={"arch": {"stem": "wide"}, "flops": "many"}))
    r = records_of(study.trials, "x", None)[0]
    assert (r.accuracy, r.arch, r.flops, r.ref) == (0.4, None, None, "0")


def test_the_study_record_writes_space_yaml_last():
    attrs = StudyRecord(search="m", space_yaml="name: m").to_attrs()
    assert list(attrs)[-1] == "space_yaml" and attrs["schema_version"] == 1
    assert StudyRecord.from_attrs({**attrs, "unknown": 1}).search == "m"
    assert SCHEMA_VERSION == 2


def test_every_study_record_field_round_trips_through_a_stored_study():
    values = {"search": "m", "tier": "fidelity", "schema_version": 2, "space": "tiny", "space_file": "tiny.yaml",
              "budget": "15M FLOPs", "budgets": {"tiers": []}, "tiers": ["15M"], "max_params": 5,
              "resolution": [64, 64], "num_classes": 10, "data": "synthetic", "proxy": {"epochs": 2}, "sampler": "tpe",
              "pruner": "median", "seed": 3, "mvsearch_version": "0.1.0", "scale": {"label": "x"},
              "fidelity": {"space": "tiny", "proxies": [{"text": "epochs=1"}]}, "seeds": 3,
              "validate": {"proxy": {"epochs": 3}, "seeds": 2, "top": 2}, "space_yaml": "name: tiny"}
    assert set(values) == {f.name for f in dataclasses.fields(StudyRecord)}  # the test sets every field
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    for k, v in StudyRecord(**values).to_attrs().items():
        study.set_user_attr(k, v)
    back = StudyRecord.from_attrs(optuna.load_study(study_name=study.study_name, storage=storage).user_attrs)
    assert dataclasses.asdict(back) == values


def test_no_module_but_the_record_spells_a_trial_or_study_key():
    # user attributes are written and read only through TrialRecord / StudyRecord
    literal = re.compile(r"""(set_user_attr\(\s*["']|user_attrs\.get\(\s*["']|user_attrs\[\s*["'])""")
    offenders = []
    for path in (ROOT / "mvsearch").rglob("*.py"):
        if path.name == "record.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if literal.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


# ---------------------------------------------------------------------- schema 1 (the old layout)
@pytest.fixture
def old(tmp_path):
    db = tmp_path / "schema1.db"
    shutil.copy(FIXTURE, db)
    return db


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_schema1_study_reads_as_one_search_with_plain_trial_numbers(old):
    s = open_search("schema1", f"sqlite:///{old}")
    assert list(s.studies) == [""]  # one Optuna study, no tiers as studies
    recs = s.records(include_rejected=True)
    assert [r.ref for r in recs] == [str(r.number) for r in recs]
    base = [r for r in recs if r.baseline]
    assert sorted(r.preset for r in base) == ["mobilevit_s", "mobilevit_xs", "mobilevit_xxs"]
    trained = [r for r in recs if r.trained and not r.baseline]
    assert trained and all(r.arch is not None and r.flops <= 3_000_000 for r in trained)
    assert all(r.accuracy_curve and r.weights for r in trained)
    assert s.info.space == "tiny" and s.info.proxy["epochs"] == 2


@pytest.mark.parametrize("args", [["trials"], ["trials", "--format", "json"], ["pareto", "-o", "{tmp}/p.html"],
                                  ["export", "--best", "-o", "{tmp}/m"], ["report", "-o", "{tmp}/r.html"]])
def test_every_reading_command_opens_a_schema1_study_and_leaves_it_unchanged(old, tmp_path, args):
    before = digest(old)
    args = [a.format(tmp=tmp_path) for a in args]
    r = CliRunner().invoke(main, [*args, "--study", "schema1", "--storage", f"sqlite:///{old}"])
    assert r.exit_code == 0, r.output
    assert digest(old) == before


def test_run_refuses_to_add_tier_studies_beside_a_schema1_study(old, tmp_path):
    r = CliRunner().invoke(main, ["run", "--space", "tiny", "--budget", "3M", "--study", "schema1", "--storage",
                                  f"sqlite:///{old}", "--data", "synthetic:samples=1024,classes=4", "--trials", "1"])
    assert r.exit_code == 2 and "older mvsearch" in r.output
