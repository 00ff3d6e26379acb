#!/bin/bash
# Nineteenth round, a second cycle on small-c48-deep-encoder (as mid-c48's second stage I at half the rate rose
# where its first had dipped): stage I at half i1's rate from i1s's end (runs/i2), then i1s's stage III (runs/i2s).
# Needs runs/i1s/avg-1000.pt (run-i1.sh); resumes each run from its last.pt if runs/ survived.
source "$(dirname "$0")/common.sh"
run_to i2 1000 runs/i1s/avg-1000.pt --stage1-steps 1000 --stage2-steps 0 --lr 2.5e-5 --warmup 50 --crop 0:256 \
  --batch 4 --ema 0.998
run_to i2s 1000 runs/i2/avg-1000.pt --stage1-steps 0 --stage2-steps 0 --stage3-steps 1000 --stage3-lr 3e-5 \
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9
