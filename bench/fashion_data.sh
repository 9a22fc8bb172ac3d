#!/usr/bin/env bash
# Put Fashion-MNIST's four idx files in resources/fashion-mnist/ (git-ignored), where the
# loader looks first, so that a device call can carry them (31 MB). From Debian's
# dataset-fashion-mnist, or from the folder given as $1.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-/usr/share/datasets/fashion-mnist}"
mkdir -p resources/fashion-mnist
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [[ -f "$src/$f" ]] || { echo "fashion_data: $src/$f is missing: apt-get install dataset-fashion-mnist" >&2; exit 1; }
  cp -p "$src/$f" resources/fashion-mnist/
done
du -sh resources/fashion-mnist
