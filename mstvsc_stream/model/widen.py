"""Start a wider or deeper model from a smaller one's weights, decoding exactly as it did.

Two widenings: a wider latent (more channels C, a higher rate; :func:`widen_latent`) and wider loss
recovery modules (more hidden channels, same rate; :func:`widen_recovery`). One deepening: more Swin
blocks per stage (:func:`deepen`, e.g. ``small-c48`` -> ``mid-c48``, whose added blocks are the shifted-window
ones the one-block stages lack).

Copying only the tensors whose shapes match would leave the latent projections and the recovery
modules' inputs and outputs random: the wider model would start from a broken picture and spend its
first training hours relearning what the narrow one knew. Instead every latent-facing tensor keeps the
narrow model's weights on the channels both share (Net2WiderNet, Chen et al. 2016):

* the encoder's projections (``to_common``, ``to_individual``) produce the old channels as before, plus
  new ones from their usual random initialisation, so the new channels carry something to learn from;
* everything that reads the latent (``from_common``, ``from_individual``, the first layer of each
  recovery stack, a cascade's later stacks included, which reads latent and mask side by side) reads
  the new channels through zero weights;
* each recovery stack's last layer predicts the old channels as before and nothing for the new ones.

So the widened model decodes exactly as the narrow one did, new channels sent but not yet read, and
training teaches it to use them. Zero weights still get gradients (their inputs are not zero).
"""

from __future__ import annotations

import torch

from .moe import MoE
from .mstvsc import MSTVSC
from .swin import SwinBlock

_PRODUCERS = ("to_common.", "to_individual.")
_READERS = ("from_common.", "from_individual.")
_RECOVERY = ("common_recovery.", "individual_recovery.")


def widen_latent(model: MSTVSC, narrow: dict[str, torch.Tensor]) -> list[str]:
    """Load ``narrow`` (a state dict with a smaller latent) into ``model`` as described above.

    Tensors whose shapes match are copied as they are. Returns the names loaded in part (widened).
    Raises ``ValueError`` when a tensor differs in a way widening cannot explain (another architecture).
    """
    wide, slim = model.cfg.latent, _narrow_latent(narrow)
    if slim > wide:
        raise ValueError(f"cannot widen a latent of {slim} channels to {wide}")
    recovery_layers = _recovery_layers(model)

    def widen(name: str, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        if new.dim() != old.dim():
            raise _cannot_widen(name, old, new)
        out = new.clone() if name.startswith(_PRODUCERS) else torch.zeros_like(new)
        rows, cols = _row_map(name, slim, recovery_layers), _col_map(name, slim, wide, recovery_layers)
        for new_rows, old_rows in rows:
            for new_cols, old_cols in cols:
                where_new, where_old = (new_rows, new_cols)[:old.dim()], (old_rows, old_cols)[:old.dim()]
                if out[where_new].shape != old[where_old].shape:
                    raise _cannot_widen(name, old, new)
                out[where_new] = old[where_old]
        return out

    return _load_widened(model, narrow, widen)


def _narrow_latent(state: dict[str, torch.Tensor]) -> int:
    return state["to_common.weight"].shape[0]


def _recovery_layers(model: MSTVSC) -> dict[str, tuple[int, int]]:
    """(first, last) layer index of each recovery conv stack, by its name prefix: each module's first
    stack (``common_recovery.net.``) and its cascade's later ones (``common_recovery.refine.0.``), every
    one of which reads ``[latent, mask]`` and writes the latent."""
    layers: dict[str, list[int]] = {}
    for name in model.state_dict():
        if name.startswith(_RECOVERY):
            stack, layer, _ = name.rsplit(".", 2)
            layers.setdefault(f"{stack}.", []).append(int(layer))
    return {stack: (min(idx), max(idx)) for stack, idx in layers.items()}


def _layer(name: str, recovery_layers: dict[str, tuple[int, int]]) -> tuple[bool, bool]:
    """(reads the latent, writes the latent) for a tensor name."""
    for prefix, (first, last) in recovery_layers.items():
        if name.startswith(prefix):
            i = int(name[len(prefix):].split(".")[0])
            return i == first, i == last
    return name.startswith(_READERS), name.startswith(_PRODUCERS)


def _row_map(name: str, slim: int, recovery_layers) -> list[tuple[slice, slice]]:
    """Output rows: latent producers keep their first ``slim`` rows; others are unchanged."""
    writes = _layer(name, recovery_layers)[1]
    return [(slice(0, slim), slice(0, slim))] if writes else [(slice(None), slice(None))]


def _col_map(name: str, slim: int, wide: int, recovery_layers) -> list[tuple[slice, slice]]:
    """Input columns: latent readers keep their first ``slim``; the recovery's first layer reads
    ``[latent, mask]``, so each half keeps its first ``slim``."""
    if name.endswith(".bias") or not _layer(name, recovery_layers)[0]:
        return [(slice(None), slice(None))]
    if name.startswith(_RECOVERY):
        return [(slice(0, slim), slice(0, slim)), (slice(wide, wide + slim), slice(slim, 2 * slim))]
    return [(slice(0, slim), slice(0, slim))]


def widen_recovery(model: MSTVSC, narrow: dict[str, torch.Tensor]) -> list[str]:
    """Load ``narrow`` (a state dict whose recovery modules have fewer hidden channels) into ``model``.

    Same idea as :func:`widen_latent`, inside the recovery stacks: every layer but the last makes its
    old hidden channels as before plus new ones from their random initialisation, and every layer but
    the first reads the new channels through zero weights. The prediction, and so the picture at any
    loss, starts exactly as the narrow model's; the new channels give heavy loss more to learn with.
    Returns the names loaded in part; raises ``ValueError`` for anything else that differs.
    """
    recovery_layers = _recovery_layers(model)

    def widen(name: str, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        fits = new.dim() == old.dim() and all(n >= o for n, o in zip(new.shape, old.shape))
        if not name.startswith(_RECOVERY) or not fits:
            raise _cannot_widen(name, old, new)
        out = new.clone()
        if name.endswith(".weight") and not _layer(name, recovery_layers)[0]:
            out[:, old.shape[1]:] = 0  # the new hidden channels are read through zeros
        out[tuple(slice(0, n) for n in old.shape)] = old
        return out

    return _load_widened(model, narrow, widen)


def deepen(model: MSTVSC, shallow: dict[str, torch.Tensor]) -> list[str]:
    """Load ``shallow`` (a state dict with fewer Swin blocks per stage) into ``model``.

    Every block of the shallow model keeps its weights; each added block starts as the identity: the
    output projection of its attention and the output layer of its feed-forward (MLP or experts) are
    zero, so both of its residual branches add nothing and the picture is the shallow model's. The
    zero layers still get gradients (their inputs are not zero), and the rest of the block learns
    once they move. Returns the added blocks' names; raises ``ValueError`` for anything else that differs.
    """
    own = model.state_dict()
    for name, old in shallow.items():
        if name not in own:
            raise ValueError(f"{name}: not in the deeper model (deepening never drops a block)")
        if own[name].shape != old.shape:
            raise _cannot_widen(name, old, own[name])
    added = [name for name, m in model.named_modules()
             if isinstance(m, SwinBlock) and not any(k.startswith(f"{name}.") for k in shallow)]
    unexplained = [k for k in own if k not in shallow and not k.startswith(tuple(f"{n}." for n in added))]
    if unexplained:
        raise ValueError(f"{unexplained[0]}: not in the shallower model, and not in a block it lacks")
    model.load_state_dict(shallow, strict=False)
    for name in added:
        _silence(model.get_submodule(name))
    return added


def residual_outputs(block: SwinBlock) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (weight, bias) of the layers through which a block's residual branches write: the attention's
    projection and the feed-forward's last layer (an MoE's stacked expert outputs)."""
    ffn = block.ffn
    return [(block.attn.proj.weight, block.attn.proj.bias),
            (ffn.w2, ffn.b2) if isinstance(ffn, MoE) else (ffn[-1].weight, ffn[-1].bias)]


@torch.no_grad()
def _silence(block: SwinBlock) -> None:
    """Zero a block's residual outputs, so that it starts as the identity."""
    for weight, bias in residual_outputs(block):
        weight.zero_()
        bias.zero_()


def _load_widened(model: MSTVSC, narrow: dict[str, torch.Tensor], widen) -> list[str]:
    """Load ``narrow`` into ``model``: equal shapes as they are, the others through
    ``widen(name, old, new)``; return the names widened."""
    own = model.state_dict()
    loaded, widened = {}, []
    for name, old in narrow.items():
        if name not in own:
            continue
        if own[name].shape == old.shape:
            loaded[name] = old
        else:
            loaded[name] = widen(name, old, own[name])
            widened.append(name)
    model.load_state_dict(loaded, strict=False)
    return sorted(widened)


def _cannot_widen(name: str, old: torch.Tensor, new: torch.Tensor) -> ValueError:
    return ValueError(f"{name}: {tuple(old.shape)} cannot widen to {tuple(new.shape)}")
