"""Take a found architecture out of the tool: a standalone .py, an ArchConfig YAML, an ONNX graph.

What gets exported is a :class:`Target`: a validated :class:`~mvsearch.arch.config.ArchConfig`, the
deployment resolution, provenance, and optionally a state_dict. :func:`from_trial` makes one from
a study's trial (chosen by number, ``best``, or rank on the accuracy-vs-FLOPs front of
:func:`mvsearch.search.front.front`, 1 = most accurate), :func:`from_preset` from a paper
preset; :func:`write` writes the files. Writing is all or nothing: every file goes to a hidden
temporary file beside its target (:func:`mvsearch.core.atomic.atomic_path`), and they are renamed
into place together only when all of them are done and checked (the .py is executed and compared
with mvsearch's model, the .onnx with onnxruntime); if anything fails before that, none is.

ONNX files are written by :func:`mvsearch.model.onnx.export_onnx`.
"""
from __future__ import annotations

import contextlib
import json
import keyword
import math
import os
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
import torch
from torch import nn

from mvsearch import __version__
from mvsearch.search import front as pareto
from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import check_resolution, parse_resolution
from mvsearch.arch.presets import get_preset
from mvsearch.core.atomic import atomic_path, check_target
from mvsearch.core.errors import ArchError, ExportError, MvsearchError, first_line
from mvsearch.export.standalone import ALLOWED_IMPORTS, generate
from mvsearch.core.limits import MAX_NAME
from mvsearch.core.text import quote, shorten
from mvsearch.cost.bounds import check_cost
from mvsearch.model.network import build_model
from mvsearch.core.runtime import eval_mode
from mvsearch.model.onnx import ATOL, MAX_OPSET, MIN_OPSET, example_input, export_onnx, onnx_max_diff
from mvsearch.search.record import TrialRecord
from mvsearch.search.validate import check_by, records_by


FORMATS = ("py", "yaml", "onnx")


def select(search, *, trial: str | None = None, best: bool = False,
           pareto_rank: int | None = None, by: str = "proxy") -> TrialRecord:
    """The trial named by exactly one of ``trial`` (its ref: ``1.5G/3``, or ``3`` if unique), ``best``
    or ``pareto_rank``, in a :class:`~mvsearch.search.storage.SearchStudies`; ``best`` and
    ``pareto_rank`` rank by ``by``: the proxy accuracy, or the validated one (``mvsearch validate``)."""
    name = search.name
    check_by(by)
    if trial is not None:
        try:
            return search.find(str(trial))
        except MvsearchError as exc:
            raise ExportError(str(exc)) from None
    try:
        recs = records_by(search, by, include_rejected=True)
    except MvsearchError as exc:
        raise ExportError(str(exc)) from None
    complete = [r for r in recs if r.state == "COMPLETE" and not r.over_budget and r.accuracy is not None]
    if not complete:
        raise ExportError(f"study {name!r} has no COMPLETE trial yet; let `mvsearch run` finish one, "
                          f"or pick a trial with --trial N --allow-incomplete")
    if best:  # ties: fewer FLOPs, then the earlier trial
        return min(complete, key=lambda r: (-r.accuracy, r.flops if r.flops is not None else math.inf, r.study,
                                            r.number))
    front = pareto.front(complete, "flops")  # most accurate first; ties by FLOPs, then trial number
    if pareto_rank is None or not 1 <= pareto_rank <= len(front):
        raise ExportError(f"--pareto-rank: study {name!r} has {len(front)} Pareto-optimal trials "
                          f"(1 = most accurate, {len(front)} = cheapest); got {pareto_rank}")
    return front[pareto_rank - 1]


def _describe(r: TrialRecord) -> str:
    if r.over_budget:
        return "a budget rejection (over budget, never trained)"
    if r.state == "PRUNED":
        last = max(r.intermediate) if r.intermediate else None
        at = f" after epoch {last} at accuracy {r.intermediate[last]:.4f}" if last is not None else ""
        return f"PRUNED (stopped{at})"
    if r.state == "FAIL":
        return "FAIL (its training did not finish)"
    return f"{r.state} (not finished)" if r.state != "COMPLETE" else "COMPLETE"


@dataclass
class Target:
    """One architecture ready to write."""

    cfg: ArchConfig  # the exported architecture (classifier fixed by --num-classes or the weights)
    resolution: tuple[int, int]  # deployment resolution: FLOPs are counted and ONNX fixed there
    stem: str  # file name without extension; also the .py's module name
    provenance: dict[str, Any]  # study, trial, state, accuracy, recorded params/FLOPs, versions...
    state_dict: dict[str, torch.Tensor] | None = None  # weights to ship, shapes checked against cfg
    notes: list[str] = field(default_factory=list)  # things the user should know (printed)


def _plain(v: Any) -> Any:
    """A value from the database reduced to None/bool/int/finite float/str (else its str())."""
    if v is None or type(v) in (bool, int, str):
        return v
    if type(v) is float:
        return v if math.isfinite(v) else None
    return str(v)


def _slug(text: str) -> str:
    s = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text.lower()).strip("_")
    s = "_".join(p for p in s.split("_") if p)[:40] or "study"
    return s if not s[0].isdigit() else f"m_{s}"


def _weights_path(raw: Any, storage: str | None) -> Path | None:
    """The recorded weights path; relative paths are tried from the cwd, then the database's folder."""
    if not isinstance(raw, str) or not raw:
        return None
    p = Path(raw)
    if p.is_absolute() or p.exists():
        return p
    if storage and storage.startswith("sqlite:///"):
        beside = Path(storage[len("sqlite:///"):]).parent / p
        if beside.exists():
            return beside
    return p


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ExportError(f"the saved weights {quote(path)} are missing; restore the file or drop --weights") from None
    except Exception as exc:
        raise ExportError(f"cannot read the saved weights {quote(path)}: {first_line(exc)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f"{quote(path)} is not a state_dict (a dict of tensors); cannot use it as weights")
    return state


def _classifier_key(cfg: ArchConfig) -> str:
    model = build_model(cfg)
    head = model.classifier[-1].weight
    return next(n for n, p in model.named_parameters() if p is head)


def from_preset(name: str, num_classes: int | None = None, resolution: Any = 256,
                stem: str | None = None) -> Target:
    """A Target for a paper preset (no study, no weights)."""
    cfg = get_preset(name, num_classes)
    prov = {"study": None, "trial": None, "state": None, "accuracy": None, "preset": name,
            "baseline": False, "mvsearch_version": __version__}
    return Target(cfg, parse_resolution(resolution), stem or name, prov)


def from_trial(search, rec: TrialRecord, *, storage: str | None = None, weights: bool = False,
               num_classes: int | None = None, resolution: Any = None, allow_incomplete: bool = False,
               stem: str | None = None) -> Target:
    """A Target from a trial of ``search``: refuses unfinished trials unless ``allow_incomplete``."""
    name = search.name
    notes: list[str] = []
    if rec.state != "COMPLETE" or rec.over_budget:
        what = _describe(rec)
        if not allow_incomplete:
            raise ExportError(f"trial {rec.ref} of study {name!r} is {what}; export a COMPLETE trial "
                              f"(see `mvsearch trials`) or pass --allow-incomplete")
        notes.append(f"trial {rec.ref} is {what}: exporting its architecture anyway")
    if rec.arch is None:
        raise ExportError(f"trial {rec.ref} of study {name!r} has no valid recorded architecture "
                          f"(user attribute 'arch'); it cannot be exported")
    cfg, state = rec.arch, None
    if weights:
        path = _weights_path(rec.weights, storage)
        if path is None:
            raise ExportError(f"trial {rec.ref} saved no weights; rerun the search with "
                              f"`mvsearch run --save-weights`, or drop --weights")
        state = _load_weights(path)
        key = _classifier_key(cfg)
        if key not in state or state[key].dim() != 2:
            raise ExportError(f"the saved weights {quote(path)} have no classifier {key!r}; they do not fit "
                              f"trial {rec.ref}'s architecture")
        k = int(state[key].shape[0])  # the rule: a weights export keeps the weights' classifier
        if num_classes is not None and num_classes != k:
            raise ExportError(f"--num-classes {num_classes}: the saved weights have a {k}-class classifier; "
                              f"drop --num-classes (the export keeps the weights' {k} classes) or drop --weights")
        if k != cfg.num_classes:
            notes.append(f"the classifier has {k} outputs to match the saved proxy weights "
                         f"(the trial's deployed model has {cfg.num_classes})")
        cfg = cfg.with_num_classes(k)
        try:
            build_model(cfg).load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise ExportError(f"the saved weights {quote(path)} do not fit trial {rec.ref}'s architecture: "
                              f"{' '.join(first[:2])}") from None
        if rec.proxy_arch is not None:
            stride = rec.proxy_arch.stem_stride
            if stride != cfg.stem_stride:
                notes.append(f"the weights were trained with stem_stride={stride} at the proxy resolution; "
                             f"the export uses the deployed stem_stride={cfg.stem_stride} (same shapes, "
                             f"other receptive field: fine-tune before trusting its accuracy)")
    elif num_classes is not None:
        cfg = cfg.with_num_classes(num_classes)
    if resolution is None:
        try:
            resolution = parse_resolution(rec.resolution if rec.resolution is not None else 256)
        except ArchError:
            resolution = (256, 256)
            notes.append("the trial records no valid resolution; using 256x256")
    prov = {
        "study": name, "trial": rec.ref, "state": rec.state, "accuracy": rec.accuracy,
        "recorded_params": rec.params, "recorded_flops": rec.flops,
        "tier": rec.tier, "preset": rec.preset, "data": rec.data, "seed": rec.seed,
        "mvsearch_version": rec.mvsearch_version,
        "baseline": rec.baseline,
    }
    prov = {k: _plain(v) for k, v in prov.items()}
    return Target(cfg, parse_resolution(resolution), stem or f"{_slug(name)}_trial{re.sub(r'[^a-z0-9]+', '_', rec.ref.lower())}",
                  prov, state, notes)


@dataclass
class ExportResult:
    files: list[tuple[str, Path]]  # (format, final path) in the order written
    params: int
    flops: int
    resolution: tuple[int, int]
    onnx_diff: float | None = None  # max |onnxruntime - torch| when an .onnx was written
    notes: list[str] = field(default_factory=list)


#: module names a generated file may not take: what it (or torch) imports, and mvsearch itself
RESERVED = frozenset(ALLOWED_IMPORTS | {"torch", "mvsearch", "numpy", "onnx", "onnxruntime", "typing_extensions",
                                        "sympy", "networkx", "jinja2", "filelock", "fsspec"})


def check_stem(stem: str) -> str:
    """``stem`` if it can name the .py (an identifier, not a keyword, a standard-library module or a
    module the file imports: ``--name torch`` would shadow torch for every import from that folder)."""
    if not isinstance(stem, str) or not stem.isidentifier() or keyword.iskeyword(stem) or len(stem) > MAX_NAME:
        raise ExportError(f"--name: {shorten(stem)} must be a Python identifier of at most {MAX_NAME} characters "
                          f"(letters, digits, _; not a keyword), since the .py is imported by that name")
    if stem.startswith("__"):
        raise ExportError(f"--name: {stem!r}: names starting with '__' belong to Python (a {stem}.py could be "
                          f"imported in place of its own); choose another name")
    if stem in RESERVED or stem in sys.stdlib_module_names or stem in sys.builtin_module_names:
        raise ExportError(f"--name: {stem!r} is the name of a module the exported file (or Python) imports; "
                          f"a {stem}.py would shadow it: choose another name, e.g. {stem}_model")
    return stem


def check_opset(opset: Any) -> int:
    if type(opset) is not int or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset: must be an integer in {MIN_OPSET}..{MAX_OPSET}, got {shorten(opset)}")
    return opset


def parse_formats(text: str) -> tuple[str, ...]:
    """``py``, ``yaml,onnx``, ``all`` -> formats in a fixed order."""
    asked = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    for t in asked:
        if t not in FORMATS + ("all",):
            raise ExportError(f"--format: unknown format {shorten(t)}; known: py, yaml, onnx, all (comma-separated)")
    if not asked:
        raise ExportError("--format: name at least one of py, yaml, onnx, all")
    return FORMATS if "all" in asked else tuple(f for f in FORMATS if f in asked)


def _prepare_dir(out: Path) -> list[Path]:
    """Create ``out`` (and missing parents); return what was created, newest first."""
    missing, p = [], out
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise ExportError(f"cannot write to {quote(out)}: {quote(p)} is not a directory; pass another -o DIR")
    created = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.insert(0, d)
    except OSError as exc:
        _remove_dirs(created)
        raise ExportError(f"cannot create {quote(out)} ({exc.strerror}); pass a writable -o DIR") from None
    if not os.access(out, os.W_OK | os.X_OK):
        _remove_dirs(created)
        raise ExportError(f"cannot write to {quote(out)} (permission denied); pass a writable -o DIR")
    return created


def _remove_dirs(dirs: list[Path]) -> None:
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


def _exec_module(source: str, stem: str) -> types.ModuleType:
    """Execute the generated source as a throwaway module (dataclasses need it in sys.modules)."""
    mod = types.ModuleType(f"_mvsearch_export_{stem}")
    sys.modules[mod.__name__] = mod
    try:
        exec(compile(source, f"<{stem}.py>", "exec"), mod.__dict__)
    finally:
        del sys.modules[mod.__name__]
    return mod


def _check_standalone(source: str, stem: str, model: nn.Module, res: tuple[int, int]) -> None:
    """The generated module builds the same network: same state_dict keys and shapes, same outputs."""
    mod = _exec_module(source, stem)
    twin = mod.MobileViT(mod.ARCH)
    try:
        twin.load_state_dict(model.state_dict())
    except RuntimeError as exc:
        raise ExportError(f"the generated module's model differs from mvsearch's (a bug): "
                          f"{str(exc).splitlines()[0]}") from None
    x = example_input(model, 1, res)
    with eval_mode(model), eval_mode(twin), torch.no_grad():
        diff = (twin.to(x.device)(x) - model(x)).abs().max().item()
    if not diff <= 1e-5:
        raise ExportError(f"the generated module's outputs differ from mvsearch's by {diff:.2e} (a bug)")


def _stamp_onnx(path: Path, prov: dict[str, Any]) -> None:
    """Record the provenance in the ONNX file's metadata (key ``mvsearch.provenance``, JSON)."""
    import onnx

    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "mvsearch.provenance", json.dumps(prov)
    proto.producer_name, proto.producer_version = "mvsearch", __version__
    onnx.save(proto, str(path))


def write(target: Target, out_dir: str | Path, formats: str | tuple[str, ...] = ("py",), *,
          force: bool = False, opset: int = 17) -> ExportResult:
    """Write the target's files into ``out_dir``, all or nothing."""
    from mvsearch.cost.traced import fvcore_flops

    fmts = parse_formats(",".join(formats) if isinstance(formats, (tuple, list)) else formats)
    cfg, res, stem = target.cfg, check_resolution(target.cfg, target.resolution), target.stem
    check_stem(stem)
    check_opset(opset)
    check_cost(cfg, res, what="the exported network")
    out = Path(out_dir)
    kinds = list(fmts) + (["weights"] if target.state_dict is not None else [])
    ext = {"py": "py", "yaml": "yaml", "onnx": "onnx", "weights": "pt"}
    dest = {k: out / f"{stem}.{ext[k]}" for k in kinds}
    for p in dest.values():
        if p.is_dir():
            raise ExportError(f"{quote(p)} is a directory; remove it or choose another -o/--name")
        if p.exists() or p.is_symlink():
            if not force:
                raise ExportError(f"{quote(p)} already exists; pass --force to overwrite it, or choose another -o/--name")
            check_target(p)  # a FIFO or device node is never replaced, even with --force
    created = _prepare_dir(out)
    done = False
    try:
        model = build_model(cfg)
        if target.state_dict is not None:
            model.load_state_dict(target.state_dict)
        model.eval()
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        flops = fvcore_flops(model, res)
        prov = {**target.provenance, "params": params, "flops": flops, "resolution": res,
                "num_classes": cfg.num_classes, "exported_by": __version__}
        result = ExportResult([], params, flops, res, notes=list(target.notes))
        rp, rf = prov.get("recorded_params"), prov.get("recorded_flops")
        if prov.get("trial") is not None and (rp, rf) != (params, flops):
            result.notes.append(f"the exported model has {params:,} params and {flops:,} FLOPs; "
                                f"the trial recorded {rp if rp is None else f'{rp:,}'} and "
                                f"{rf if rf is None else f'{rf:,}'}")
        with contextlib.ExitStack() as commit:
            # one hidden temporary file per kind beside its target; they are renamed into place
            # together when this block ends cleanly (in ``kinds`` order: the stack unwinds in
            # reverse), and all removed, none renamed, when anything in it fails
            tmp = {k: commit.enter_context(atomic_path(dest[k])) for k in reversed(kinds)}
            if "weights" in dest:
                torch.save(model.state_dict(), tmp["weights"])
            if "py" in dest:
                source = generate(cfg, prov, stem, dest["weights"].name if "weights" in dest else None)
                _check_standalone(source, stem, model, res)
                tmp["py"].write_text(source, encoding="utf-8")
            if "yaml" in dest:
                header = (f"# {stem}: MobileViT architecture exported by mvsearch {__version__} "
                          f"({params:,} params, {flops:,} FLOPs at {res[0]}x{res[1]}).\n"
                          f"# Use it with `mvsearch count --config FILE` or `mvsearch train --config FILE`.\n")
                tmp["yaml"].write_text(header + cfg.to_yaml(), encoding="utf-8")
                if ArchConfig.from_yaml(tmp["yaml"].read_text(encoding="utf-8")) != cfg:
                    raise ExportError("the YAML does not read back to the same architecture (a bug)")
            if "onnx" in dest:
                path = export_onnx(model, tmp["onnx"], res, opset)
                result.onnx_diff = onnx_max_diff(model, path, res)
                if not result.onnx_diff <= ATOL:
                    raise ExportError(f"onnxruntime's outputs differ from torch's by {result.onnx_diff:.2e} "
                                      f"(> {ATOL}); the ONNX file is not written")
                _stamp_onnx(path, prov)
        result.files.extend((kind, dest[kind]) for kind in kinds)
        done = True
        return result
    except OSError as exc:
        raise ExportError(f"cannot write to {quote(out)} ({exc.strerror or exc}); pass a writable -o DIR") from None
    finally:
        if not done:
            _remove_dirs(created)  # only what this call created, and only if still empty
