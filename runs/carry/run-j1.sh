#!/bin/bash
# Twentieth round, a bound: how far does the default's 90 % move when its decoder (synthesis and loss recovery)
# is trained for heavy loss alone, the encoder frozen (stage II at rate 0.9)? From the carried f1x-1000.pt
# (val/ 26.60 / 21.51). If far (+0.3), a receiver that decodes each GOP with the decoder trained for its loss
# would pay; if not, the 90 % end is the encoder's too.
source "$(dirname "$0")/common.sh"
run_to j1 750 runs/carry/f1x-1000.pt --stage1-steps 0 --stage2-steps 750 --lr 1e-4 --warmup 50 \
  --crop 0:256 --batch 4 --ema 0.998 --rates 0.9
