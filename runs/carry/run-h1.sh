#!/bin/bash
# Eighteenth round, the default: part the two ends of the trade. Stage III drawn at loss rate 0 alone (the wire's
# rounding straight through, everything trained, lossless GOPs only: runs/h1a) lifts the lossless picture with the
# quantiser the stream uses, where stage I's noise stand-in stopped at 26.64-26.65 on val/; then the loss recovery
# alone (runs/h1r: encoder and synthesis frozen, so 0 % cannot move) brings 90 % back onto the new latents.
# From the carried f1x-1000.pt (val/ 26.60 / 21.51); resumes each run from its last.pt if runs/ survived.
source "$(dirname "$0")/common.sh"
A=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-rates 0 --stage3-lr 5e-5 --warmup 50
  --crop 0:256 --batch 4 --ema 0.998)
R=(--stage1-steps 0 --stage2-steps 2000 --recovery-only --rates 0.6,0.9,0.9,0.9 --lr 1e-4 --warmup 100 --crop 0:256
  --batch 4 --ema 0.998)
run_to h1a 1500 runs/carry/f1x-1000.pt "${A[@]}"
run_to h1r 2000 runs/h1a/avg-1500.pt "${R[@]}"
