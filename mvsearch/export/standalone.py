"""Generate a standalone, torch-only Python module for one MobileViT architecture.

Single source: the generated module's blocks are the source of :mod:`mvsearch.model` itself, read
with :mod:`ast`/:mod:`inspect` at export time (every top-level class, function and constant except
``build_model`` and ``__all__``), and the stage dataclasses are those of :mod:`mvsearch.arch`. So a
change to the model changes every later export, and the parity tests (same state_dict keys, same
outputs, same params and fvcore FLOPs) fail loudly if the copy ever stops matching.

Safety: the only values written into code are validated numbers (``repr`` of exact ``int``,
finite ``float``, ``bool``, tuples of them) and strings as ``repr`` literals inside the
``PROVENANCE`` dict. Strings read from a study also appear in the docstring, reduced to a safe
character set (:func:`doc_text`). The finished source is parsed and its top-level statements and
imports checked against an allow-list before anyone writes it.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import re
import textwrap
from typing import Any

from mvsearch.model import network as _model
from mvsearch.arch.config import ArchConfig, MV2Stage, ViTStage
from mvsearch.core.errors import ExportError


#: top-level modules a generated file may import (torch plus the standard library)
ALLOWED_IMPORTS = frozenset({"__future__", "math", "dataclasses", "pathlib", "typing", "torch"})


#: ArchConfig methods the blocks call on their config (copied into the stand-in ArchConfig)
_CONFIG_METHODS = ("vit_stages",)


_SKIP = {"build_model", "__all__"}  # model.py names the generated module replaces or drops


_SAFE_CHARS = re.compile(r"[^A-Za-z0-9 _.,:;/+=()\[\]@#%<>*-]")


def literal(v: Any) -> str:
    """Python source for a validated value: exact int/bool/finite float/None/str, tuples, dicts."""
    if v is None or type(v) is bool or type(v) is int:
        return repr(v)
    if type(v) is float:
        if not math.isfinite(v):
            raise ExportError(f"cannot write the non-finite number {v!r} into a model file")
        return repr(v)
    if type(v) is str:
        return repr(v)  # always a valid, inert string literal, whatever the string holds
    if isinstance(v, (tuple, list)):
        inner = ", ".join(literal(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{literal(str(k))}: {literal(x)}" for k, x in v.items()) + "}"
    raise ExportError(f"cannot write a {type(v).__name__} into a model file")


def doc_text(v: Any, limit: int = 80) -> str:
    """A string from a study made safe for a docstring or a comment: one line, no quotes/escapes."""
    s = _SAFE_CHARS.sub("?", str(v))
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _dict_block(d: dict[str, Any]) -> str:
    """A dict literal, one key per line."""
    return "{\n" + "".join(f"    {literal(str(k))}: {literal(v)},\n" for k, v in d.items()) + "}"


def _stage_literal(st: MV2Stage | ViTStage) -> str:
    fields = ", ".join(f"{f.name}={literal(getattr(st, f.name))}" for f in dataclasses.fields(st))
    return f"{type(st).__name__}({fields})"


def arch_literal(cfg: ArchConfig) -> str:
    """``ARCH = ArchConfig(...)`` with every field written out (cfg was validated by ArchConfig)."""
    lines = ["ARCH = ArchConfig("]
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        text = _stage_literal(v) if isinstance(v, (MV2Stage, ViTStage)) else literal(v)
        lines.append(f"    {f.name}={text},")
    lines.append(")")
    return "\n".join(lines)


def _segments(module) -> tuple[list[str], list[str]]:
    """(import lines, top-level definitions) of a module's source, decorators and comments kept."""
    src = inspect.getsource(module)
    lines = src.splitlines()
    imports, defs = [], []
    for node in ast.parse(src).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if mod.split(".")[0] != "mvsearch" and mod != "__future__":
                imports.append(ast.get_source_segment(src, node))
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        name = getattr(node, "name", None)
        if name is None and isinstance(node, ast.Assign):
            name = getattr(node.targets[0], "id", None)
        if name in _SKIP:
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        defs.append("\n".join(lines[start - 1:node.end_lineno]))
    return imports, defs


def _arch_config_stub() -> str:
    """A frozen ArchConfig with mvsearch's fields (and their comments) and the methods blocks use."""
    src = inspect.getsource(ArchConfig)
    lines = src.splitlines()
    cls = ast.parse(src).body[0]
    out = [
        "@dataclass(frozen=True)",
        "class ArchConfig:",
        '    """One MobileViT network (the fields of mvsearch.arch.config.ArchConfig, validated at export)."""',
        "",
    ]
    for node in cls.body:
        if isinstance(node, ast.AnnAssign):
            out.extend(lines[node.lineno - 1:node.end_lineno])
    for name in _CONFIG_METHODS:
        out.append("")
        out.append(textwrap.indent(textwrap.dedent(inspect.getsource(getattr(ArchConfig, name))), "    "))
    return "\n".join(out)


_BUILD = '''\
def build_model(pretrained: bool = {pretrained}, weights: str | Path | None = None) -> MobileViT:
    """The exported MobileViT{with_weights}.

    pretrained: load the weights saved next to this file ({weights_name}).
    weights: load this state_dict file instead (torch.load with weights_only=True).
    """
    model = MobileViT(ARCH)
    if weights is None and pretrained:
        if WEIGHTS is None:
            raise ValueError("this model was exported without weights; pass weights=PATH or pretrained=False")
        weights = Path(__file__).with_name(WEIGHTS)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model


if __name__ == "__main__":
    net = build_model().eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, *RESOLUTION))
    n = sum(p.numel() for p in net.parameters())
    print(f"{{type(net).__name__}}: {{n:,}} params, input 1x3x{{RESOLUTION[0]}}x{{RESOLUTION[1]}} -> {{tuple(out.shape)}}")
'''


def _docstring(prov: dict[str, Any], stem: str, weights_name: str | None) -> str:
    def num(v: Any) -> str:
        return f"{v:,}" if type(v) is int else "unknown"

    h, w = prov["resolution"]
    acc = prov.get("accuracy")
    acc_text = f"{acc:.4f}" if type(acc) is float and math.isfinite(acc) else "none"
    if prov.get("study") is not None:
        title = f"MobileViT from trial {prov['trial']} of study {doc_text(prov['study'], 60)}"
    else:
        title = f"MobileViT preset {doc_text(prov.get('preset'))}"
    rows = [
        ("study", doc_text(prov.get("study")) if prov.get("study") is not None else "none (a paper preset)"),
        ("trial", f"{prov['trial']} ({doc_text(prov.get('state'))})" if prov.get("trial") is not None else "none"),
        ("proxy accuracy", f"{acc_text} (validation accuracy of the proxy training)"),
        ("params", num(prov.get("params"))),
        ("FLOPs", f"{num(prov.get('flops'))} (fvcore, 1 multiply-add = 1 FLOP, at {h}x{w})"),
        ("classes", str(prov["num_classes"])),
    ]
    for key in ("tier", "preset", "data"):
        if prov.get(key) is not None:
            rows.append((key, doc_text(prov[key])))
    if prov.get("baseline"):
        rows.append(("baseline", "yes (a paper preset trained under the same proxy)"))
    rows.append(("mvsearch", f"{doc_text(prov.get('mvsearch_version') or 'unknown')} (search), "
                             f"{doc_text(prov['exported_by'])} (export)"))
    rows.append(("weights", f"{weights_name} (a state_dict, loaded by build_model())" if weights_name
                 else "none: build_model() initialises randomly"))
    width = max(len(k) for k, _ in rows) + 2
    body = "\n".join(f"{k + ':':<{width}}{v}" for k, v in rows)
    return (
        f'"""{title}, exported by mvsearch.\n\n{body}\n\n'
        f"Usage:\n    from {stem} import build_model\n    model = build_model().eval()\n\n"
        "Depends only on torch. The blocks are mvsearch.model's own source (MobileViT, Mehta &\n"
        "Rastegari, arXiv 2110.02178, Sec. 3.1), copied at export time with the same module names,\n"
        "so state_dicts move between this file and mvsearch unchanged.\n"
        '"""'
    )


def _section(title: str) -> str:
    return f"# {'-' * (70 - len(title))} {title}\n"


def generate(cfg: ArchConfig, provenance: dict[str, Any], stem: str, weights_name: str | None) -> str:
    """The full source of the standalone module (checked by :func:`check_source`)."""
    if not stem.isidentifier():
        raise ExportError(f"module name {stem!r} is not a Python identifier; pass --name NAME")
    if weights_name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", weights_name):
        raise ExportError(f"weights file name {weights_name!r} has unsafe characters")
    model_imports, model_defs = _segments(_model)
    third_party = [i for i in model_imports if i.split()[1].split(".")[0] == "torch"]
    stdlib = sorted({"from dataclasses import dataclass", "from pathlib import Path"}
                    | {i for i in model_imports if i not in third_party}, key=lambda i: i.split()[1])
    header = "\n\n".join([
        _docstring(provenance, stem, weights_name),
        "from __future__ import annotations",
        "\n".join(stdlib),
        "\n".join(third_party),
    ])
    build = _BUILD.format(
        pretrained=literal(weights_name is not None),
        with_weights=", with the proxy weights saved at export" if weights_name else "",
        weights_name=weights_name or "none were exported",
    )
    parts = [
        header,
        "#: where this model came from (strings exactly as recorded in the study)\n"
        f"PROVENANCE = {_dict_block(provenance)}\n"
        f"RESOLUTION = {literal(tuple(provenance['resolution']))}  # input (H, W) the FLOPs are counted at\n"
        f"WEIGHTS = {literal(weights_name)}  # state_dict file next to this module, or None",
        _section("architecture: mvsearch.arch's dataclasses") + inspect.getsource(MV2Stage),
        inspect.getsource(ViTStage),
        _arch_config_stub(),
        arch_literal(cfg),
        _section("blocks: mvsearch.model's source") + model_defs[0],
        *model_defs[1:],
        _section("the model") + build,
    ]
    source = "\n\n\n".join(p.strip("\n") for p in parts) + "\n"
    check_source(source)
    return source


def check_source(source: str) -> None:
    """Refuse a generated module whose top level holds anything but definitions and allowed imports."""
    try:
        tree = ast.parse(source)
        compile(tree, "<export>", "exec")
    except SyntaxError as exc:  # a bug in the generator, never user input
        raise ExportError(f"generated module does not compile: {exc}") from None
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Expr) and i == 0 and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            bad = [m for m in mods if m.split(".")[0] not in ALLOWED_IMPORTS]
            if bad:
                raise ExportError(
                    f"mvsearch.model imports {bad[0]}, which a torch-only module cannot; "
                    f"allowed: {', '.join(sorted(ALLOWED_IMPORTS))}"
                )
            continue
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.Assign, ast.AnnAssign)):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'":
            continue
        raise ExportError(f"generated module has an unexpected top-level {type(node).__name__} statement")
