"""Memory of one proxy training, estimated from the network's activations before it runs.

``mvsearch run --jobs auto`` (and scale, fidelity, validate) starts as many workers as the free
memory holds trainings, so it needs what one training takes before it runs. A training on CPU
holds the network's activations for the backward pass, their gradients and the optimizer's
temporaries, so its peak resident memory grows with the activations of the proxy network at the
proxy resolution times the batch size, on top of what the process holds anyway (Python, torch,
the decoded dataset):

    peak bytes ~= BASE + PER_ACTIVATION x activations x batch   (the process's peak, whole)

``activations`` is fvcore's count of the proxy network (proxy stem stride, batch 1,
:func:`mvsearch.cost.analytic.analytic_cost`). Calibration, 2026-11-29 on the 2-core test machine
(torch 2.13 CPU, 1 thread, glibc; another training ran beside it), one epoch of 512 images of the
``mobile`` space's proxy (64x64, stem stride 1, batch 64, Fashion-MNIST loaded: 0.31 GB before
training); peak = VmHWM, reset through ``/proc/self/clear_refs`` before training:

    preset          activations   peak RSS, freed memory held   MVSEARCH_HOLD_MEMORY=0
    mobilevit_xxs       1.49M     2.17 GB                       2.12 GB
    mobilevit_xs        3.49M     5.28 GB                       3.21 GB
    mobilevit_s         4.39M     6.50 GB (fit: 6.68, +3%)      3.96 GB (fit: 3.70, -6%)

Each setting of the allocator (:mod:`mvsearch.core.allocator`) has its own line, through xxs and xs
(:data:`FITS`: 24.3 and 8.6 bytes per activation and image); mobilevit_s, held out of the fits,
checks them; no estimate goes below the 0.31 GB the process held before training (the held line's
intercept is negative). :func:`training_memory` uses the line of the setting this process trains with. The
estimate sizes workers; it is no promise: other data (more images, more channels), another torch
or a GPU move it. The calibration predates two trainer changes of the same day (validation at the
training batch, gradients freed before the forward pass) that lowered the held peak of mobilevit_s
to 5.0-5.7 GB (``bench/bench_memory.py``), so with memory held the estimate now errs high.
"""
from __future__ import annotations

from mvsearch.arch.config import ArchConfig
from mvsearch.cost.analytic import analytic_cost
from mvsearch.proxy.settings import ProxySettings, proxy_arch

#: peak RSS (bytes) measured for one training of each preset (see the module doc): freed memory held
MEASURED_HELD = {"mobilevit_xxs": 2_173_640_704, "mobilevit_xs": 5_281_378_304, "mobilevit_s": 6_497_050_624}
#: ... and with ``MVSEARCH_HOLD_MEMORY=0``
MEASURED_FREED = {"mobilevit_xxs": 2_116_890_624, "mobilevit_xs": 3_210_829_824, "mobilevit_s": 3_957_186_560}
#: fvcore activations (batch 1) of those presets' proxy networks
ACTIVATIONS = {"mobilevit_xxs": 1_491_466, "mobilevit_xs": 3_490_570, "mobilevit_s": 4_392_714}
CALIBRATION_BATCH = 64
#: the process before training (Python, torch, Fashion-MNIST at 64x64): no estimate goes below it
PROCESS_BYTES = 305_000_000


def _fit(measured: dict[str, int]) -> tuple[float, float]:
    """(BASE bytes, bytes per activation and image): the line through xxs and xs."""
    (a0, m0), (a1, m1) = ((ACTIVATIONS[n] * CALIBRATION_BATCH, measured[n]) for n in ("mobilevit_xxs", "mobilevit_xs"))
    slope = (m1 - m0) / (a1 - a0)
    return m0 - slope * a0, slope


#: allocator holds freed memory -> (BASE, PER_ACTIVATION)
FITS = {True: _fit(MEASURED_HELD), False: _fit(MEASURED_FREED)}


def proxy_activations(arch: ArchConfig, proxy: ProxySettings, num_classes: int | None = None) -> int:
    """fvcore activations (batch 1) of the network a proxy training of ``arch`` builds."""
    net = proxy_arch(arch, proxy, num_classes if num_classes is not None else arch.num_classes)
    return analytic_cost(net, proxy.resolution).activations


def training_memory(arch: ArchConfig, proxy: ProxySettings, num_classes: int | None = None) -> int:
    """Estimated peak resident bytes of one proxy training of ``arch`` under ``proxy`` (see the module doc)."""
    from mvsearch.core.allocator import available

    base, per = FITS[available()]
    acts = proxy_activations(arch, proxy, num_classes)
    return max(PROCESS_BYTES, round(base + per * acts * proxy.batch_size))


__all__ = ["training_memory", "proxy_activations", "FITS", "MEASURED_HELD", "MEASURED_FREED"]
