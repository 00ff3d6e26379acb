#!/bin/bash
# Capacity: Table II's mid-c48 (two Swin blocks per stage, the second with shifted windows) grown from the
# shipped mstvsc-small-c48@888de422 (recovery: two 192-wide stacks): the added blocks start as the identity,
# so the run starts at the shipped picture. Stage I (lossless; encoder, decoder and the new blocks) first.
# Resumes from runs/d1/last.pt; skipped once its avg file exists.
cd /work/main
COMMON=(--data ../shared/data/train ../shared/data/train/*.avi ../shared/data/train/*.mkv
  --exclude openmpf_flickr_conference_people.mp4 blender_sintel_excerpt.mp4 derf_tractor_field.mp4
  --val ../shared/data/train/more/{openmpf_flickr_conference_people,blender_sintel_excerpt,derf_tractor_field}.mp4
  --val-size 640x360 --val-gops 3 --val-every 250 --save-every 50 --clip-cache runs/clip-cache
  --precision bf16 --threads 2 --resume)
S1=(--config mid-c48 --recovery-width 192 --recovery-stages 2 --stage1-steps 3000 --stage2-steps 0 --lr 1e-4
  --warmup 100 --crop 0:192 --batch 8 --ema 0.998)
avg() { python -c "import torch; c = torch.load('runs/$1/last.pt', weights_only=False); torch.save({'config': c['config'], 'step': c['step'], 'state_dict': {k.removeprefix('module.'): v for k, v in c['average'].items() if k != 'n_averaged'}}, 'runs/$1/avg-$2.pt')"; }
[ -f runs/d1/avg-3000.pt ] || { python tools/train.py --init models/mstvsc-small-c48/weights.pt "${COMMON[@]}" "${S1[@]}" --out runs/d1 && avg d1 3000; }
