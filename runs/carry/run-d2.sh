#!/bin/bash
# Tenth round on the mid-c48 lineage (docs/training.md "The tenth round"): the ninth round's stage I lifted `val/`
# at 0 % by 0.35 dB in 2,500 steps and its stage III gave 0.14 of it back for the 90 % column, so one more stage I
# (runs/d2, at half d1's peak rate: the model is trained, the restart's dip should be shallower) from d1s's
# step-2,000 average, then stage III (runs/d2s) to put the 90 % column back. Resumes each run from its last.pt.
# Argument: the starting weights (default runs/d1s/avg-2000.pt).
source "$(dirname "$0")/common.sh"
INIT=${1:-runs/d1s/avg-2000.pt}
S1=(--stage1-steps 1800 --stage2-steps 0 --lr 5e-5 --warmup 100 --crop 0:192 --batch 8 --ema 0.998)
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1200 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998)
[ -f runs/d2/avg-1800.pt ] || { python tools/train.py --init "$INIT" "${COMMON[@]}" "${S1[@]}" --out runs/d2 && avg d2 1800; }
[ -f runs/d2s/avg-1200.pt ] || { python tools/train.py --init runs/d2/avg-1800.pt "${COMMON[@]}" "${S3[@]}" --out runs/d2s && avg d2s 1200; }
