#!/bin/bash
# Sixteenth round, small-c48: does the fifteenth round's carried stage III pay with length? Its held-out 90 % was
# still rising at step 1,000 (18.82 -> 18.86). runs/f1y: the same recipe (balanced, rates 0,0.6,0.9,0.9) from the
# same stage-I end (runs/f1 step 1,000), 3,000 steps. Needs runs/f1/avg-1000.pt (not carried): it stops if runs/ was lost.
source "$(dirname "$0")/common.sh"
INIT=runs/f1/avg-1000.pt
[ -f "$INIT" ] || { echo "run-f2.sh: $INIT is gone with runs/ (only runs/carry/f1x-1000.pt is carried)"; exit 1; }
run_to f1y 3000 "$INIT" --stage1-steps 0 --stage2-steps 0 --stage3-steps 3000 --stage3-lr 3e-5 --warmup 50 \
  --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0.6,0.9,0.9
