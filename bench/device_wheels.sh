#!/usr/bin/env bash
# Wheels that let the lent device machine run snakemake. Its image has Python 3.12, torch,
# pandas and the packages in DEVICE_IMAGE below, but no snakemake and no network.
#   prepare here:        bash bench/device_wheels.sh                 (into .whl/, git-ignored)
#   use there:           python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
#                        export PYTHONPATH=/tmp/site:$PWD/workflow:$PYTHONPATH   (then: python3 -m snakemake ...)
#   carry:               run tool's carry: [".whl"]
#   this machine's test: DEVICE_WHEELS_LOCAL=1 bash bench/device_wheels.sh /tmp/wl
#                        (the same list for this machine's Python, to install in a venv that
#                        stands in for the device image)
#   the lists:           bash bench/device_wheels.sh --list   (tests/test_device_wheels.py reads it)
# Pure-Python packages that PyPI has only as source (SDIST_ONLY) are built into wheels here.
# $1: the folder (default .whl). Wheels in it that are not in the list are removed, so that
# one version of each package is installed. The total must stay under LIMIT_MIB: the device
# tool carries 64 MiB at most, the data set included.
set -euo pipefail

# --- the lists: the one place that says what goes to the device ---------------------------
# Versions are those of the project's venv (tests/test_device_wheels.py checks that they are,
# and that every requirement of snakemake, followed through its dependencies, is here, in
# DEVICE_IMAGE or in LEFT_OUT).
WHEELS=(
  snakemake==9.27.1
  snakemake-interface-common==1.23.0
  snakemake-interface-executor-plugins==9.4.0
  snakemake-interface-logger-plugins==2.1.0
  snakemake-interface-report-plugins==1.3.0
  snakemake-interface-scheduler-plugins==2.0.2
  snakemake-interface-storage-plugins==4.4.1
  annotated-types==0.8.0
  argparse-dataclass==2.0.0
  configargparse==1.9.0
  connection-pool==0.0.3
  dpath==2.2.0
  fastjsonschema==2.22.3
  greenlet==3.5.6
  humanfriendly==10.0
  immutables==0.21
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  jupyter-core==5.9.1
  nbformat==5.11.1   # with fastjsonschema, jupyter-core, traitlets: every script: directive imports it
  platformdirs==4.14.8
  pydantic==2.14.4
  pydantic-core==2.50.5
  referencing==0.37.0
  rpds-py==2026.9.1
  smart-open==7.7.1
  sqlalchemy==2.0.58
  sqlmodel==0.0.37
  tenacity==9.2.1
  throttler==1.2.3
  traitlets==5.16.1
  typing-inspection==0.4.5
  yte==1.9.4
  # In the image too, but pydantic and pydantic-core require >= 4.16.0: an image with an
  # older one would break their import. /tmp/site comes first on PYTHONPATH.
  typing-extensions==4.16.0
)

# Requirements of snakemake that are left out (with their own dependencies), and why. Each is
# imported only inside the feature that needs it, so a workflow runs without them.
LEFT_OUT=(
  # ILP scheduler (16 MB with its bundled CBC solver). Without it snakemake warns "Falling
  # back to greedy scheduler because no ILP solver is found" and runs greedily; pass
  # --scheduler greedy to skip the warning.
  pulp
  docutils                        # --report only
  gitpython                       # Snakefiles or scripts read from git repositories only
  conda-inject                    # a global conda: directive with --sdm conda only
)

# The device image's packages (its pip list, names only): not downloaded.
DEVICE_IMAGE=(
  absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
  botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
  coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
  diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
  frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
  hypothesis idna imageio iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib
  kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml
  markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
  multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numpy
  numpyro onnx onnxruntime opencv-python-headless optax opt-einsum orbax-checkpoint packaging
  pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
  protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks
  pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
  python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
  scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
  sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels
  sympy tabulate tensorboard tensorstore threadpoolctl tifffile tiktoken timm tokenizers
  toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
  transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
  wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
)
# In WHEELS, but PyPI has only its source (pure Python): built into a py3-none-any wheel here.
SDIST_ONLY=(connection-pool)
LIMIT_MIB=30
# -------------------------------------------------------------------------------------------

if [[ "${1:-}" == "--list" ]]; then
  printf 'wheel %s\n' "${WHEELS[@]}"
  printf 'left-out %s\n' "${LEFT_OUT[@]}"
  printf 'image %s\n' "${DEVICE_IMAGE[@]}"
  exit 0
fi

cd "$(dirname "$0")/.."
dest="${1:-.whl}"
mkdir -p "$dest"

norm() { tr 'A-Z_.' 'a-z--' <<<"$1"; }   # a distribution name as PEP 503 compares it

# Remove wheels of other versions or packages, so `pip install .whl/*.whl` sees one of each.
declare -A wanted=()
for spec in "${WHEELS[@]}"; do wanted["$(norm "${spec%%==*}")==${spec#*==}"]=1; done
shopt -s nullglob
for f in "$dest"/*.whl; do
  IFS=- read -r name version _ <<<"$(basename "$f")"
  [[ -n "${wanted["$(norm "$name")==$version"]:-}" ]] || { echo "removing $f"; rm -f "$f"; }
done

if [[ -n "${DEVICE_WHEELS_LOCAL:-}" ]]; then
  target=()   # this machine's Python and platform: for a local stand-in of the device
else
  target=(--python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
          --platform manylinux1_x86_64)
fi
binary=() built=()
for spec in "${WHEELS[@]}"; do
  if [[ " ${SDIST_ONLY[*]} " == *" ${spec%%==*} "* ]]; then built+=("$spec"); else binary+=("$spec"); fi
done
python3 -m pip download -q --no-deps --only-binary=:all: "${target[@]}" -d "$dest" "${binary[@]}"
python3 -m pip wheel -q --no-deps -w "$dest" "${built[@]}"

files=("$dest"/*.whl)
if (( ${#files[@]} != ${#WHEELS[@]} )); then
  echo "expected ${#WHEELS[@]} wheels in $dest, found ${#files[@]}" >&2
  exit 1
fi
bytes=$(cat "${files[@]}" | wc -c)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "${#files[@]} wheels in $dest: $mib MiB"
if (( bytes > LIMIT_MIB * 1048576 )); then
  echo "over the $LIMIT_MIB MiB budget" >&2
  exit 1
fi
