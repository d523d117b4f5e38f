"""``mvsearch space``: a search space's knobs, size and cost range at the deployment resolution."""
from __future__ import annotations

import click

from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.cli.options import echo, print_json
from mvsearch.core.text import printable
from mvsearch.core.units import format_count, format_flops
from mvsearch.space.loader import load_space


@click.command()
@click.option("--space", "space_ref", default="mobile", show_default=True,
              help="A space file (spaces/mobile.yaml) or a shipped space's name (mobile, tiny).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def command(space_ref, as_json):
    """Show a search space: knobs, number of architectures, min/max FLOPs and params."""
    from mvsearch.cost.analytic import analytic_cost

    space = load_space(space_ref)
    rng = space.cost_range()
    proxy = space.proxy_settings()
    h, w = space.resolution
    presets = {}
    for name in PRESETS:
        cfg = get_preset(name, space.num_classes)
        presets[name] = {"member": space.contains(cfg), "flops": analytic_cost(cfg, space.resolution).flops}
    size = space.size()
    if as_json:
        print_json({
            "name": space.name, "file": space.file, "description": space.spec.description,
            "resolution": [h, w], "num_classes": space.num_classes,
            "knobs": {n: k.describe() for n, k in space.knobs()},
            "searched": [n for n, _ in space.searched()],
            "architectures": size,
            "min_flops": rng.min_flops, "max_flops": rng.max_flops,
            "min_params": rng.min_params, "max_params": rng.max_params,
            "proxy": proxy.to_dict(), "search": space.spec.search.model_dump(),
            "presets": presets, "warnings": space.proxy_warnings(proxy),
        })
        return
    desc = printable(space.spec.description)  # text from the file: no escape sequence reaches the terminal
    echo(f"space {space.name} ({printable(space.file)})" + (f": {desc}" if desc else ""))
    echo(f"deployment {h}x{w}, {space.num_classes} classes (budgets are counted here)")
    echo(f"proxy      {printable(proxy.data)} at {proxy.resolution}x{proxy.resolution}, stem stride {proxy.stem_stride}, "
               f"{proxy.epochs} epochs, {proxy.train_samples} train / {proxy.val_samples} val images")
    s = space.spec.search
    echo(f"search     {s.trials} trials, sampler {s.sampler}, pruner {s.pruner}"
               + (f", default budget {s.budget}" if s.budget else "") + (f", tiers {s.tiers}" if s.tiers else ""))
    echo("")
    width = max(len(n) for n, _ in space.knobs()) + 2
    echo(f"{'knob':<{width}}values")
    for name, knob in space.knobs():
        echo(f"{name:<{width}}{knob.describe()}{'' if not knob.fixed else '  (fixed)'}")
    echo("")
    echo(f"architectures      {size:,} ({size:.3g})")
    echo(f"FLOPs at {h}x{w:<5} {format_flops(rng.min_flops)} .. {format_flops(rng.max_flops)}  "
               f"({rng.min_flops:,} .. {rng.max_flops:,}; fvcore, 1 multiply-add = 1 FLOP)")
    echo(f"params             {format_count(rng.min_params)} .. {format_count(rng.max_params)}  "
               f"({rng.min_params:,} .. {rng.max_params:,})")
    members = ", ".join(f"{n} ({format_flops(p['flops'])}) {'in' if p['member'] else 'not in'} the space"
                        for n, p in presets.items())
    echo(f"paper presets      {members}")
    for w_ in space.proxy_warnings(proxy):
        echo(f"warning: proxy: {w_}", err=True)
