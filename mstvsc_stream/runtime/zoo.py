"""The shipped models: find them by name, check their cards, and identify them on the wire.

Each model is a folder ``models/<name>/`` (installed as the package ``mstvsc_models``) holding
``weights.pt`` (``{"config": ..., "state_dict": ...}``), ``card.json`` (config, CBR, the weights'
SHA-256, data, training time, measured quality) and ``card.md``; exported ONNX graphs sit beside them.
A model is identified on the wire by ``model_id = name@hash16``, the first 16 hex digits of the weights'
SHA-256, so new weights under an old name are refused instead of decoded into garbage. Reading cards and
hashing weights needs no PyTorch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..model.config import MSTVSCConfig

DEFAULT_MODEL = "mstvsc-small-c48"
WEIGHTS = "weights.pt"
CARD = "card.json"


class ModelError(Exception):
    """A model that cannot be found, does not match its card, or does not match the stream."""


def models_root() -> Path:
    """The installed ``mstvsc_models`` package, or ``models/`` of a source checkout run in place."""
    try:
        return Path(str(resources.files("mstvsc_models")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "models"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    name: str
    folder: Path
    config: MSTVSCConfig
    weights_sha256: str
    data: dict

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.weights_sha256[:16]}"

    @property
    def weights_path(self) -> Path:
        return self.folder / WEIGHTS

    def verify(self) -> None:
        """Fail unless the weights on disk are the ones the card was measured with."""
        if not self.weights_path.exists():
            raise ModelError(f"model {self.name}: {self.weights_path} is missing")
        actual = file_sha256(self.weights_path)
        if actual != self.weights_sha256:
            raise ModelError(f"model {self.name}: weights hash {actual[:16]} does not match its card "
                             f"({self.weights_sha256[:16]}); re-measure and rewrite the card")


def read_card(folder: Path) -> ModelCard:
    path = folder / CARD
    try:
        data = json.loads(path.read_text())
        return ModelCard(name=data["name"], folder=folder, config=MSTVSCConfig.from_dict(data["config"]),
                         weights_sha256=data["weights_sha256"], data=data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"unreadable model card {path}: {exc}") from None


def list_models() -> list[ModelCard]:
    root = models_root()
    return [read_card(d) for d in sorted(root.iterdir()) if (d / CARD).exists()]


def find_model(name_or_path: str | None = None) -> ModelCard:
    """A shipped model by name, or a model folder given as a path; verified against its card."""
    name = name_or_path or DEFAULT_MODEL
    folder = Path(name)
    if not (folder / CARD).exists():
        folder = models_root() / name
    if not (folder / CARD).exists():
        if Path(name).is_dir():  # a path, not a name: "unknown model" would send the user to the wrong list
            raise ModelError(f"not a model folder (no {CARD}): {name}")
        known = ", ".join(card.name for card in list_models()) or "none"
        raise ModelError(f"unknown model {name!r} (shipped: {known})")
    card = read_card(folder)
    card.verify()
    return card
