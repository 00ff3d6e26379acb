#!/bin/bash
# Twenty-second round's end, C = 96: c96c's stage III (rates 0,0,0.6,0.9 balanced, weighted toward lossless GOPs) at
# crop 448 / batch 1 ran twice from 511e6707 (runs/c96i, runs/c96j: +0.03 / +0.35 dB at 0 / 90 % on val/) and was
# shipped as mstvsc-small@79d9eaca (docs/training.md "The twenty-second round"); its held-out 90 % was still rising.
# runs/c96k: the same again from the shipped weights (c96j's average), then runs/c96l from c96k's average. Each
# resumes from its last.pt if runs/ survived; judge with --name mstvsc-small.
source "$(dirname "$0")/common.sh"
STAGE3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 --warmup 50 --crop 0:448 --batch 1
  --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9)
run_to c96k 1500 models/mstvsc-small/weights.pt "${STAGE3[@]}"
run_to c96l 1500 runs/c96k/avg-1500.pt "${STAGE3[@]}"
