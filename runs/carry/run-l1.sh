#!/bin/bash
# Twenty-first round, small-c48 (the default): does a crop near the card's frame size lift it? Crop 192 -> 256 moved
# stage I on both models (the thirteenth and fourteenth rounds); 448 is the largest multiple of 64 that the 640x480
# training clips hold. runs/l1: runs/k1's recipe (C = 96's stage III, rates 0,0,0.6,0.9 balanced, which left the
# carried f1x where it was at crop 256: 26.61 / 21.52 on val/) from the same f1x, at crop 448, batch 1.
source "$(dirname "$0")/common.sh"
run_to l1 1500 runs/carry/f1x-1000.pt --stage1-steps 0 --stage2-steps 0 --stage3-steps 1500 --stage3-lr 3e-5 \
  --warmup 50 --crop 0:448 --batch 1 --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9
