#!/bin/bash
# Capacity: Table II's mid-c48 (two Swin blocks per stage, the second with shifted windows) grown from the
# shipped mstvsc-small-c48@888de422 (recovery: two 192-wide stacks): the added blocks start as the identity,
# so the run starts at the shipped picture. Stage I (lossless; encoder, decoder and the new blocks) first.
# Resumes from runs/d1/last.pt; skipped once its avg file exists.
source "$(dirname "$0")/common.sh"
S1=(--config mid-c48 --recovery-width 192 --recovery-stages 2 --stage1-steps 3000 --stage2-steps 0 --lr 1e-4
  --warmup 100 --crop 0:192 --batch 8 --ema 0.998)
[ -f runs/d1/avg-3000.pt ] || { python tools/train.py --init models/mstvsc-small-c48/weights.pt "${COMMON[@]}" "${S1[@]}" --out runs/d1 && avg d1 3000; }
