"""Memory of one proxy training, estimated from the network's activations before it runs.

``mvsearch run --jobs auto`` (and scale, fidelity, validate) starts as many workers as the free
memory holds trainings, so it needs what one training takes before it runs. A training on CPU
holds the network's activations for the backward pass, their gradients and the optimizer's
temporaries, so its peak resident memory grows with the activations of the proxy network at the
proxy resolution times the batch size, on top of what the process holds anyway (Python, torch,
the decoded dataset):

    peak bytes <= BASE + PER_ACTIVATION x activations x batch   (the process's peak, whole)

``activations`` is fvcore's count of the proxy network (proxy stem stride, batch 1,
:func:`mvsearch.cost.analytic.analytic_cost`). Each setting of the allocator
(:mod:`mvsearch.core.allocator`) has its own line: the least-squares line through its calibration
trainings, raised by its largest residual, so that no calibration training lies above it. The
estimate sizes workers, and too few workers cost time while too many cost a swapping machine.

Held memory (the default), calibrated on the 10 trainings of the main job of 2026-11-29 11:30
UTC (``mvsearch run --space mobile --budget 1.5GFLOPs``: 64x64, stem stride 1, batch 64, 3 epochs
of 1,024 Fashion-MNIST images, 3,072 validation, 2 threads, the lean BatchNorm + SiLU units of
:mod:`mvsearch.model.bn_silu`; each trial's recorded ``peak_rss``): mobilevit_xxs, mobilevit_xs and
8 searched networks of 1.14M-3.49M activations, peaks 1.79-3.98 GB. Held out: mobilevit_s (4.39M
activations, 1 thread, ``bench/bench_memory.py``) measured 4.11-4.60 GB, estimated 5.33 GB (a test
pins that every measured point lies under its estimate, within 1.35x).

On jemalloc with its decay off (:mod:`mvsearch.core.jemalloc`, what the ``mvsearch`` command
trains on where it is installed), through the same 10 trainings run again on it (2026-11-29 14:44
UTC): peaks 1.37-2.63 GB. Held out: mobilevit_s measured 2.93 GB.

Freed memory (``MVSEARCH_HOLD_MEMORY=0``), through mobilevit_xxs, mobilevit_xs and mobilevit_s,
each at its largest measured peak (``bench/bench_memory.py`` and its first calibration, 1 thread,
one epoch of 512 images or 3 of 1,024), measured with plain BatchNorm + SiLU modules: the lean
units lower them (mobilevit_s 4.02 -> 3.20 GB), so this line errs high.

No estimate goes below the 0.31 GB the process held before training. Other data (more images,
more channels), another torch or a GPU move these figures: the estimate is no promise.
"""
from __future__ import annotations

from mvsearch.arch.config import ArchConfig
from mvsearch.cost.analytic import analytic_cost
from mvsearch.proxy.settings import ProxySettings, proxy_arch

CALIBRATION_BATCH = 64

#: (fvcore activations of the proxy network at batch 1, peak RSS bytes) of each calibration
#: training with freed memory held: the main job of 2026-11-29 11:30 UTC, trials 1.5G/0-13 (0: xxs, 1: xs)
HELD = {
    "mobilevit_xxs": (1_491_466, 1_907_204_096),
    "mobilevit_xs": (3_490_570, 3_975_774_208),
    "1.5G/2": (3_305_482, 3_848_990_720),
    "1.5G/3": (1_873_674, 2_256_543_744),
    "1.5G/4": (2_166_282, 2_685_181_952),
    "1.5G/5": (1_237_514, 1_889_247_232),
    "1.5G/7": (2_459_658, 3_178_876_928),
    "1.5G/11": (1_418_762, 1_997_045_760),
    "1.5G/12": (1_139_210, 1_790_316_544),
    "1.5G/13": (1_675_786, 2_742_771_712),
}
#: ... with ``MVSEARCH_HOLD_MEMORY=0``: the presets, each at its largest measured peak (plain BatchNorm
#: + SiLU modules; the lean units lower these: mobilevit_s 3.20 GB)
FREED = {
    "mobilevit_xxs": (1_491_466, 2_116_890_624),
    "mobilevit_xs": (3_490_570, 3_210_829_824),
    "mobilevit_s": (4_392_714, 4_130_000_000),
}
#: held out of the held line: mobilevit_s with held memory and lean units, the largest of bench_memory.py's
#: rounds of 2026-11-29 (11:02-11:21 UTC: 4.11, 4.20 GB; 14:30-14:44 UTC: 4.57, 4.60 GB)
HELD_OUT = {"mobilevit_s": (4_392_714, 4_600_000_000)}
#: ... on jemalloc with its decay off (mvsearch.core.jemalloc): the same main job again, 2026-11-29 14:44 UTC
#: (the same trials, the same accuracies)
JEMALLOC = {
    "mobilevit_xxs": (1_491_466, 1_408_970_752),
    "mobilevit_xs": (3_490_570, 2_634_240_000),
    "1.5G/2": (3_305_482, 2_582_642_688),
    "1.5G/3": (1_873_674, 1_666_686_976),
    "1.5G/4": (2_166_282, 1_938_587_648),
    "1.5G/5": (1_237_514, 1_414_680_576),
    "1.5G/7": (2_459_658, 2_099_322_880),
    "1.5G/11": (1_418_762, 1_471_520_768),
    "1.5G/12": (1_139_210, 1_371_979_776),
    "1.5G/13": (1_675_786, 1_691_779_072),
}
#: held out of the jemalloc line: mobilevit_s, bench_memory.py's two rounds of 14:30-14:44 UTC (2.93, 2.93 GB)
JEMALLOC_OUT = {"mobilevit_s": (4_392_714, 2_930_000_000)}
#: the process before training (Python, torch, Fashion-MNIST at 64x64): no estimate goes below it
PROCESS_BYTES = 305_000_000


def upper_line(points: dict[str, tuple[int, int]], batch: int = CALIBRATION_BATCH) -> tuple[float, float]:
    """(BASE bytes, bytes per activation and image): the least-squares line of peak against
    activations x ``batch``, raised by its largest residual so that no point lies above it."""
    xs = [a * batch for a, _ in points.values()]
    ys = [float(p) for _, p in points.values()]
    n = len(xs)
    if n < 2:
        raise ValueError("a line needs at least 2 calibration points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("the calibration points need different activations")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    base = my - slope * mx
    return base + max(y - (base + slope * x) for x, y in zip(xs, ys)), slope


#: glibc holds freed memory (True), frees it (False), or jemalloc holds it -> (BASE, PER_ACTIVATION)
FITS = {True: upper_line(HELD), False: upper_line(FREED), "jemalloc": upper_line(JEMALLOC)}


def proxy_activations(arch: ArchConfig, proxy: ProxySettings, num_classes: int | None = None) -> int:
    """fvcore activations (batch 1) of the network a proxy training of ``arch`` builds."""
    net = proxy_arch(arch, proxy, num_classes if num_classes is not None else arch.num_classes)
    return analytic_cost(net, proxy.resolution).activations


def training_memory(arch: ArchConfig, proxy: ProxySettings, num_classes: int | None = None) -> int:
    """Estimated peak resident bytes of one proxy training of ``arch`` under ``proxy`` (see the module doc)."""
    from mvsearch.core import jemalloc
    from mvsearch.core.allocator import available

    base, per = FITS["jemalloc" if available() and jemalloc.holds() else available()]
    acts = proxy_activations(arch, proxy, num_classes)
    return max(PROCESS_BYTES, round(base + per * acts * proxy.batch_size))


__all__ = ["training_memory", "proxy_activations", "upper_line", "FITS", "HELD", "FREED", "HELD_OUT", "JEMALLOC",
           "JEMALLOC_OUT"]
