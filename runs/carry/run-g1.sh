#!/bin/bash
# Sixteenth round, mid-c48: the fifteenth round's balanced stage III (--balanced-rates --stage3-rates 0,0.9, which gave the
# default its best pair of ends) on mid-c48's stage-I end at crop 256 (the thirteenth round's runs/d4c step 1,250; val/
# 27.12 / 21.05 against the shipped mid-c48's 26.82 / 21.50): runs/g1s, 1,200 steps (val/ 27.03 / 21.44); then the loss
# recovery alone at the two-stack cascade's rate (runs/g1r, 1,000 steps) for the 0.06 dB g1s lacks at 90 %. The init is
# taken from commit a09b7f1's carry when runs/ was lost. Each run resumes from its last.pt if runs/ survived.
source "$(dirname "$0")/common.sh"
INIT=runs/d4c/avg-1250.pt
[ -f "$INIT" ] || { INIT=runs/d4c-1250.pt; [ -f "$INIT" ] || git show a09b7f1:runs/carry/d4c-1250.pt > "$INIT"; }
run_to g1s 1200 "$INIT" --stage1-steps 0 --stage2-steps 0 --stage3-steps 1200 --stage3-lr 3e-5 --warmup 50 \
  --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0.9
run_to g1r 1000 runs/g1s/avg-1200.pt --stage1-steps 0 --stage2-steps 1000 --recovery-only --rates 0.6,0.9,0.9,0.9 \
  --lr 1e-4 --warmup 100 --crop 0:256 --batch 4 --ema 0.998
# Then the fifteenth round's carried mix (rates 0,0.6,0.9,0.9, which held the default's middle) on the same init: runs/g1x.
run_to g1x 1200 "$INIT" --stage1-steps 0 --stage2-steps 0 --stage3-steps 1200 --stage3-lr 3e-5 --warmup 50 \
  --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0.6,0.9,0.9
# Then the loss recovery alone after it, as g1r after g1s: runs/g1xr.
run_to g1xr 1000 runs/g1x/avg-1200.pt --stage1-steps 0 --stage2-steps 1000 --recovery-only --rates 0.6,0.9,0.9,0.9 \
  --lr 1e-4 --warmup 100 --crop 0:256 --batch 4 --ema 0.998
# Then f1y's length on mid-c48 (the sixteenth round's end): g1x's recipe for 3,000 steps, runs/g1y.
run_to g1y 3000 "$INIT" --stage1-steps 0 --stage2-steps 0 --stage3-steps 3000 --stage3-lr 3e-5 --warmup 50 \
  --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0.6,0.9,0.9
