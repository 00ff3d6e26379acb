#!/bin/bash
# Thirteenth round, on the twelfth round's stage-I end (runs/d3 step 1,800, carried as runs/carry/d3-1800.pt;
# docs/training.md "The twelfth round"). That round's stage III gave back 0.10 of stage I's +0.18 dB on val/ at 0 %,
# so stage I goes on from before it (runs/d4, 1,800 more steps at 5e-5) and stage III (runs/d4s, 1,200 steps) runs
# once, at the end. Resumes each run from its last.pt if runs/ survived, and starts again from the carry if not.
source "$(dirname "$0")/common.sh"
S1=(--stage1-steps 1800 --stage2-steps 0 --lr 5e-5 --warmup 100 --crop 0:192 --batch 8 --ema 0.998)
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1200 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998)
[ -f runs/d4/avg-1800.pt ] || { python tools/train.py --init runs/carry/d3-1800.pt "${COMMON[@]}" "${S1[@]}" --out runs/d4 && avg d4 1800; }
[ -f runs/d4s/avg-1200.pt ] || { python tools/train.py --init runs/d4/avg-1800.pt "${COMMON[@]}" "${S3[@]}" --out runs/d4s && avg d4s 1200; }
