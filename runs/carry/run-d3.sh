#!/bin/bash
# Twelfth round, on the shipped mstvsc-mid-c48@08ced46e (docs/training.md "The eleventh round"): at mid depth stage
# I at 5e-5 still paid (+0.22 dB on val/ at 0 % in 1.45 h), so stage I again (runs/d3) and stage III after it
# (runs/d3s), the eleventh round's recipe. Starts from the shipped weights, so nothing needs carrying; resumes each
# run from its last.pt if runs/ survived.
source "$(dirname "$0")/common.sh"
S1=(--stage1-steps 1800 --stage2-steps 0 --lr 5e-5 --warmup 100 --crop 0:192 --batch 8 --ema 0.998)
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1200 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998)
[ -f runs/d3/avg-1800.pt ] || { python tools/train.py --init models/mstvsc-mid-c48/weights.pt "${COMMON[@]}" "${S1[@]}" --out runs/d3 && avg d3 1800; }
[ -f runs/d3s/avg-1200.pt ] || { python tools/train.py --init runs/d3/avg-1800.pt "${COMMON[@]}" "${S3[@]}" --out runs/d3s && avg d3s 1200; }
