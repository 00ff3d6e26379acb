#!/bin/bash
# Eighth c48 round from the carried runs/carry/r3q-2000.pt (recovery width 192): stage III at a higher peak rate
# than the last two (1e-4, 3,000 steps: at 3e-5 it had levelled), then the recovery alone weighted toward 90 %
# (r3q's rates). Each run resumes from its last.pt; finished runs are skipped by their avg files.
cd /work/main
COMMON=(--data ../shared/data/train ../shared/data/train/*.avi ../shared/data/train/*.mkv
  --exclude openmpf_flickr_conference_people.mp4 blender_sintel_excerpt.mp4 derf_tractor_field.mp4
  --val ../shared/data/train/more/{openmpf_flickr_conference_people,blender_sintel_excerpt,derf_tractor_field}.mp4
  --val-size 640x360 --val-gops 3 --val-every 250 --save-every 50 --clip-cache runs/clip-cache
  --precision bf16 --threads 2 --resume)
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 3000 --stage3-rates 0,0,0,0.3,0.6,0.9 --stage3-lr 1e-4
  --warmup 100 --crop 0:256 --batch 2 --ema 0.998)
R=(--stage1-steps 0 --stage2-steps 2000 --recovery-only --rates 0.6,0.9,0.9,0.9 --lr 2e-4 --warmup 50 --crop 0:256 --batch 4 --ema 0.998)
avg() { python -c "import torch; c = torch.load('runs/$1/last.pt', weights_only=False); torch.save({'config': c['config'], 'step': c['step'], 'state_dict': {k.removeprefix('module.'): v for k, v in c['average'].items() if k != 'n_averaged'}}, 'runs/$1/avg-$2.pt')"; }
[ -f runs/s3p/avg-3000.pt ] || { python tools/train.py --init runs/carry/r3q-2000.pt "${COMMON[@]}" "${S3[@]}" --out runs/s3p && avg s3p 3000; }
[ -f runs/r3s/avg-2000.pt ] || { python tools/train.py --init runs/s3p/avg-3000.pt "${COMMON[@]}" "${R[@]}" --out runs/r3s && avg r3s 2000; }
