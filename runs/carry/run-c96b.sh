#!/bin/bash
# Seventeenth round, C = 96, continued: runs/c96a's stage III was still lifting the held-out 0 % at its end
# (24.24 -> 24.25 over its last 250 steps, from 23.97 at the widening). runs/c96b: its recipe (balanced, rates
# 0,0.6,0.9,0.9, 3e-5, crop 256 / batch 2) for 1,500 more steps from its end. Needs runs/c96a/avg-3000.pt, or the
# shipped C = 96 weights when c96a was shipped and runs/ lost.
source "$(dirname "$0")/common.sh"
INIT=runs/c96a/avg-3000.pt
[ -f "$INIT" ] || INIT=models/mstvsc-small/weights.pt
run_to c96b 1500 "$INIT" --stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 --warmup 50 \
  --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0.6,0.9,0.9
