# Sourced by the run-*.sh scripts here: the data, held-out split, checkpointing and precision every carried run
# shares, and run_to, which trains one run and saves its weight average (average.py).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
COMMON=(--data ../shared/data/train ../shared/data/train/*.avi ../shared/data/train/*.mkv
  --exclude openmpf_flickr_conference_people.mp4 blender_sintel_excerpt.mp4 derf_tractor_field.mp4
  --val ../shared/data/train/more/{openmpf_flickr_conference_people,blender_sintel_excerpt,derf_tractor_field}.mp4
  --val-size 640x360 --val-gops 3 --val-every 250 --save-every 50 --clip-cache runs/clip-cache
  --precision bf16 --threads 2 --resume)
# run_to RUN STEP INIT ARGS...: train runs/RUN from INIT with COMMON and ARGS, then save the weight average of its
# last.pt as runs/RUN/avg-STEP.pt; nothing if that average exists.
run_to() {
  local run=$1 step=$2 init=$3; shift 3
  [ -f "runs/$run/avg-$step.pt" ] || {
    python tools/train.py --init "$init" "${COMMON[@]}" "$@" --out "runs/$run" && python runs/carry/average.py "$run" "$step"
  }
}
