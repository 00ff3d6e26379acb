#!/bin/bash
# Seventeenth round, small-c48: f1y's held-out 90 % was still rising at its step 3,000 (19.00 -> 19.02 over the last
# 500 steps) while its 0 % held (23.97). runs/f1z: a second cycle of the same recipe (balanced, rates 0,0.6,0.9,0.9)
# from f1y's end at 2e-5, 3,000 steps, for the 90 % side of the ship rule (21.80 on val/ with 0 % kept at 26.49+).
# Needs runs/f1y/avg-3000.pt (not carried): it stops if runs/ was lost.
source "$(dirname "$0")/common.sh"
INIT=runs/f1y/avg-3000.pt
[ -f "$INIT" ] || { echo "run-f3.sh: $INIT is gone with runs/"; exit 1; }
run_to f1z 3000 "$INIT" --stage1-steps 0 --stage2-steps 0 --stage3-steps 3000 --stage3-lr 2e-5 --warmup 50 \
  --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0.6,0.9,0.9
