#!/bin/bash
# Fourteenth round, the default: stage I on 256-pixel crops for mstvsc-small-c48, whose stage I never ran above 192
# (on mid-c48, crop 256 lifted the held-out 0 % by +0.19 dB where crop 192 had levelled off: docs/training.md "The
# thirteenth round"). runs/e1: 1,500 steps at crop 256 / batch 4 from the shipped weights; then stage III at crop 256
# (runs/e1s) and the loss recovery alone (runs/e1r) bring 90 % back; the recovery at the eighth round's rate for the
# default's two-stack cascade (1e-4, rates leaning on 90 %: at 3e-4 its held-out 90 % fell from the first 250 steps).
# Resumes each run from its last.pt if runs/ survived, and starts again from the shipped weights if not.
source "$(dirname "$0")/common.sh"
S1=(--stage1-steps 1500 --stage2-steps 0 --lr 5e-5 --warmup 100 --crop 0:256 --batch 4 --ema 0.998)
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1200 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998)
R=(--stage1-steps 0 --stage2-steps 1500 --recovery-only --rates 0.6,0.9,0.9,0.9 --lr 1e-4 --warmup 100 --crop 0:256
  --batch 4 --ema 0.998)
run_to e1 1500 models/mstvsc-small-c48/weights.pt "${S1[@]}"
run_to e1s 1200 runs/e1/avg-1500.pt "${S3[@]}"
run_to e1r 1500 runs/e1s/avg-1200.pt "${R[@]}"
