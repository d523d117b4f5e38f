"""Search spaces (mvsearch/space.py): loading, membership, sampling, size, cost range, errors."""
from __future__ import annotations

import dataclasses
import itertools
import random
from pathlib import Path

import optuna
import pydantic
import pytest

from mvsearch.cost.analytic import analytic_cost
from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import check_resolution
from mvsearch.cost.traced import fvcore_flops
from mvsearch.core.errors import SpaceError
from mvsearch.model.network import build_model
from mvsearch.space.knobs import DROPOUTS
from mvsearch.space.space import SearchSpace
from mvsearch.space.loader import find_space, load_space, parse_space

SPACES = Path(__file__).resolve().parent.parent / "spaces"


@pytest.fixture(scope="module")
def mobile() -> SearchSpace:
    return load_space(SPACES / "mobile.yaml")


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return load_space(SPACES / "tiny.yaml")


# ---------------------------------------------------------------------- shipped spaces
def test_shipped_spaces_load_into_frozen_objects(mobile, tiny):
    for space in (mobile, tiny):
        assert isinstance(space, SearchSpace)
        with pytest.raises(dataclasses.FrozenInstanceError):
            space.file = "elsewhere.yaml"
        with pytest.raises(pydantic.ValidationError):
            space.spec.name = "other"
        with pytest.raises(pydantic.ValidationError):
            space.spec.arch.layer3.dim = space.spec.arch.layer4.dim
        knob = space.spec.arch.stem
        with pytest.raises(dataclasses.FrozenInstanceError):
            knob.values = (1,)
    assert (mobile.name, mobile.resolution, mobile.num_classes) == ("mobile", (256, 256), 1000)
    assert (tiny.name, tiny.resolution, tiny.num_classes) == ("tiny", (64, 64), 10)


def test_a_shipped_space_is_found_by_name(mobile):
    assert find_space("mobile").resolve() == (SPACES / "mobile.yaml").resolve()
    assert load_space("tiny").spec == load_space(SPACES / "tiny.yaml").spec


def test_unknown_space_name_suggests_the_nearest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpaceError, match=r"did you mean 'mobile'\?.*known spaces: .*mobile, tiny"):
        load_space("mobil")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_mobile_contains_each_paper_preset_exactly(mobile, name):
    cfg = get_preset(name)
    params = mobile.encode(cfg)
    assert params is not None and mobile.contains(cfg)
    # the params rebuild the preset (dropout rates are training settings, the space's own)
    rebuilt = mobile.from_params(params)
    assert rebuilt == dataclasses.replace(cfg, **{d: getattr(rebuilt, d) for d in DROPOUTS})
    assert set(params) == {n for n, _ in mobile.searched()}


def test_mobile_reaches_beyond_the_presets_in_every_knob(mobile):
    searched = dict(mobile.searched())
    # every architecture knob is searched (only the dropout rates are fixed)
    assert set(searched) == {n for n, _ in mobile.knobs()} - set(DROPOUTS)
    encoded = [mobile.encode(get_preset(n)) for n in PRESETS]
    for name, knob in searched.items():
        used = [e[name] for e in encoded]
        if knob.kind == "patch":
            assert set(knob.choices()) - set(used), name
            continue
        assert max(knob.values) > max(used), f"{name}: nothing above the presets' {max(used)}"
        # below too, unless the presets already use the smallest legal value (1 block)
        assert min(knob.values) < min(used) or min(used) == 1, f"{name}: nothing below {min(used)}"


def test_tiny_excludes_the_presets_and_is_small(tiny):
    assert not any(tiny.contains(get_preset(n, 10)) for n in PRESETS)
    assert tiny.cost_range().max_flops < 15e6  # its default budget (15M) admits the whole space


def test_sampled_params_give_valid_members_that_round_trip(mobile, tiny):
    rng = random.Random(0)
    for space in (mobile, tiny):
        for _ in range(150):
            cfg = space.from_params(space.random_params(rng))
            assert isinstance(cfg, ArchConfig)  # ArchConfig validates itself (dim % heads, odd n...)
            check_resolution(cfg, space.resolution)
            assert cfg.num_classes == space.num_classes and cfg.stem_stride == 2
            params = space.encode(cfg)
            assert params is not None and space.from_params(params) == cfg


def test_optuna_trials_sample_members_under_stable_names(tiny):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    names = {n for n, _ in tiny.searched()}
    seen = set()
    for _ in range(25):
        trial = study.ask()
        cfg = tiny.sample(trial)
        assert set(trial.params) == names
        assert tiny.contains(cfg)
        assert cfg.layer3.dim % cfg.layer3.heads == 0
        seen.add(cfg)
        study.tell(trial, 0.0)
    assert len(seen) > 20  # really sampling, not returning one architecture


def test_heads_that_do_not_divide_the_sampled_dim_are_repaired():
    space = parse_space(SMALL)
    cfg = space.from_params({"layer3.dim": 16, "layer3.heads": 3})
    assert (cfg.layer3.dim, cfg.layer3.heads) == (16, 4)  # 3 does not divide 16; 4 is the nearest that does


# ---------------------------------------------------------------------- size and cost range, by brute force
# small enough to enumerate (6,144 parameter combinations); it exercises what makes counting subtle:
# heads repaired for dim 16, ffn_ratio 1.04 colliding with 1 at d=12 only, last_ratio capped by last_max,
# and patches that do not tile the non-square deployment maps (bilinear resizes)
SMALL = """\
name: small
deployment: {resolution: 80x72, num_classes: 7}
proxy: {data: synthetic, resolution: 32}
arch:
  stem: [8, 16]
  expansion: [1, 2]
  last_ratio: [1, 1.5]
  last_max: 30
  layer1: {channels: 8, blocks: 1}
  layer2: {channels: 8, blocks: 1}
  layer3: {channels: 16, dim: [12, 16], depth: 1, ffn_ratio: [1, 1.04], heads: [3, 4], patch: [1x1, 2x2, 2x1], kernel: [1, 3]}
  layer4: {channels: 16, dim: 16, depth: 1, ffn_dim: [8, 16], heads: 4, patch: [1x2, 2x2], kernel: 3}
  layer5: {channels: [24, 32], dim: 16, depth: 1, heads: 4, patch: [2x2, 1x1], kernel: 3}
"""


@pytest.fixture(scope="module")
def small_members():
    space = parse_space(SMALL)
    names = [n for n, _ in space.searched()]
    combos = list(itertools.product(*[k.choices() for _, k in space.searched()]))
    assert len(combos) == 6144
    return space, {space.from_params(dict(zip(names, c))) for c in combos}


def test_size_counts_distinct_architectures(small_members):
    space, members = small_members
    assert space.size() == len(members)
    assert len(members) < 6144  # the collisions above are real, so this is not a plain product
    assert all(space.from_params(space.encode(cfg)) == cfg for cfg in members)


def test_cost_range_is_the_brute_force_min_and_max(small_members):
    space, members = small_members
    costs = [analytic_cost(cfg, space.resolution) for cfg in members]
    r = space.cost_range()
    assert (r.min_flops, r.max_flops) == (min(c.flops for c in costs), max(c.flops for c in costs))
    assert (r.min_params, r.max_params) == (min(c.params for c in costs), max(c.params for c in costs))


def test_tiny_cost_range_is_attained_and_bounds_its_members(tiny):
    r = tiny.cost_range()
    rng = random.Random(3)
    costs = [analytic_cost(tiny.from_params(tiny.random_params(rng)), tiny.resolution) for _ in range(1500)]
    assert all(r.min_flops <= c.flops <= r.max_flops and r.min_params <= c.params <= r.max_params for c in costs)
    # the extremes written out by hand (smallest / largest value of every knob), the patches tried:
    lo = dict(stem=8, expansion=1, last_channels=32, **{"layer1.channels": 8, "layer2.channels": 8,
              "layer2.blocks": 1, "layer3.channels": 16, "layer3.dim": 16, "layer3.depth": 1,
              "layer3.ffn_ratio": 1, "layer3.kernel": 1, "layer4.channels": 16, "layer4.dim": 16,
              "layer5.channels": 24, "layer5.dim": 16})
    hi = dict(stem=16, expansion=2, last_channels=64, **{"layer1.channels": 16, "layer2.channels": 16,
              "layer2.blocks": 2, "layer3.channels": 24, "layer3.dim": 32, "layer3.depth": 2,
              "layer3.ffn_ratio": 2, "layer3.kernel": 3, "layer4.channels": 32, "layer4.dim": 32,
              "layer5.channels": 32, "layer5.dim": 48})
    patches = list(itertools.product(["2x2", "1x1"], ["2x2", "1x1"], ["1x1", "2x1"]))

    def extreme(base, pick):
        cfgs = [tiny.from_params({**base, "layer3.patch": a, "layer4.patch": b, "layer5.patch": c})
                for a, b, c in patches]
        return pick(cfgs, key=lambda cfg: analytic_cost(cfg, tiny.resolution).flops)

    cheapest, largest = extreme(lo, min), extreme(hi, max)
    # fvcore itself on the two extreme networks
    assert fvcore_flops(build_model(cheapest), tiny.resolution) == r.min_flops
    assert fvcore_flops(build_model(largest), tiny.resolution) == r.max_flops
    assert sum(p.numel() for p in build_model(cheapest).parameters()) == r.min_params
    assert sum(p.numel() for p in build_model(largest).parameters()) == r.max_params


def test_mobile_cost_range_brackets_the_presets(mobile):
    r = mobile.cost_range()
    for n in PRESETS:
        c = analytic_cost(get_preset(n), 256)
        assert r.min_flops < c.flops < r.max_flops and r.min_params < c.params < r.max_params


# ---------------------------------------------------------------------- errors
# every line of this file is addressed by number below: keep the numbering when editing
BASE = """\
name: t
deployment:
  resolution: 64
  num_classes: 10
proxy:
  data: synthetic
  resolution: 32
  epochs: 1
search:
  trials: 2
  budget: 15M
arch:
  stem: [8, 16]
  expansion: [1, 2]
  last_channels: [32, 64]
  layer1: {channels: [8, 16], blocks: 1}
  layer2: {channels: [8, 16], blocks: [1, 2]}
  layer3:
    channels: [16, 24]
    dim: {low: 16, high: 32, step: 16}
    depth: [1, 2]
    ffn_ratio: [1, 2]
    heads: [1, 2, 4]
    patch: [2x2, 1x1]
    kernel: [1, 3]
  layer4: {channels: 16, dim: 16, depth: 1, heads: 2, patch: 2x2}
  layer5: {channels: 24, dim: 16, depth: 1, heads: 2, patch: [1x1, 2x1]}
"""


def edit(line: int, text: str | None) -> str:
    """BASE with its 1-based ``line`` replaced by ``text`` (None: deleted)."""
    lines = BASE.splitlines()
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    return "\n".join(lines) + "\n"


def error_of(text: str) -> str:
    with pytest.raises(SpaceError) as exc:
        parse_space(text, "bad.yaml")
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_the_base_of_the_error_cases_is_valid():
    space = parse_space(BASE, "bad.yaml")
    assert space.size() > 1 and space.cost_range().min_flops > 0


UNKNOWN_KEYS = [
    (1, "nmae: t", "nmae", "name"),
    (4, "  num_class: 10", "deployment.num_class", "num_classes"),
    (8, "  epoch: 1", "proxy.epoch", "epochs"),
    (10, "  trails: 2", "search.trails", "trials"),
    (13, "  stme: [8, 16]", "arch.stme", "stem"),
    (16, "  layer1: {chanels: [8, 16], blocks: 1}", "arch.layer1.chanels", "channels"),
    (21, "    dpth: [1, 2]", "arch.layer3.dpth", "depth"),
    (20, "    dim: {low: 16, hihg: 32, step: 16}", "arch.layer3.dim.hihg", "high"),
]


@pytest.mark.parametrize("line,text,path,hint", UNKNOWN_KEYS, ids=[u[2] for u in UNKNOWN_KEYS])
def test_unknown_keys_name_file_line_path_and_the_nearest_key(line, text, path, hint):
    msg = error_of(edit(line, text))
    assert msg.startswith(f"bad.yaml:{line}: {path}: unknown key")
    assert f"did you mean '{hint}'?" in msg


IMPOSSIBLE = [
    # every choice violates a rule
    (25, "    kernel: [2, 4]", "arch.layer3.kernel[0]", "odd"),
    (27, "  layer5: {channels: 24, dim: 16, depth: 1, heads: 2, patch: [4x4, 3x3]}", "arch.layer5.patch[0]",
     "does not fit the 2x2 map layer5 has at the deployment resolution 64x64"),
    (23, "    heads: [3, 5]", "arch.layer3.dim", "not divisible by any heads choice (3, 5)", 20),
    (20, "    dim: {low: 18, high: 34, step: 16}", "arch.layer3.heads", "heads=4 divides no dim choice", 23),
    # low > high, empty choices, an empty or ragged range
    (20, "    dim: {low: 32, high: 16, step: 16}", "arch.layer3.dim.low", "low > high (32 > 16)"),
    (13, "  stem: []", "arch.stem", "empty list of choices"),
    (20, "    dim: {low: 16, high: 40, step: 16}", "arch.layer3.dim.high", "multiple of step"),
    (20, "    dim: {low: 16, high: 32, step: 0}", "arch.layer3.dim.step", "step must be positive"),
    # a choice that can never be used, or two ways to say one thing
    (23, "    heads: [1, 2, 4, 64]", "arch.layer3.heads", "heads=64 divides no dim choice"),
    (22, "    ffn_dim: 32\n    ffn_ratio: [1, 2]", "arch.layer3.ffn_dim", "either ffn_ratio or ffn_dim"),
    (15, "  last_ratio: 2\n  last_channels: [32, 64]", "arch.last_ratio", "either last_channels or last_ratio"),
    # values outside a rule
    (21, "    depth: [0, 2]", "arch.layer3.depth[0]", "positive integer"),
    (14, "  expansion: [0.5, 2]", "arch.expansion[0]", ">= 1"),
    (24, "    patch: [0x2, 1x1]", "arch.layer3.patch[0]", "patch sides must be positive, got 0x2"),
    (13, "  stem: [8, 8]", "arch.stem[1]", "listed twice"),
    (4, "  num_classes: 0", "deployment.num_classes", "positive integer"),
    # the deployment resolution (line 3) makes layer4's patch (line 26) impossible
    (3, "  resolution: 16", "arch.layer4.patch", "does not fit the 1x1 map", 26),
    (1, "name: my space", "name", "letters, digits"),
    (8, "  epochs: 0", "proxy.epochs", "positive integer"),
    (6, "  data: nosuch", "proxy.data", "unknown dataset 'nosuch'"),
    (10, "  trials: 0", "search.trials", "positive integer"),
    (11, "  budget: -1G", "search.budget", "must be positive"),
    (11, "  tiers: fancy", "search.tiers", "unknown tier set 'fancy'"),
    (11, "  max_params: lots", "search.max_params", "cannot read 'lots' as params"),
    # a default budget no architecture of the space meets (the cheapest costs 951k FLOPs, 34.6k params)
    (11, "  budget: 100k", "search.budget", "below the cheapest architecture of space 't' (951k FLOPs = 950,720)"),
    (11, "  max_params: 1k", "search.max_params", "max_params 1k is below the smallest architecture of space 't' "
                                                  "(34.6k params = 34,650)"),
    (11, "  budget: 1M,8M,20M", "search.budget", "tier 20M cannot be reached"),
]


@pytest.mark.parametrize("case", IMPOSSIBLE, ids=[f"{i[2]}:{i[3][:20]}" for i in IMPOSSIBLE])
def test_impossible_spaces_are_rejected_with_file_line_and_path(case):
    line, text, path, what, *at = case  # at: the line reported when it is not the edited one
    msg = error_of(edit(line, text))
    where, rest = msg.split(": ", 1)
    assert where == f"bad.yaml:{at[0] if at else line}"
    assert rest.startswith(f"{path}: ") and what in rest


WRONG_TYPES = [
    (13, "  stem: abc", "arch.stem", "expected an integer, got 'abc'"),
    (13, "  stem: [8, x]", "arch.stem[1]", "expected an integer, got 'x'"),
    (13, "  stem: 8.5", "arch.stem", "expected an integer, got 8.5"),
    (13, "  stem: true", "arch.stem", "expected an integer, got True"),
    (13, "  stem: '16'", "arch.stem", "expected an integer, got '16'"),
    (13, "  stem:", "arch.stem", "a value is required"),
    (14, "  expansion: {low: 1, high: 2}", "arch.expansion", "ranges are for integer knobs"),
    (24, "    patch: [2x2, big]", "arch.layer3.patch[1]", "expected a patch like 2x2, got 'big'"),
    (26, "  layer4: [1, 2]", "arch.layer4", "valid dictionary"),
    (20, "    dim: {low: 16, high: 32.5}", "arch.layer3.dim.high", "expected an integer, got 32.5"),
    (3, "  resolution: big", "deployment.resolution", "expected N or HxW"),
    (4, "  num_classes: ten", "deployment.num_classes", "valid integer"),
    (7, "  resolution: abc", "proxy.resolution", "valid integer"),
    (10, "  trials: 2.5", "search.trials", "valid integer"),
    (11, "  budget: lots", "search.budget", "cannot read 'lots' as FLOPs"),
    (2, "deployment: 5", "deployment", "valid dictionary"),
]


@pytest.mark.parametrize("line,text,path,what", WRONG_TYPES, ids=[w[1].strip() for w in WRONG_TYPES])
def test_wrong_types_are_rejected_with_file_line_and_path(line, text, path, what):
    if line == 2:  # replace the whole deployment mapping
        text_ = edit(2, text).replace("  resolution: 64\n  num_classes: 10\n", "", 1)
    else:
        text_ = edit(line, text)
    msg = error_of(text_)
    assert msg.startswith(f"bad.yaml:{line}: {path}: "), msg
    assert what in msg


def test_a_missing_key_points_at_its_parent_line():
    assert error_of(edit(19, None)) == "bad.yaml:18: arch.layer3.channels: required key is missing"


def test_yaml_syntax_errors_and_duplicate_keys_carry_the_line():
    assert error_of(edit(13, "  stem: [8, 16")).startswith("bad.yaml:14: not valid YAML")
    assert error_of(edit(14, "  stem: [8]")) == "bad.yaml:14: arch.stem: duplicate key; each key may appear once"
    assert "must be a mapping" in error_of("- just\n- a list\n")
    assert "must be a mapping" in error_of("")


def test_yaml_numbers_are_decimal_only():
    # YAML 1.1 would read 0x2 as the integer 2 (a 2x2 patch) and 010 as octal 8
    assert "got '010'" in error_of(edit(13, "  stem: [010, 16]"))


def test_search_budget_may_be_a_plain_number():
    space = parse_space(edit(11, "  budget: 15000000").replace("  trials: 2\n", "  trials: 2\n  max_params: 200000\n"))
    assert space.spec.search.budget == "15000000" and space.spec.search.max_params == "200000"


def test_a_file_that_cannot_be_read(tmp_path):
    p = tmp_path / "space.yaml"
    p.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SpaceError, match=r"space.yaml': not UTF-8 text"):
        load_space(p)
    with pytest.raises(SpaceError, match="is a directory"):
        load_space(tmp_path)
