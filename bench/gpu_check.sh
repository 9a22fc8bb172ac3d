#!/usr/bin/env bash
# The prepared device check of issue 7, for a session that is lent a GPU. From the repo root:
#   run (device tool):  bash bench/gpu_check.sh        timeout_s ≈ 580 (the steps' own limits add to 540)
# The device machine runs its image's python3 (torch with CUDA, pandas, pyarrow, pytest,
# scikit-learn): the project goes on PYTHONPATH, nothing is installed. Results go to $OUT.
set -euo pipefail
export PYTHONPATH="$PWD/workflow"
out="${OUT:-bench/results}"
mkdir -p "$out"
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'

# 1. Agreement first: CUDA vs CPU steps, fused vs separate on CUDA, the speed options,
#    CUDA-graph replay vs eager steps (single, fused, whole CBS runs).
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_graphs.py 2>&1 | tee "$out/agreement.txt" || true

# 2. Throughput: (a) DataLoader baseline, (b) one run, (c) 7 runs fused; b ∈ {8, 64, 512, 4096}.
timeout 240 python3 bench/train_throughput.py --results "$out/train_throughput.jsonl" 2>&1 | tee "$out/throughput.txt"

# 3. The speed options where they matter most: CUDA graphs at small b, bf16 at large b.
timeout 60 python3 bench/train_throughput.py --channels-last --cuda-graph --batch-sizes 8 64 --steps 20 \
  --results "$out/train_throughput.jsonl" 2>&1 | tee "$out/throughput_graph.txt" || true
timeout 45 python3 bench/train_throughput.py --channels-last --bf16 --batch-sizes 512 --steps 20 \
  --results "$out/train_throughput.jsonl" 2>&1 | tee "$out/throughput_bf16.txt" || true

# 4. Adaptive sharpness of one ResNet-18 on 1024 images.
timeout 45 python3 bench/sharpness_speed.py --resnet 2>&1 | tee "$out/sharpness.txt"
