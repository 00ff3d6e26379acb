#!/bin/bash
# Twenty-first round's start, C = 96: c96c's recipe (stage III weighted toward lossless GOPs, rates 0,0,0.6,0.9,
# balanced) twice more from runs/c96f's end, shipped as mstvsc-small@511e6707 (held out still rising at both ends
# there: 24.25 / 19.29). Without runs/, it starts from the shipped weights, which are c96f's average.
source "$(dirname "$0")/common.sh"
STAGE3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 --warmup 50 --crop 0:256 --batch 2
  --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9)
INIT=runs/c96f/avg-1500.pt
[ -f "$INIT" ] || INIT=models/mstvsc-small/weights.pt
run_to c96g 1500 "$INIT" "${STAGE3[@]}"
run_to c96h 1500 runs/c96g/avg-1500.pt "${STAGE3[@]}"
