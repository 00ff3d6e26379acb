#!/bin/bash
# Fifteenth round, the default: one more round of the fourteenth's recipe (run-e1.sh in commit fc7c629) from its end
# (runs/e1r step 1,500, carried as runs/carry/e1r-1500.pt): stage I at crop 256 (runs/f1), stage III (runs/f1s),
# the loss recovery alone (runs/f1r), each 1,000 steps. Resumes each run from its last.pt if runs/ survived.
source "$(dirname "$0")/common.sh"
S1=(--stage1-steps 1000 --stage2-steps 0 --lr 5e-5 --warmup 100 --crop 0:256 --batch 4 --ema 0.998)
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 1000 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998)
R=(--stage1-steps 0 --stage2-steps 1000 --recovery-only --rates 0.6,0.9,0.9,0.9 --lr 1e-4 --warmup 100 --crop 0:256
  --batch 4 --ema 0.998)
run_to f1 1000 runs/carry/e1r-1500.pt "${S1[@]}"
run_to f1s 1000 runs/f1/avg-1000.pt "${S3[@]}"
run_to f1r 1000 runs/f1s/avg-1000.pt "${R[@]}"
