#!/bin/bash
# Eighteenth round, after runs/h2: the deeper decoder's stage II end, then stage III (everything trained, the wire's
# rounding straight through, rates weighted toward lossless GOPs and balanced), so the encoder learns what the
# deeper decoder can use, as stage III made C = 96's new channels pay (runs/c96a). Needs runs/h2/avg-2000.pt.
source "$(dirname "$0")/common.sh"
INIT=runs/h2/avg-2000.pt
[ -f "$INIT" ] || { echo "run-h3.sh: $INIT is gone with runs/ (run-h2.sh makes it)"; exit 1; }
run_to h3 2000 "$INIT" --stage1-steps 0 --stage2-steps 0 --stage3-steps 2000 --stage3-lr 3e-5 --warmup 50 \
  --crop 0:256 --batch 2 --ema 0.998 --balanced-rates --stage3-rates 0,0,0.6,0.9
