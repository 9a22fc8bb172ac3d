#!/usr/bin/env bash
# The Fashion-MNIST study (issue 14, config/fashion.yaml) on a lent GPU, in one device call.
# From the repository root:
#   prepare, here:   bash bench/device_wheels.sh && bash bench/fashion_data.sh
#   run (device):    bash bench/fashion_study.sh     carry [".whl", "resources/fashion-mnist"],
#                    timeout_s 590 (the pipeline's own limit is what is left of FASHION_LIMIT_S)
#   smoke, here:     source .venv/bin/activate; FASHION_SMOKE=1 OUT=/tmp/fs bash bench/fashion_study.sh
#                    (in a copy of the repository, as tests/test_bench.py does: it writes archive/)
# SOURCE_COMMIT=<hash> in front of the device command records the commit in the archive's
# stamp: the device's copy of the tree has no .git.
# The smoke mode runs every step on the CPU on a 2,048-image slice (bench/fashion_smoke.yaml);
# tests/test_bench.py runs it in CI, so a broken step shows up here and not on the device.
#
# Steps: snakemake from the carried wheels (the device image has none); the data checked;
# on a GPU, the agreement tests of the speed options the config uses (CUDA graphs, fused
# packs), which are switched off if they fail; this device's training rates and the study's
# projected time (steps, evaluation and gradient passes, job starts, the analysis after), and a
# stop (exit 3) if it exceeds FASHION_BUDGET_S (480 s) or the time left in the call, unless
# FASHION_FORCE=1; then the pipeline up to its tables and figures, and `snakemake archive`
# with archive_paper: false: archive/<experiment>/ without the paper (no TeX on the device),
# copied to $OUT. At home: copy that folder to archive/, then
#   bin/run archive_paper --configfile config/fashion.yaml --config source=archive
# builds the paper from it without training and puts it in the archive.
set -uo pipefail
out="${OUT:-results/fashion_study}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
start=$(date +%s)
export PYTHONPATH="$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
say() { echo "== fashion_study ($(($(date +%s) - start)) s): $*"; }

if [[ -n "${FASHION_SMOKE:-}" ]]; then
  configs=(config/fashion.yaml bench/fashion_smoke.yaml)
  experiment=fashion_smoke
  rates=(--batch-sizes 256 --steps 2 --images 2048 --members 2)
  cores=2
else
  configs=(config/fashion.yaml)
  experiment=fashion
  rates=(--batch-sizes 8 64 512 4096 --steps 60 --images 60000 --members 3)
  cores=16
fi
# device: auto, so jobs ask for no gpu resource: they share the one GPU, --cores / train.threads
# at a time (config/fashion.yaml: 16 / 2 = 8).
limit="${FASHION_LIMIT_S:-570}"  # the whole call; the pipeline gets what the steps before it left
budget="${FASHION_BUDGET_S:-480}"

# 0. Snakemake from the wheels bench/device_wheels.sh prepared, where it is not installed.
if ! python3 -c "import snakemake" 2>/dev/null; then
  if ! compgen -G ".whl/*.whl" >/dev/null; then
    say "no snakemake here and no .whl/: run bench/device_wheels.sh and carry .whl"
    exit 2
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
    exit 2
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
python3 -m snakemake --version >"$out/snakemake_version.txt" 2>&1 || { cat "$out/snakemake_version.txt"; exit 2; }
echo "snakemake $(cat "$out/snakemake_version.txt")"

# 1. The data: the carried copy (resources/fashion-mnist/) or Debian's, every file's SHA-256
#    and header checked by the loader itself.
say "data"
python3 - <<'EOF' || exit 2
import torch
from sgdsmooth.data import fashion_mnist_folder, load_dataset
data = load_dataset("fashion_mnist", "resources")
print(f"{fashion_mnist_folder('resources')}: {data.n_train} training and {data.test_x.shape[0]} test images, "
      f"classes {torch.bincount(data.train_y).tolist()}; torch {torch.__version__}, "
      f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA'}")
EOF

# 2. On a GPU, the speed options the config uses must compute what the plain path computes.
override="$out/override.yaml"  # no TeX on the device: the archive's paper is built at home
echo "archive_paper: false" >"$override"
if python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  say "agreement of CUDA graphs and fused packs with the plain path"
  # Only what this config uses: fused packs and CUDA graphs in fp32 (not bf16, channels_last).
  if ! timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_graphs.py \
    -k "fused or graph or cuda_steps_match_cpu" >"$out/agreement.txt" 2>&1; then
    tail -20 "$out/agreement.txt"
    say "agreement failed: the study runs without CUDA graphs and fused packs"
    printf 'train:\n  cuda_graph_max_batch: 0\n  fuse_max_batch: 0\n' >>"$override"
  fi
  tail -1 "$out/agreement.txt"
fi
# The study's config as the workflow will see it (bench/workload.read_config merges the files
# as --configfile does): whether it replays CUDA graphs, and how many jobs share the GPU.
read -r graphed threads < <(cd bench && python3 -c "import sys; from workload import read_config
t = read_config(*sys.argv[1:])['train']; print(int(t['cuda_graph_max_batch'] > 0), t['threads'])" \
  "${configs[@]/#/../}" "$override") || exit 4
graph=()
((graphed)) && graph=(--cuda-graph)
parallel=$((cores / threads))

# 3. This device's rates for the config's model, and the study's projected time from them.
say "training rates on this device, and the projection"
python3 bench/train_throughput.py --model mnist_cnn --dataset fashion_mnist --no-baseline "${graph[@]}" \
  "${rates[@]}" --config '' --results "$out/train_throughput.jsonl" || exit 4
# A job's fixed cost: a fresh process importing the library, opening the device, loading the set.
t0=$(date +%s.%N)
python3 -c "import torch; from sgdsmooth import train; from sgdsmooth.data import load_dataset
load_dataset('fashion_mnist', 'resources').to(train.pick_device('auto')); torch.zeros(1).sum().item()" || exit 4
job_s=$(python3 -c "print(round($(date +%s.%N) - $t0 + 1.5, 1))")  # + snakemake's own start of a job
# The budget: FASHION_BUDGET_S, or what is left of this call if that is less.
left=$((limit - ($(date +%s) - start) - 20))
((left < budget)) && budget=$left
python3 bench/projection.py "$out/train_throughput.jsonl" --config "${configs[@]}" "$override" \
  --job-seconds "$job_s" --parallel "$parallel" --budget-seconds "$budget" | tee "$out/projection.txt"
projected=${PIPESTATUS[0]}
if ((projected == 3)); then
  if [[ -z "${FASHION_SMOKE:-}${FASHION_FORCE:-}" ]]; then
    say "the projection exceeds $budget s: not starting the study (FASHION_FORCE=1 starts it anyway)"
    exit 3
  fi
elif ((projected != 0)); then
  say "the projection failed (exit $projected)"
  exit 4
fi

# 4. The pipeline, up to the tables and figures, and their archive (no paper: no TeX here).
left=$((limit - ($(date +%s) - start) - 20))
if ((left < 60)); then
  say "only $left s left for the pipeline: not starting it"
  exit 6
fi
say "the pipeline (at most $left s): ${configs[*]}"
# (The target first: --configfile takes every word after it.)
timeout "$left" python3 -m snakemake archive --cores "$cores" --configfile "${configs[@]}" "$override" \
  >"$out/snakemake.log" 2>&1
rc=$?
tail -25 "$out/snakemake.log"
if [[ -d "archive/$experiment" ]]; then
  mkdir -p "$out/archive"
  rm -rf "${out:?}/archive/$experiment"
  cp -r "archive/$experiment" "$out/archive/"
fi
if [[ $rc -ne 0 ]]; then
  # What finished still comes back (small: tables and logs, each finished run's tables and
  # the jobs' benchmarks; no weights), for a later call or for a look.
  mkdir -p "$out/partial"
  (cd "results/$experiment" 2>/dev/null &&
    find . \( -name '*.parquet' -o -name '*.tsv' -o -name '*.log' \) -print0 | xargs -0 -r cp --parents -t "$out/partial")
  say "the pipeline failed (exit $rc): $out/snakemake.log"
  exit 5
fi
say "done: $out/archive/$experiment"
