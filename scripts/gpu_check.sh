#!/usr/bin/env bash
# The one device call of issue 18, run from the repository root on the GPU machine, after
# scripts/gpu_check_prepare.sh here (its .data/ and .whl/ carried):
#   bash scripts/gpu_check.sh [gpu_check.py options]
# Installs the packages the GPU image lacks, runs scripts/gpu_check.py on the carried data, and packs what it wrote
# into $OUT (the device tool brings back at most 8 files): gpu-check.tar.gz (everything but checkpoints), and
# summary.json and suite.md beside it to read at once.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f .whl/install.sh ]; then
    # shellcheck disable=SC1091
    source .whl/install.sh || exit 1
fi
export WANDB_MODE=disabled ATTNBENCH_DATA_DIR="${ATTNBENCH_DATA_DIR:-$PWD/.data}"
export ATTNBENCH_CACHE_DIR="${ATTNBENCH_CACHE_DIR:-/tmp/attnbench-cache}"
work=/tmp/gpu-check
dest="${OUT:-/tmp/gpu-check-out}"
python3 scripts/gpu_check.py --out "$work" --data "$ATTNBENCH_DATA_DIR" "$@"
code=$?
mkdir -p "$dest"
tar -czf "$dest/gpu-check.tar.gz" --exclude='*.ckpt' --exclude='wandb' -C "$work" .
cp "$work/summary.json" "$work/suite.md" "$dest/" 2>/dev/null
exit $code
