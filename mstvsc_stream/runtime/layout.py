"""Between frames and network tensors: padding, cropping and the flat code layout.

Shared by every backend so that all of them put the same element at the same index: codes are the
common latent ``[1, h, w, C]`` then the individual latent ``[T, h/2, w/2, C]``, both in C order.
"""

from __future__ import annotations

import numpy as np

from ..model.config import MSTVSCConfig, padded_size


def check_frames(frames: np.ndarray, gop: int) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != gop or frames.shape[3] != 3:
        raise ValueError(f"expected uint8 frames [{gop}, H, W, 3], got {frames.dtype} {list(frames.shape)}")


def pad_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> float32 ``[1, T, Hp, Wp, 3]`` in [0, 1], edges replicated."""
    t, h, w, _ = frames.shape
    ph, pw = padded_size(h, w)
    padded = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    return (padded.astype(np.float32) / 255.0)[None]


def to_uint8(decoded: np.ndarray, height: int, width: int) -> np.ndarray:
    """float ``[1, T, Hp, Wp, 3]`` in [0, 1] -> uint8 ``[T, H, W, 3]`` cropped to the frame size."""
    return np.clip(np.rint(decoded[0, :, :height, :width] * 255.0), 0, 255).astype(np.uint8)


def join_codes(common: np.ndarray, individual: np.ndarray) -> np.ndarray:
    return np.concatenate([common.reshape(-1), individual.reshape(-1)]).astype(np.int8)


def split_codes(cfg: MSTVSCConfig, flat: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat vector -> float32 ``[1, 1, h, w, C]`` and ``[1, T, h/2, w/2, C]`` (same split for masks)."""
    common_shape, individual_shape = cfg.latent_shapes(height, width)
    expected = cfg.latent_length(height, width)
    if flat.shape != (expected,):
        raise ValueError(f"expected {expected} latent elements for {width}x{height}, got {flat.size}")
    n = int(np.prod(common_shape))
    flat = flat.astype(np.float32)
    return flat[:n].reshape(1, *common_shape), flat[n:].reshape(1, *individual_shape)
