#!/bin/bash
# Stage III for the mid-c48 of the ninth round (runs/d1s): the recovery alone (runs/d1r, --recovery-only)
# plateaued at 18.66 held-out at 90 % by step 750 (the shipped model: 18.93), so the 90 % the stage I cost is
# not the recovery's mismatch alone; end to end, at stage III's low rate and rates half lossless (so the
# lossless gain is kept), the encoder learns to put what survives 90 % loss back into the symbols.
# Argument: the starting weights (default runs/d1r/avg-750.pt). Resumes from runs/d1s/last.pt.
source "$(dirname "$0")/common.sh"
INIT=${1:-runs/d1r/avg-750.pt}
python tools/train.py --init "$INIT" "${COMMON[@]}" \
  --stage1-steps 0 --stage2-steps 0 --stage3-steps 3000 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5 \
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998 --out runs/d1s
