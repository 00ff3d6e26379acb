#!/bin/bash
# Eighteenth round, C = 96: stage III weighted toward lossless GOPs (rates 0,0,0.6,0.9, balanced), since a user picks
# C = 96 for a link that carries its bits; from the shipped mstvsc-small@cf2195c4. runs/c96b, at c96a's rates
# (0,0.6,0.9,0.9), slid toward 90 %.
source "$(dirname "$0")/common.sh"
run_to c96c 1500 models/mstvsc-small/weights.pt --stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 \
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9
# Both ends rose on val/ (26.71 / 21.64, +0.05 / +0.12 over the ship): runs/c96d, the same recipe 1,500 more steps.
run_to c96d 1500 runs/c96c/avg-1500.pt --stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 \
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9
