#!/usr/bin/env bash
# Issue 23's device check: one prepared GPU call of at most 9 minutes. From the repository root:
#   prepare, here:  bash bench/device_wheels.sh && bash bench/fashion_data.sh   (.whl/, resources/)
#   run (device):   SOURCE_COMMIT=<git rev-parse HEAD> bash bench/engine_check.sh
#                   carry [".whl", "resources/fashion-mnist"], timeout_s 600
#   smoke, here:    OUT=/tmp/ec bash bench/engine_check.sh --smoke          (CPU, tiny sizes; CI)
#                   OUT=/tmp/ec bash bench/engine_check.sh --smoke --study  (also the study's
#                   pipeline on a 2,048-image slice, bench/fashion_smoke.yaml: minutes; in a copy
#                   of the repository, as tests/test_bench.py does: it writes results/, archive/)
#   a later call:   ... bash bench/engine_check.sh --stages env,rates,concurrency,projection,study
#
# Stages, in order, each time-boxed (`timeout`) within ENGINE_LIMIT_S (540 s) for the whole call,
# so that a stage that fails or hangs leaves the others' results:
#   env         versions, GPU, commit
#   agreement   the GPU agreement tests (tests/test_gpu*.py, tests/test_graphs*.py, or the files
#               ENGINE_TESTS names); if they fail, the study runs without CUDA graphs
#               (train.cuda_graph_max_batch: 0)
#   table       issue 23's target table, side by side (bench/train_throughput.py): mnist_cnn
#               (Fashion shapes) at b = 8: the CPU-data DataLoader baseline, one run eager and
#               graphed, populations of 1, 8, 32, 128, with deterministic kernels and without,
#               and K = 32 as CBS runs (the stopping rule on the device: what it costs);
#               b = 64, populations of 32 and 128; resnet18 (CIFAR shapes) at b = 8, a population
#               of 7; resnet18 at b = 512, one run, bf16, channels_last, CUDA graph
#   paper       (only when --stages names it) the points config/paper.yaml's jobs take, ResNet-18,
#               and that grid's projected time: paper_projection.json (a few minutes)
#   rates       the points the Fashion study's jobs take (bench/projection.py --measure)
#   concurrency the study's population step in 1, 2, 4, 8 processes at once (bench/concurrency.py):
#               the fastest sets the study's train.threads (cores / processes), which the
#               projection and the study then use
#   projection  the study's projected time from those rates (bench/projection.py) and the target
#               table's verdicts (bench/targets.py)
#   study       if the projection fits in what is left of the call (or ENGINE_FORCE_STUDY=1): the
#               pipeline up to its tables and figures and `snakemake archive` without the paper
#               (no TeX on the device), snakemake from the carried wheels
# Everything (stage logs, stages.tsv, the records throughput.jsonl, pytest's output and XML,
# projection.txt/.json, targets.jsonl, the archive) goes into ONE tarball,
# $OUT/engine_check.tar.gz, packed again after every stage. At home: tar xzf it; commit the
# records (bench/results/) and archive/fashion/ (then `bin/run archive_paper --configfile
# archive/fashion/config.yaml --config source=archive` builds the paper from the archive).
# Exit status: 0 when every stage that ran passed (skipped ones included), 1 otherwise.
set -uo pipefail

smoke=0
study=1
stages=env,agreement,table,rates,concurrency,projection,study
while (($#)); do
  case $1 in
    --smoke) smoke=1 study=0 ;;
    --study) study=1 ;;
    --no-study) study=0 ;;
    --stages) stages=$2 && shift ;;
    *) echo "engine_check: unknown argument $1 (--smoke, --study, --no-study, --stages a,b)" >&2; exit 2 ;;
  esac
  shift
done
wants() { [[ ",$stages," == *",$1,"* ]]; }

out="${OUT:-results/engine_check}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/engine_check.XXXXXX")"
export PYTHONPATH="$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
start=$(date +%s)
if ((smoke)); then
  limit="${ENGINE_LIMIT_S:-900}"
  configs=(config/fashion.yaml bench/fashion_smoke.yaml)
  tt=(python3 bench/train_throughput.py --smoke)
  cores=2
else
  limit="${ENGINE_LIMIT_S:-540}"
  configs=(config/fashion.yaml)
  tt=(python3 bench/train_throughput.py --seconds 1)
  cores=16
fi
records="$work/throughput.jsonl"
tt+=(--results "$records")
reserve=10 # seconds kept for the last pack
failed=()

elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((limit - $(elapsed))); }
say() { echo "== engine_check ($(elapsed) s): $*" | tee -a "$work/engine_check.log"; }
pack() {
  tar -czf "$out/.engine_check.tar.gz" -C "$work" . && mv -f "$out/.engine_check.tar.gz" "$out/engine_check.tar.gz"
}
# box NAME SECONDS COMMAND...: COMMAND within SECONDS (or what is left of the call), its output
# in NAME.log (the last lines printed), a line in stages.tsv; then the tarball is packed again.
box() {
  local name=$1 want=$2
  shift 2
  local have=$(($(left) - reserve))
  local limit_s=$((want < have ? want : have))
  if ((limit_s < 5)); then
    say "$name: skipped, $(left) s left in the call"
    printf '%s\tskipped\t0\n' "$name" >>"$work/stages.tsv"
    return 124
  fi
  say "$name (at most $limit_s s): $*"
  local t0
  t0=$(date +%s)
  timeout -k 5 "$limit_s" "$@" >>"$work/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" >>"$work/stages.tsv"
  tail -n 30 "$work/$name.log"
  if ((rc != 0)); then
    say "$name: exit $rc$( ((rc == 124)) && echo ' (its time ran out)')"
    failed+=("$name")
  fi
  pack
  return $rc
}
finish() {
  if ((${#failed[@]})); then
    say "failed stages: ${failed[*]}; everything is in $out/engine_check.tar.gz"
    pack && rm -rf "$work"
    exit 1
  fi
  say "done; everything is in $out/engine_check.tar.gz"
  pack && rm -rf "$work"
  exit 0
}

# measure_points NAME CONFIG...: the (b, K) points the configs' jobs take (projection.py
# --measure), one train_throughput.py stage each, NAME_0, NAME_1, …
measure_points() {
  local name=$1 i=0 line extra lines
  shift
  python3 bench/projection.py --measure --config "$@" >"$work/$name.txt" ||
    say "$name: projection.py --measure failed"
  mapfile -t lines <"$work/$name.txt"
  for line in "${lines[@]}"; do
    read -ra extra <<<"$line"
    box "${name}_$i" 60 "${tt[@]}" "${extra[@]}"
    i=$((i + 1))
  done
}

override="$work/override.yaml" # no TeX on the device: the archive's paper is built at home
echo "archive_paper: false" >"$override"
say "stages $stages; $limit s in all; smoke $smoke; work folder $work"

# -- env ------------------------------------------------------------------------------------
if wants env; then
  box env 60 bash -c 'date -u; echo "commit ${SOURCE_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
    python3 -c "import sys, torch; print(sys.version.split()[0], \"torch\", torch.__version__, \"CUDA\", torch.version.cuda,
      torch.cuda.get_device_name() if torch.cuda.is_available() else \"no CUDA\")"
    echo "CPU cores: $(nproc)"; nvidia-smi 2>/dev/null || true'
fi

# -- agreement ------------------------------------------------------------------------------
if wants agreement; then
  if [[ -n "${ENGINE_TESTS:-}" ]]; then # e.g. ENGINE_TESTS="tests/test_gpu.py tests/test_population.py"
    read -ra tests <<<"$ENGINE_TESTS"
  else
    mapfile -t tests < <(compgen -G 'tests/test_gpu*.py'; compgen -G 'tests/test_graphs*.py')
  fi
  if ((${#tests[@]} == 0)); then
    say "agreement: no GPU tests in tests/"
  elif ! box agreement 150 python3 -m pytest -q -p no:cacheprovider -rfEs \
    --junitxml="$work/agreement.xml" "${tests[@]}"; then
    say "agreement failed: the study runs without CUDA graphs"
    printf 'train:\n  cuda_graph_max_batch: 0\n' >>"$override"
  fi
fi

# -- table: issue 23's targets, side by side ------------------------------------------------------
if wants table; then
  mnist=(--model mnist_cnn --dataset fashion_mnist)
  box table_mnist_b8_det 75 "${tt[@]}" "${mnist[@]}" --batch-sizes 8 --populations 1 8 32 128 --deterministic
  box table_mnist_b8_cbs 30 "${tt[@]}" "${mnist[@]}" --batch-sizes 8 --modes population --populations 32 --protocol cbs
  box table_mnist_b8_nondet 75 "${tt[@]}" "${mnist[@]}" --batch-sizes 8 --populations 1 8 32 128 --no-deterministic
  box table_mnist_b64 45 "${tt[@]}" "${mnist[@]}" --batch-sizes 64 --modes baseline graph population --populations 32 128
  box table_resnet_b8 60 "${tt[@]}" --model resnet18 --batch-sizes 8 --modes baseline graph population --populations 7
  box table_resnet_b512_bf16 45 "${tt[@]}" --model resnet18 --batch-sizes 512 --modes graph --bf16 --channels-last
fi

# -- paper (only when asked for): the article grid's rates and projection, no budget -----------------
if wants paper; then
  measure_points paper_rates config/paper.yaml
  box paper_projection 30 python3 bench/projection.py "$records" --config config/paper.yaml \
    --json "$work/paper_projection.json"
fi

# -- rates: what the Fashion study's jobs take ------------------------------------------------
if wants rates; then
  measure_points rates "${configs[@]}" "$override"
fi

# -- concurrency: how many jobs at once on the GPU; the study then runs that many -------------------
if wants concurrency; then
  # The study's population step (K = 18: config/fashion.yaml's runs at one b, as projection.py
  # --measure prints), 1, 2, 4 and 8 processes at once (bench/concurrency.py).
  conc=(python3 bench/concurrency.py --cores "$cores" --results "$work/concurrency.jsonl")
  ((smoke)) && conc+=(--smoke)
  if box concurrency 90 "${conc[@]}" -- --model mnist_cnn --dataset fashion_mnist --batch-sizes 8 \
    --modes population --populations 18; then
    best=$(sed -n 's/^fastest: \([0-9]*\) process.*/\1/p' "$work/concurrency.log" | tail -n 1)
    if [[ -n $best ]]; then # train.threads = cores / best, merged into the study's override
      threads=$((cores / best > 0 ? cores / best : 1))
      python3 -c 'import sys, yaml
path, threads = sys.argv[1], int(sys.argv[2])
cfg = yaml.safe_load(open(path)) or {}
cfg.setdefault("train", {})["threads"] = threads
yaml.safe_dump(cfg, open(path, "w"))' "$override" "$threads"
      say "concurrency: $best job(s) at once measured fastest: the study runs with train.threads $threads"
    fi
  fi
fi

# -- projection -----------------------------------------------------------------------------------
projected=2 # 0: fits the call, 3: over it, else: no projection
if wants projection; then
  # A job's fixed cost: a fresh process importing the library, opening the device, loading the set.
  t0=$(date +%s.%N)
  python3 - <<'EOF' >"$work/job_start.log" 2>&1
import torch
from sgdsmooth.data import load_dataset
from sgdsmooth.training import pick_device
device = pick_device("auto")
try:
    load_dataset("fashion_mnist", "resources").to(device)
except FileNotFoundError as err:
    print(f"(without the data set: {err})")
torch.zeros(1, device=device).sum().item()
EOF
  job_s=$(python3 -c "print(round($(date +%s.%N) - $t0 + 1.5, 1))") # + snakemake's own start of a job
  threads=$(cd bench && python3 -c "import sys; from workload import read_config
print(read_config(*sys.argv[1:])['train']['threads'])" "${configs[@]/#/../}" "$override")
  parallel=$((cores / ${threads:-1}))
  budget=$(($(left) - reserve - 30)) # the study must fit in what is left of this call
  ((budget < 0)) && budget=0
  say "a job's fixed cost: $job_s s; $parallel jobs at once; the study may take $budget s"
  shared=() # the measured gain of that many jobs at once, if the concurrency stage ran
  [[ -s $work/concurrency.jsonl ]] && shared=(--concurrency "$work/concurrency.jsonl")
  box projection 30 python3 bench/projection.py "$records" --config "${configs[@]}" "$override" \
    --job-seconds "$job_s" --parallel "$parallel" --budget-seconds "$budget" --json "$work/projection.json" \
    "${shared[@]}"
  projected=$?
  if ((projected == 3)); then # over the budget is a verdict, not a failure
    kept=()
    for name in "${failed[@]}"; do [[ $name == projection ]] || kept+=("$name"); done
    failed=("${kept[@]}")
  fi
  cp "$work/projection.log" "$work/projection.txt"
  box targets 20 python3 bench/targets.py "$records" --projection "$work/projection.json" --out "$work/targets.jsonl"
fi

# -- study ------------------------------------------------------------------------------------
if wants study; then
  experiment=$(cd bench && python3 -c "import sys; from workload import read_config
print(read_config(*sys.argv[1:])['experiment'])" "${configs[@]/#/../}") || experiment=fashion
  if ((!study)); then
    say "study: skipped (--smoke without --study)"
    finish
  fi
  if ((projected != 0)) && [[ -z "${ENGINE_FORCE_STUDY:-}" ]] && ((!smoke)); then
    say "study: skipped: the projection does not fit in this call (exit $projected); ENGINE_FORCE_STUDY=1 starts it anyway, --stages env,rates,projection,study gives it a call of its own"
    finish
  fi
  if ! python3 -c "from sgdsmooth.data import fashion_mnist_folder; fashion_mnist_folder('resources')" 2>/dev/null; then
    say "study: skipped: no Fashion-MNIST (run bench/fashion_data.sh here and carry resources/fashion-mnist)"
    failed+=(study)
    finish
  fi
  if ! python3 -c "import snakemake" 2>/dev/null; then
    if ! compgen -G ".whl/*.whl" >/dev/null; then
      say "study: skipped: no snakemake here and no .whl/ (run bench/device_wheels.sh and carry .whl)"
      failed+=(study)
      finish
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl >"$work/wheels.log" 2>&1 || { say "study: the wheels did not install"; failed+=(study); finish; }
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
  fi
  # (The target first: --configfile takes every word after it.)
  box study $(($(left) - reserve)) python3 -m snakemake archive --cores "$cores" \
    --configfile "${configs[@]}" "$override"
  if [[ -d "archive/$experiment" ]]; then
    mkdir -p "$work/archive"
    cp -r "archive/$experiment" "$work/archive/"
  else
    # What finished still comes back (small: each finished run's tables, the jobs' logs).
    mkdir -p "$work/partial"
    (cd "results/$experiment" 2>/dev/null &&
      find . \( -name '*.parquet' -o -name '*.tsv' -o -name '*.log' \) -print0 | xargs -0 -r cp --parents -t "$work/partial")
  fi
fi
finish
