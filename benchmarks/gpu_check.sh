#!/usr/bin/env bash
# The performance harness at the paper's sizes on one GPU (issue 22): every task's model with random weights, two
# cases, reference vs clinxai vs the pass limit per method, feature removal, modality Shapley and a training epoch.
# Sample counts are reduced where a method's reference run would exceed the budget (the table says from how many
# passes it extrapolates). Meant to finish in under 10 minutes on one H100/H200-class GPU.
#   benchmarks/gpu_check.sh [OUT_DIR]          (default results/performance/gpu)
# torch.compile (config/paper.yaml's `compile: true`) is off here by default: each perturbation method's job compiles
# its model anew (tens of seconds), which the 10 minutes cannot hold for every method; COMPILE=on measures it too.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/performance/gpu}"
python=".venv/bin/python"
[ -x "$python" ] || python=python3
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: this check needs a GPU'; \
print(torch.cuda.get_device_name(0), 'torch', torch.__version__)"
"$python" benchmarks/performance.py --scale paper --device cuda --cases 2 --budget 20 --max-batch 64 \
  --mem-mb 60000 --compile "${COMPILE:-off}" --out "$out"
echo "table: $out/performance.csv, plot: $out/performance.png"
