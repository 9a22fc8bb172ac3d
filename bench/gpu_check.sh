#!/usr/bin/env bash
# The prepared device check of issue 7, for a session that is lent a GPU. From the repo root:
#   run (device tool):  bash bench/gpu_check.sh        timeout_s 600 (the steps' own limits add to 580)
#   here, on the CPU:   GPU_CHECK_SMOKE=1 OUT=/tmp/gc bash bench/gpu_check.sh
# The second runs every step at toy sizes, so a renamed flag or a broken import shows up in
# CI (tests/test_bench.py) and not on the rarely lent device. The device machine runs its
# image's python3 (torch with CUDA, pandas, pyarrow, pytest, pyyaml): the project goes on
# PYTHONPATH, nothing is installed. Outputs go to $OUT, one NAME.txt per step. A failed or
# timed-out step does not stop the later ones (device time is too scarce to rerun for one);
# the exit status says whether any failed.
set -uo pipefail
export PYTHONPATH="$PWD/workflow"
out="${OUT:-bench/results}"
mkdir -p "$out"
failed=()

# step NAME SECONDS COMMAND...: run COMMAND within SECONDS, its output also in $out/NAME.txt.
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most $limit s): $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
  [[ ${PIPESTATUS[0]} -eq 0 ]] || failed+=("$name")
}

if [[ -n "${GPU_CHECK_SMOKE:-}" ]]; then
  # argparse keeps the last value of a repeated flag: these shrink every benchmark below.
  toy=(--model small_cnn --images 512 --steps 2 --batch-sizes 8)
  resnet=()
  grid=config/config.yaml
else
  toy=()
  resnet=(--resnet)
  grid=config/paper.yaml
fi
tt=(python3 bench/train_throughput.py --results "$out/train_throughput.jsonl")

python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")'

# 1. Agreement first: CUDA vs CPU steps, fused vs separate on CUDA, the speed options,
#    CUDA-graph replay vs eager steps (single, fused, whole CBS runs).
step agreement 140 python3 -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_graphs.py

# 2. Throughput: (a) DataLoader baseline, (b) one run, (c) 7 runs fused; b ∈ {8, 64, 512, 4096}.
step throughput 230 "${tt[@]}" "${toy[@]}"

# 3. The speed options where they matter most: CUDA graphs at small b, bf16 at large b
#    (a part of the grid each, so no projection: --config '').
step throughput_graph 60 "${tt[@]}" --channels-last --cuda-graph --batch-sizes 8 64 --steps 20 --config '' "${toy[@]}"
step throughput_bf16 45 "${tt[@]}" --channels-last --bf16 --batch-sizes 512 --steps 20 --config '' "${toy[@]}"

# 4. The projection reads a fused job's rate off the 7-member packs at the same images per
#    step: a Figure 8 group of 28 members at b = 2 as 7 members at b = 8. Measure it.
step pack28 40 "${tt[@]}" --members 28 --batch-sizes 2 --steps 20 --config '' "${toy[@]}"

# 5. Adaptive sharpness of one ResNet-18 on 1024 images.
step sharpness 45 python3 bench/sharpness_speed.py "${resnet[@]}"

# 6. The grid's GPU time at the fastest fp32 rate measured at each point above.
step projection 20 python3 bench/projection.py "$out/train_throughput.jsonl" --config "$grid"

if ((${#failed[@]})); then
  echo "gpu_check: failed steps: ${failed[*]}"
  exit 1
fi
echo "gpu_check: every step passed"
