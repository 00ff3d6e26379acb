#!/bin/bash
# Eighth c48 round from the carried runs/carry/r3q-2000.pt (recovery width 192): a second loss-recovery stack
# in cascade (--recovery-stages 2, starting as nothing), trained with the recovery alone weighted toward 90 % at
# 1e-4 (at 3e-4 and r3o's rates, runs/r3t, a spike at steps 750-1,000 cost it the round).
# Resumes from runs/r3u/last.pt; skipped once its avg file exists.
cd /work/main
COMMON=(--data ../shared/data/train ../shared/data/train/*.avi ../shared/data/train/*.mkv
  --exclude openmpf_flickr_conference_people.mp4 blender_sintel_excerpt.mp4 derf_tractor_field.mp4
  --val ../shared/data/train/more/{openmpf_flickr_conference_people,blender_sintel_excerpt,derf_tractor_field}.mp4
  --val-size 640x360 --val-gops 3 --val-every 250 --save-every 50 --clip-cache runs/clip-cache
  --precision bf16 --threads 2 --resume)
R=(--stage1-steps 0 --stage2-steps 2500 --recovery-only --recovery-stages 2 --rates 0.6,0.9,0.9,0.9 --lr 1e-4
  --warmup 100 --crop 0:256 --batch 4 --ema 0.998)
avg() { python -c "import torch; c = torch.load('runs/$1/last.pt', weights_only=False); torch.save({'config': c['config'], 'step': c['step'], 'state_dict': {k.removeprefix('module.'): v for k, v in c['average'].items() if k != 'n_averaged'}}, 'runs/$1/avg-$2.pt')"; }
[ -f runs/r3u/avg-2500.pt ] || { python tools/train.py --init runs/carry/r3q-2000.pt "${COMMON[@]}" "${R[@]}" --out runs/r3u && avg r3u 2500; }
