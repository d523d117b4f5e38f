"""Batch-1 inference latency of one model on one device, related to mobilevit_xxs.

A measurement runs one model at batch 1 and the deployment resolution on one *device*: a backend
(``torch``: eager, eval mode, inference mode; ``onnxruntime``: the CPU execution provider, or CUDA's
where present), a fixed intra-op thread count, and the accelerator (``cpu`` or the CUDA device).
After ``warmup`` untimed runs it times ``repeats`` runs and keeps the median, quartiles (IQR) and
count, never a single sample. Absolute times drift on a shared machine, so every model is also
related to mobilevit_xxs measured by the same meter within the last minute (``ratio_xxs``).

One process-wide setting makes CPU timings repeatable: glibc's malloc raises its mmap threshold
the first time a large block is freed, so until then every big activation is mmap'ed and
page-faulted afresh, and the first models a process measures run up to a third slower than the
same models later (bench/bench_latency.py shows it).
:func:`~mvsearch.core.allocator.steady_allocator` fixes the thresholds once (``mallopt``), as a
long-running process would end up anyway, before anything is timed.

Where the measurements are kept (the study's own database, keyed by study, trial or preset, and
device): :mod:`mvsearch.latency.store`.
"""
from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
import numpy as np
import torch

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.presets import get_preset
from mvsearch.arch.geometry import parse_resolution
from mvsearch.core.allocator import steady_allocator
from mvsearch.core.errors import MvsearchError
from mvsearch.core.limits import MAX_REPEATS, MAX_THREADS, MAX_WARMUP, check_int
from mvsearch.core.text import shorten
from mvsearch.core.runtime import cpu_threads
from mvsearch.cost.bounds import check_cost
from mvsearch.model.network import build_model
from mvsearch.model.onnx import export_onnx


BACKENDS = ("torch", "onnxruntime")


ACCELERATORS = ("cpu", "cuda", "auto")


REFERENCE = "mobilevit_xxs"  # every latency is also given as a ratio to this preset


DEFAULT_THREADS = 1  # one intra-op thread: repeatable on shared machines, close to one phone core


DEFAULT_WARMUP = 5


DEFAULT_REPEATS = 30


MIN_REPEATS = 3  # a median and quartiles need several samples


REFERENCE_MAX_AGE_S = 60.0  # re-measure the reference when older than this


@dataclass(frozen=True)
class Device:
    """What a latency was measured on; part of every measurement's key."""

    backend: str  # torch | onnxruntime
    threads: int  # intra-op threads
    accelerator: str  # "cpu" or "cuda:<device name>"
    cpu: str  # CPU model name
    torch_version: str
    runtime_version: str  # onnxruntime's version for that backend, else torch's

    def label(self) -> str:
        rt = f", onnxruntime {self.runtime_version}" if self.backend == "onnxruntime" else ""
        return (f"{self.backend} on {self.accelerator}, {self.threads} thread{'s' * (self.threads != 1)}"
                f" ({self.cpu}; torch {self.torch_version}{rt})")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _accelerator(device: str) -> str:
    if device not in ACCELERATORS:
        raise MvsearchError(f"--device: must be one of {', '.join(ACCELERATORS)}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise MvsearchError("--device cuda: no CUDA device is available here; use --device cpu")
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return "cpu"


def current_device(backend: str = "torch", threads: int | None = None, device: str = "cpu") -> Device:
    """This machine as a :class:`Device` for ``backend``/``threads``/``device`` (checked)."""
    if backend not in BACKENDS:
        raise MvsearchError(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    threads = DEFAULT_THREADS if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0:
        raise MvsearchError(f"--threads: must be a positive integer, got {shorten(threads)}")
    check_int(threads, "--threads", 1, MAX_THREADS)
    runtime = torch.__version__
    accel = _accelerator(device)
    if backend == "onnxruntime":
        import onnxruntime as ort

        runtime = ort.__version__
        if accel != "cpu" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise MvsearchError("onnxruntime here has no CUDAExecutionProvider (install onnxruntime-gpu), "
                                "or pass --device cpu")
    return Device(backend, threads, accel, cpu_model(), torch.__version__, runtime)


@dataclass(frozen=True)
class Timing:
    """Summary of ``count`` timed runs after ``warmup`` untimed ones (milliseconds)."""

    median_ms: float
    q1_ms: float  # 25th percentile
    q3_ms: float  # 75th percentile
    count: int
    warmup: int
    samples_ms: tuple[float, ...]

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    @classmethod
    def of(cls, samples_ms: list[float], warmup: int) -> Timing:
        q1, med, q3 = np.percentile(np.asarray(samples_ms, dtype=np.float64), [25, 50, 75])
        return cls(float(med), float(q1), float(q3), len(samples_ms), warmup, tuple(samples_ms))


def _runner(cfg: ArchConfig, res: tuple[int, int], device: Device, workdir: Path) -> Callable[[], Any]:
    """A closure running one batch-1 forward pass to completion on ``device``."""
    with torch.random.fork_rng(devices=[]):  # building a model must not move the caller's RNG
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        x = torch.randn(1, 3, *res)
    if device.backend == "torch":
        cuda = device.accelerator.startswith("cuda")
        dev = torch.device("cuda" if cuda else "cpu")
        model, x = model.to(dev), x.to(dev)

        def run() -> Any:
            with torch.inference_mode():
                out = model(x)
            if cuda:
                torch.cuda.synchronize()
            return out

        return run
    import onnxruntime as ort

    path = workdir / "model.onnx"
    export_onnx(model, path, res, opset=17)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = device.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.accelerator != "cpu" \
        else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    feed = {sess.get_inputs()[0].name: x.numpy()}
    return lambda: sess.run(None, feed)


def measure(cfg: ArchConfig, resolution: Any = 256, *, backend: str = "torch", threads: int | None = None,
            device: str | Device = "cpu", warmup: int = DEFAULT_WARMUP,
            repeats: int = DEFAULT_REPEATS) -> Timing:
    """Time ``repeats`` batch-1 forward passes of a fresh ``cfg`` model after ``warmup`` ones."""
    dev = device if isinstance(device, Device) else current_device(backend, threads, device)
    _check_counts(warmup, repeats)
    res = parse_resolution(resolution)
    check_cost(cfg, res)  # a network too large to build is refused before it is built
    steady_allocator()
    with tempfile.TemporaryDirectory(prefix="mvsearch-latency-") as tmp, cpu_threads(dev.threads):
        run = _runner(cfg, res, dev, Path(tmp))
        for _ in range(warmup):
            run()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            run()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    return Timing.of(samples, warmup)


def _check_counts(warmup: int, repeats: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise MvsearchError(f"--warmup: must be a non-negative integer, got {shorten(warmup)}")
    check_int(warmup, "--warmup", 0, MAX_WARMUP)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < MIN_REPEATS:
        raise MvsearchError(f"--repeats: must be an integer >= {MIN_REPEATS} (a median and IQR need "
                            f"several samples), got {shorten(repeats)}")
    check_int(repeats, "--repeats", MIN_REPEATS, MAX_REPEATS)


class Meter:
    """Measures models on one device, each related to mobilevit_xxs measured by this meter recently."""

    def __init__(self, backend: str = "torch", threads: int | None = None, device: str = "cpu", *,
                 warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS,
                 reference_max_age_s: float = REFERENCE_MAX_AGE_S) -> None:
        _check_counts(warmup, repeats)
        self.device = current_device(backend, threads, device)
        self.warmup, self.repeats, self.max_age = warmup, repeats, reference_max_age_s
        self._refs: dict[tuple[tuple[int, int], int], tuple[float, Timing]] = {}

    def reference(self, resolution: Any, num_classes: int, *, fresh: bool = False) -> Timing:
        """mobilevit_xxs at ``resolution``, re-measured when older than the meter's max age."""
        key = (parse_resolution(resolution), num_classes)
        hit = self._refs.get(key)
        if fresh or hit is None or time.monotonic() - hit[0] > self.max_age:
            timing = self.time(get_preset(REFERENCE, num_classes), key[0])
            self._refs[key] = hit = (time.monotonic(), timing)
        return hit[1]

    def time(self, cfg: ArchConfig, resolution: Any) -> Timing:
        return measure(cfg, resolution, device=self.device, warmup=self.warmup, repeats=self.repeats)

    def measure(self, cfg: ArchConfig, resolution: Any) -> tuple[Timing, Timing]:
        """(the model's timing, the reference's) -- ratio = model median / reference median."""
        ref = self.reference(resolution, cfg.num_classes)
        return self.time(cfg, resolution), ref
