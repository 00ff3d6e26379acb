#!/bin/bash
# After runs/d1's stage I (mid-c48 grown from the ship): the loss recovery alone re-tuned to the new latents
# (runs/d1r; --recovery-only freezes encoder and synthesis, so the lossless picture stage I gained, +0.25 dB on
# val/ at step 1,500, cannot move), as the eighth round trained the ship's. Judge runs/d1r/avg-2500.pt with
# tools/ship_model.py --compare on val/ at 0 / 30 / 60 / 90 %.
# Argument: the stage-I weights (default runs/d1/avg-3000.pt; the carried runs/carry/d1-*.pt if runs/ was lost).
# Resumes from runs/d1r/last.pt; skipped once its avg file exists.
cd /work/main
INIT=${1:-runs/d1/avg-3000.pt}
while pgrep -f "out runs/d1( |$)" > /dev/null; do sleep 20; done
COMMON=(--data ../shared/data/train ../shared/data/train/*.avi ../shared/data/train/*.mkv
  --exclude openmpf_flickr_conference_people.mp4 blender_sintel_excerpt.mp4 derf_tractor_field.mp4
  --val ../shared/data/train/more/{openmpf_flickr_conference_people,blender_sintel_excerpt,derf_tractor_field}.mp4
  --val-size 640x360 --val-gops 3 --val-every 250 --save-every 50 --clip-cache runs/clip-cache
  --precision bf16 --threads 2 --resume)
R=(--stage1-steps 0 --stage2-steps 2500 --recovery-only --rates 0.3,0.6,0.9,0.9 --lr 1e-4 --warmup 50 --crop 0:256
  --batch 4 --ema 0.998)
avg() { python -c "import torch; c = torch.load('runs/$1/last.pt', weights_only=False); torch.save({'config': c['config'], 'step': c['step'], 'state_dict': {k.removeprefix('module.'): v for k, v in c['average'].items() if k != 'n_averaged'}}, 'runs/$1/avg-$2.pt')"; }
[ -f runs/d1r/avg-2500.pt ] || { python tools/train.py --init "$INIT" "${COMMON[@]}" "${R[@]}" --out runs/d1r && avg d1r 2500; }
