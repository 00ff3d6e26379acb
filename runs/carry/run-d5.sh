#!/bin/bash
# Fourteenth round, on the thirteenth round's end (runs/d4c step 1,250: stage I on 256-pixel crops, carried as
# runs/carry/d4c-1250.pt; docs/training.md "The thirteenth round"): val/ 27.12 dB at 0 % (+0.30 over the shipped
# mstvsc-mid-c48) but 21.05 at 90 % (-0.45). Stage III (runs/d5s, 1,200 steps, crop 256) brings 90 % back, as it did
# after each stage I; the loss recovery alone (runs/d5r, 1,500 steps) then lifts 90 % without touching 0 %.
# Resumes each run from its last.pt if runs/ survived, and starts again from the carry if not.
source "$(dirname "$0")/common.sh"
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1200 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998)
R=(--stage1-steps 0 --stage2-steps 1500 --recovery-only --rates 0.3,0.6,0.9,0.9 --lr 3e-4 --warmup 50 --crop 0:256
  --batch 4 --ema 0.998)
run_to d5s 1200 runs/carry/d4c-1250.pt "${S3[@]}"
run_to d5r 1500 runs/d5s/avg-1200.pt "${R[@]}"
