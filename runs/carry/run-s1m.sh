#!/bin/bash
# Tenth round, back on the default's architecture (mid-c48 runs 2.7-2.9x slower, docs/training.md "The ninth
# round, continued"): one more stage I + II (s1m) and stage III (s3o) of small-c48 from the shipped 888de422,
# the recipe of the sixth round (runs/s1l, runs/s3m). Resumes each run from its last.pt; skips a finished one.
cd /work/main
COMMON=(--data ../shared/data/train ../shared/data/train/*.avi ../shared/data/train/*.mkv
  --exclude openmpf_flickr_conference_people.mp4 blender_sintel_excerpt.mp4 derf_tractor_field.mp4
  --val ../shared/data/train/more/{openmpf_flickr_conference_people,blender_sintel_excerpt,derf_tractor_field}.mp4
  --val-size 640x360 --val-gops 3 --val-every 250 --save-every 50 --clip-cache runs/clip-cache
  --precision bf16 --threads 2 --resume)
S12=(--stage1-steps 1200 --stage2-steps 1000 --lr 5e-5 --warmup 100 --crop 0:192,1200:256 --batch 0:8,1200:2 --ema 0.998)
S3=(--stage1-steps 0 --stage2-steps 0 --stage3-steps 3000 --stage3-rates 0,0,0.3,0.6,0.9,0.9 --stage3-lr 3e-5
  --warmup 50 --crop 0:256 --batch 2 --ema 0.998)
avg() { python -c "import torch; c = torch.load('runs/$1/last.pt', weights_only=False); torch.save({'config': c['config'], 'step': c['step'], 'state_dict': {k.removeprefix('module.'): v for k, v in c['average'].items() if k != 'n_averaged'}}, 'runs/$1/avg-$2.pt')"; }
while pgrep -f "out runs/d1s( |$)" > /dev/null; do sleep 20; done
[ -f runs/s1m/avg-2200.pt ] || { python tools/train.py --init models/mstvsc-small-c48/weights.pt "${COMMON[@]}" "${S12[@]}" --out runs/s1m && avg s1m 2200; }
[ -f runs/s3o/avg-3000.pt ] || { python tools/train.py --init runs/s1m/avg-2200.pt "${COMMON[@]}" "${S3[@]}" --out runs/s3o && avg s3o 3000; }
