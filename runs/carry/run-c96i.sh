#!/bin/bash
# Twenty-first round's end, C = 96: stage III on 448-pixel crops lifted the default +0.33 dB at 90 % on val/ where
# the same recipe at crop 256 left it level (docs/training.md "The twenty-first round"); runs/c96g at crop 256 was
# flat on C = 96. runs/c96i: c96c's recipe (rates 0,0,0.6,0.9 balanced, weighted toward lossless GOPs) at crop 448,
# batch 1, from the shipped mstvsc-small weights (c96f's average), then twice more, each from the last one's average
# (runs/c96j, runs/c96k), as the default's runs/l1, l2 and l4 were at these rates.
source "$(dirname "$0")/common.sh"
STAGE3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 --warmup 50 --crop 0:448 --batch 1
  --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9)
run_to c96i 1500 models/mstvsc-small/weights.pt "${STAGE3[@]}"
run_to c96j 1500 runs/c96i/avg-1500.pt "${STAGE3[@]}"
run_to c96k 1500 runs/c96j/avg-1500.pt "${STAGE3[@]}"
