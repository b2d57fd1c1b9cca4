#!/usr/bin/env bash
# Here, before the one device call of issue 18: what the GPU machine needs besides the checkout, in the git-ignored
# folders the call carries (.data/, .whl/). The device tool moves 64 MiB in all, the checkout included (~36 MiB,
# most of it results/), so CNN/DM's training file is cut to its first CNNDM_TRAIN articles (default 6000; the check
# scales the measured training time to the protocol's 30,000) and W&B's 20 MB wheel stays behind (the check's runs
# have W&B disabled and attnbench imports wandb only when it is on).
#   bash scripts/gpu_check_prepare.sh [../shared]
# then, with the device tool: run(command="bash scripts/gpu_check.sh", carry=[".data", ".whl"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
articles=${CNNDM_TRAIN:-6000}
rm -rf .data .whl
mkdir -p .data/summarization/cnn_dailymail .whl
cp -r "$shared/data/sentiment" "$shared/data/translation" "$shared/data/README.md" .data/
src="$shared/data/summarization/cnn_dailymail"
cp "$src/meta.json" "$src/validation.jsonl.gz" "$src/test.jsonl.gz" .data/summarization/cnn_dailymail/
(zcat "$src/train.jsonl.gz" | head -n "$articles" || true) | gzip -9 > .data/summarization/cnn_dailymail/train.jsonl.gz
cp "$shared"/device-wheels/* .whl/
rm -f .whl/wandb-*.whl
chmod -R u+w .data .whl
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
carried=$(du -cb .data .whl | tail -1 | cut -f1)
echo "carry .data .whl: $((carried / 1024 / 1024)) MiB; checkout $((tracked / 1024 / 1024)) MiB; limit 64 MiB"
[ $((tracked + carried)) -lt $((64 * 1024 * 1024)) ] || { echo "over the device tool's 64 MiB: lower CNNDM_TRAIN" >&2; exit 1; }
