#!/bin/bash
# Twenty-first round, the default, continued: runs/l2 read 26.60 / 21.75 on val/ (+0.11 / +0.25 over the shipped
# default), 0.05 dB under the ship rule's 21.80 at 90 % with 0.11 dB to spare at 0 %. runs/l3: f1x's mix (rates
# 0,0.6,0.9,0.9 balanced, which trades lossless for 90 %) at crop 448 from l2's average.
# Needs runs/l2/avg-1500.pt (run-l2.sh makes it).
source "$(dirname "$0")/common.sh"
[ -f runs/l2/avg-1500.pt ] || bash "$(dirname "$0")/run-l2.sh"
run_to l3 1500 runs/l2/avg-1500.pt --stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 \
  --warmup 50 --crop 0:448 --batch 1 --ema 0.998 --balanced-rates --stage3-rates 0,0.6,0.9,0.9
