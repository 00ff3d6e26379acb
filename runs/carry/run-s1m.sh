#!/bin/bash
# Tenth round, back on the default's architecture (mid-c48 runs 2.7-2.9x slower, docs/training.md "The ninth
# round, continued"): one more stage I + II (s1m) and stage III (s3o) of small-c48 from the shipped 888de422,
# the recipe of the sixth round (runs/s1l, runs/s3m). Resumes each run from its last.pt; skips a finished one.
source "$(dirname "$0")/common.sh"
S12=(--stage1-steps 1200 --stage2-steps 1000 --lr 5e-5 --warmup 100 --crop 0:192,1200:256 --batch 0:8,1200:2 --ema 0.998)
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 3000 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998)
[ -f runs/s1m/avg-2200.pt ] || { python tools/train.py --init models/mstvsc-small-c48/weights.pt "${COMMON[@]}" "${S12[@]}" --out runs/s1m && avg s1m 2200; }
[ -f runs/s3o/avg-3000.pt ] || { python tools/train.py --init runs/s1m/avg-2200.pt "${COMMON[@]}" "${S3[@]}" --out runs/s3o && avg s3o 3000; }
