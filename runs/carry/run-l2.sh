#!/bin/bash
# Twenty-first round, the default, continued: runs/l1 (crop 448) read 26.60 / 21.68 on val/ (+0.11 / +0.18 over the
# shipped default; at crop 256 the same recipe left it level), its held-out still rising. runs/l2: the same recipe
# again from l1's average. Needs runs/l1/avg-1500.pt (run-l1.sh makes it).
source "$(dirname "$0")/common.sh"
[ -f runs/l1/avg-1500.pt ] || bash "$(dirname "$0")/run-l1.sh"
run_to l2 1500 runs/l1/avg-1500.pt --stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 \
  --warmup 50 --crop 0:448 --batch 1 --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9
