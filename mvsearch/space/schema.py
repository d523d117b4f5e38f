"""The YAML schema of a space file (pydantic models, frozen; unknown keys refused)."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional
from pydantic import BaseModel, BeforeValidator, ConfigDict

from mvsearch.space.knobs import FloatKnob, IntKnob, PatchKnob, _fixed, _resolution


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class MV2Spec(_Model):
    """layer1 / layer2: MobileNetV2 stages."""

    channels: IntKnob  # output channels
    blocks: IntKnob = _fixed(1, "int")  # MV2 blocks in the stage


class ViTSpec(_Model):
    """layer3..5: a stride-2 MV2 block and a MobileViT block."""

    channels: IntKnob  # C
    dim: IntKnob  # d, the transformer width
    depth: IntKnob  # L, transformer layers
    ffn_ratio: Optional[FloatKnob] = None  # FFN width = round(ratio * d) (default: 2, the paper's)
    ffn_dim: Optional[IntKnob] = None  # or an absolute FFN width
    heads: IntKnob = _fixed(4, "int")  # attention heads (must divide d)
    patch: PatchKnob = _fixed((2, 2), "patch")  # unfold patch h x w
    kernel: IntKnob = _fixed(3, "int")  # n, the local and fusion conv kernel (odd)


class ArchSpec(_Model):
    """Knobs of the whole network."""

    stem: IntKnob = _fixed(16, "int")  # stem output channels
    expansion: FloatKnob = _fixed(4, "float")  # MV2 expansion ratio
    last_channels: Optional[IntKnob] = None  # width of the final 1x1 conv, absolute...
    last_ratio: Optional[FloatKnob] = None  # ...or as a ratio of layer5's channels (default 4)
    last_max: Optional[int] = None  # cap for last_ratio (default 960, the reference's)
    dropout: FloatKnob = _fixed(0.1, "float")
    attn_dropout: FloatKnob = _fixed(0.0, "float")
    ffn_dropout: FloatKnob = _fixed(0.0, "float")
    classifier_dropout: FloatKnob = _fixed(0.1, "float")
    layer1: MV2Spec
    layer2: MV2Spec
    layer3: ViTSpec
    layer4: ViTSpec
    layer5: ViTSpec


class DeploymentSpec(_Model):
    """Where budgets are counted: the deployed network's input and classifier."""

    resolution: Annotated[tuple[int, int], BeforeValidator(_resolution)] = (256, 256)
    num_classes: int = 1000


class ProxySpec(_Model):
    """The proxy training (keys of :class:`mvsearch.proxy.ProxySettings`; unset: its defaults)."""

    data: Optional[str] = None
    resolution: Optional[int] = None
    stem_stride: Optional[int] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    train_samples: Optional[int] = None
    val_samples: Optional[int] = None
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    warmup_epochs: Optional[float] = None
    label_smoothing: Optional[float] = None


def _count_text(v: Any) -> Any:
    # YAML reads `budget: 1500000000` as an int and `budget: 1.5e+9` as a float: keep them as text
    # for mvsearch.budget, which parses exactly what --budget / --max-params accept
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v)
    return v


_Count = Annotated[str, BeforeValidator(_count_text)]


class SearchSpec(_Model):
    """Defaults of ``mvsearch run`` for this space (each has a command-line option)."""

    trials: int = 20  # trained trials per run (budget rejections do not count)
    sampler: Literal["tpe", "random", "nsga2"] = "tpe"
    pruner: Literal["hyperband", "median", "none"] = "median"
    budget: Optional[_Count] = None  # e.g. "1.5GFLOPs" or "0.42G,1.05G,2.0G" (or a plain number)
    tiers: Optional[str] = None  # "paper"
    max_params: Optional[_Count] = None  # e.g. "2.3M" (or a plain number: 2300000)
    seed: int = 0
    baselines: bool = False  # train the paper presets that fit the budget, under the same proxy, as baselines
    save_weights: bool = False  # keep each trained proxy network's weights (so `export --weights` works)


class SpaceSpec(_Model):
    """A whole space file."""

    name: str
    description: str = ""
    deployment: DeploymentSpec = DeploymentSpec()
    proxy: ProxySpec = ProxySpec()
    search: SearchSpec = SearchSpec()
    arch: ArchSpec
