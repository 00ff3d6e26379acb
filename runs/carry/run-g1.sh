#!/bin/bash
# Sixteenth round: the fifteenth round's balanced stage III (--balanced-rates --stage3-rates 0,0.9, which gave the default
# its best pair of ends) on mid-c48's stage-I end at crop 256 (the thirteenth round's runs/d4c step 1,250; val/ 27.12 /
# 21.05 against the shipped mid-c48's 26.82 / 21.50): runs/g1s, 1,200 steps. That init is taken from commit a09b7f1's
# carry when runs/ was lost. Resumes from runs/g1s/last.pt if runs/ survived.
source "$(dirname "$0")/common.sh"
INIT=runs/d4c/avg-1250.pt
[ -f "$INIT" ] || { INIT=runs/d4c-1250.pt; [ -f "$INIT" ] || git show a09b7f1:runs/carry/d4c-1250.pt > "$INIT"; }
run_to g1s 1200 "$INIT" --stage1-steps 0 --stage2-steps 0 --stage3-steps 1200 --stage3-lr 3e-5 --warmup 50 \
  --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0.9
