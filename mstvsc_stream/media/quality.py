"""Frame quality against the original: PSNR and MS-SSIM, the two figures the MSTVSC paper reports.

Both take uint8 RGB frames ``[H, W, 3]`` or clips ``[N, H, W, 3]`` on a 0-255 scale and return the
mean over frames of the per-frame value, so a clip's score does not depend on how it is batched.
"""

from __future__ import annotations

import numpy as np

PEAK = 255.0
# Identical frames have infinite PSNR; the cap keeps means over frames finite and comparable. Only
# frames that are all but identical reach it (one sample off by one in a 640x480 frame is 108 dB).
PSNR_CAP_DB = 100.0
# pytorch_msssim's 11-pixel window is applied over 5 scales, each halving the frame, so every side must
# exceed (11 - 1) * 2**4 = 160 pixels.
MS_SSIM_MIN_SIDE = 161


def _as_clips(reference: np.ndarray, distorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as ``[N, H, W, 3]`` after checking that they match."""
    if reference.shape != distorted.shape:
        raise ValueError(f"frames differ in shape: {reference.shape} vs {distorted.shape}")
    if reference.ndim == 3:
        reference, distorted = reference[np.newaxis], distorted[np.newaxis]
    if reference.ndim != 4 or reference.shape[-1] != 3:
        raise ValueError(f"expected RGB frames [H, W, 3] or [N, H, W, 3], got shape {reference.shape}")
    return reference, distorted


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Mean per-frame PSNR in dB over all RGB samples, peak 255; identical frames count as 100 dB."""
    reference, distorted = _as_clips(reference, distorted)
    # One frame at a time keeps memory at one frame of float64, not a whole clip.
    mse = np.array([np.mean(np.square(ref.astype(np.float64) - dist)) for ref, dist in zip(reference, distorted)])
    with np.errstate(divide="ignore"):
        per_frame = 10.0 * np.log10(PEAK**2 / mse)
    return float(np.mean(np.minimum(per_frame, PSNR_CAP_DB)))


def ms_ssim(reference: np.ndarray, distorted: np.ndarray, batch_size: int = 8) -> float | None:
    """Mean per-frame MS-SSIM (pytorch-msssim, data_range 255), computed ``batch_size`` frames at a time.

    Returns None when it cannot be measured: a side of 160 pixels or less, or torch / pytorch_msssim
    not installed (they are optional: the streaming path needs neither).
    """
    reference, distorted = _as_clips(reference, distorted)
    if min(reference.shape[1:3]) < MS_SSIM_MIN_SIDE:
        return None
    try:
        import torch
        from pytorch_msssim import ms_ssim as torch_ms_ssim
    except ImportError:
        return None

    def as_tensor(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()

    scores = []
    with torch.no_grad():
        for start in range(0, len(reference), batch_size):
            batch = slice(start, start + batch_size)
            scores.append(
                torch_ms_ssim(as_tensor(reference[batch]), as_tensor(distorted[batch]), data_range=PEAK, size_average=False)
            )
    return float(torch.cat(scores).mean())
