#!/bin/bash
# After runs/d1's stage I (mid-c48 grown from the ship): the loss recovery alone re-tuned to the new latents
# (runs/d1r; --recovery-only freezes encoder and synthesis, so the lossless picture stage I gained, +0.25 dB on
# val/ at step 1,500, cannot move), as the eighth round trained the ship's. Judge runs/d1r/avg-2500.pt with
# tools/ship_model.py --compare on val/ at 0 / 30 / 60 / 90 %.
# Argument: the stage-I weights (default runs/d1/avg-3000.pt; the carried runs/carry/d1-*.pt if runs/ was lost).
# Resumes from runs/d1r/last.pt; skipped once its avg file exists.
source "$(dirname "$0")/common.sh"
INIT=${1:-runs/d1/avg-3000.pt}
while pgrep -f "out runs/d1( |$)" > /dev/null; do sleep 20; done
R=(--stage1-steps 0 --stage2-steps 2500 --recovery-only --rates 0.3,0.6,0.9,0.9 --lr 1e-4 --warmup 50 --crop 0:256
  --batch 4 --ema 0.998)
[ -f runs/d1r/avg-2500.pt ] || { python tools/train.py --init "$INIT" "${COMMON[@]}" "${R[@]}" --out runs/d1r && avg d1r 2500; }
