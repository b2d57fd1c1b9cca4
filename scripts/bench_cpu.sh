#!/usr/bin/env bash
# The CPU speed measurements behind the CPU protocol (README, "Speed on a CPU"): every figure is a ratio measured
# side by side in one process on the same stored batches (attnbench harness), written to results/bench/.
#   bash scripts/bench_cpu.sh [out-folder]        (about 30 minutes on a 2-core machine; nothing else should run)
set -euo pipefail
OUT=${1:-results/bench}
H=(attnbench harness trainer.accelerator=cpu)
SST_RNN=(task=sentiment model=rnn attention=additive)
SST_TF=(task=sentiment model=transformer attention=multihead attention.heads=4)
MT_RNN=(task=translation model=rnn attention=additive)
MT_TF=(task=translation model=transformer attention=multihead attention.heads=4)

# bf16 autocast vs fp32 (what trainer.precision=auto now picks on a CPU with native bf16)
"${H[@]}" "${SST_RNN[@]}" --steps 200 --warmup 20 --compare trainer.precision=32-true,bf16-mixed --out "$OUT"
"${H[@]}" "${SST_TF[@]}" --steps 200 --warmup 20 --compare trainer.precision=32-true,bf16-mixed --out "$OUT"
"${H[@]}" "${MT_RNN[@]}" --steps 100 --warmup 20 --compare trainer.precision=32-true,bf16-mixed --out "$OUT"
"${H[@]}" "${MT_TF[@]}" --steps 100 --warmup 20 --compare trainer.precision=32-true,bf16-mixed --out "$OUT"
# torch.compile (inductor, C++ on a CPU), in the auto precision
"${H[@]}" "${SST_TF[@]}" --steps 200 --warmup 40 --compare trainer.compile=false,true --out "$OUT"
"${H[@]}" "${MT_TF[@]}" --steps 100 --warmup 40 --compare trainer.compile=false,true --out "$OUT"
# the Lightning harness vs a plain PyTorch loop, auto precision
"${H[@]}" "${SST_RNN[@]}" --steps 200 --warmup 20 --out "$OUT"
"${H[@]}" "${MT_TF[@]}" --steps 100 --warmup 20 --out "$OUT"
# one process with every core vs one process per core (sweep --jobs)
"${H[@]}" "${SST_RNN[@]}" --steps 200 --warmup 20 --jobs 1,2 --out "$OUT"
"${H[@]}" "${MT_TF[@]}" --steps 100 --warmup 20 --jobs 1,2 --out "$OUT"
# fused vs default AdamW on the SST-2 BiLSTM's own parameters
python scripts/bench_adamw.py "${SST_RNN[@]}" --out "$OUT"
