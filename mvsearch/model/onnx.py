"""ONNX export of a MobileViT, and the onnxruntime parity check.

Which exporter: in torch 2.13 both the TorchScript exporter (``dynamo=False``) and the dynamo
(``torch.export``) exporter turn the MobileViT unfold/fold into plain Reshape/Transpose, the
bilinear resize (when a map is not a multiple of the patch) into Resize, and SDPA into
MatMul/Softmax, and both match torch within ~1e-7 on CPU. The dynamo exporter implements opset 18
and up only: asked for 17 it fails to down-convert (``Resize``/``Reduce*`` axes) and silently keeps
18, and it is ~15x slower here. So opsets 17..20 use the TorchScript exporter (the default, opset
17) and 21..23 the dynamo one; ``exporter=`` forces either.

Height and width are fixed at the export resolution (the unfold/fold is specialised to the map
sizes, as the FLOP count is); the batch dimension is dynamic.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any
import torch
from torch import nn

from mvsearch.arch.geometry import parse_resolution
from mvsearch.core.errors import ExportError, MvsearchError
from mvsearch.core.runtime import eval_mode


MIN_OPSET, TORCHSCRIPT_MAX_OPSET, MAX_OPSET = 17, 20, 23


ATOL = 1e-4  # onnxruntime vs torch, max |difference| of the logits


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ExportError(f"ONNX export needs the {module} package: pip install onnx onnxruntime onnxscript") from None


def example_input(model: nn.Module, batch: int, resolution: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A seeded random image batch on the model's device and dtype."""
    p = next(model.parameters())
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *resolution, generator=g).to(device=p.device, dtype=p.dtype)


def export_onnx(model: nn.Module, path: str | Path, resolution: Any = 256, opset: int = 17,
                *, exporter: str = "auto") -> Path:
    """Write ``model`` as ONNX (input ``input`` [batch, 3, H, W] -> ``logits``), batch dynamic.

    H and W are fixed at ``resolution`` (the unfold/fold is specialised to the map sizes). The file
    is checked with ``onnx.checker`` (full check) before returning. ``exporter``: ``torchscript``,
    ``dynamo``, or ``auto`` (TorchScript up to opset 20, dynamo above).
    """
    onnx = _need("onnx")
    res = parse_resolution(resolution)
    if type(opset) is not int or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset: must be an integer in {MIN_OPSET}..{MAX_OPSET}, got {opset!r}")
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise ExportError(f"exporter: must be auto, torchscript or dynamo, got {exporter!r}")
    if exporter == "auto":
        exporter = "torchscript" if opset <= TORCHSCRIPT_MAX_OPSET else "dynamo"
    if exporter == "torchscript" and opset > TORCHSCRIPT_MAX_OPSET:
        raise ExportError(f"the TorchScript exporter stops at opset {TORCHSCRIPT_MAX_OPSET}; use exporter='dynamo'")
    if exporter == "dynamo" and opset < 18:
        raise ExportError("the dynamo exporter starts at opset 18; use opset >= 18 or exporter='torchscript'")
    path = Path(path)
    x = example_input(model, 2, res)  # batch 2: an example batch of 1 would be specialised to 1
    names = {"input_names": ["input"], "output_names": ["logits"], "opset_version": opset}
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    try:
        with eval_mode(model), torch.no_grad(), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # TracerWarnings on the static H, W; deprecation notes
            onnx_log.setLevel(logging.ERROR)
            if exporter == "torchscript":
                torch.onnx.export(model, (x,), str(path), dynamo=False, do_constant_folding=True,
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **names)
            else:
                batch = torch.export.Dim("batch", min=1, max=65536)
                torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False,
                                  dynamic_shapes=({0: batch},), **names)
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
    except MvsearchError:
        raise
    except Exception as exc:  # exporter/checker internals: one line, the project's own type
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"ONNX export ({exporter}, opset {opset}) failed: {type(exc).__name__}: {msg}") from None
    finally:
        onnx_log.setLevel(level)
    got = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if got < MIN_OPSET:
        raise ExportError(f"the ONNX file has opset {got}, below {MIN_OPSET}")
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if not dim0.dim_param:
        raise ExportError("the ONNX file's batch dimension is not dynamic")
    return path


def onnx_max_diff(model: nn.Module, path: str | Path, resolution: Any = 256,
                  batches: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Largest |onnxruntime - torch| over random inputs of several batch sizes (CPU provider)."""
    import numpy as np

    ort = _need("onnxruntime")

    res = parse_resolution(resolution)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    with eval_mode(model), torch.no_grad():
        for i, b in enumerate(batches):
            x = example_input(model, b, res, seed + i)
            ref = model(x).float().cpu().numpy()
            out = sess.run(None, {sess.get_inputs()[0].name: x.float().cpu().numpy()})[0]
            if out.shape != ref.shape:
                raise ExportError(f"onnxruntime returned shape {out.shape} for batch {b}, torch {ref.shape}")
            worst = max(worst, float(np.abs(out - ref).max()))
    return worst
