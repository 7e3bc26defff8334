#!/usr/bin/env bash
# The prepared check for a lent GPU (at most about 8 minutes): forward passes
# (float32 / bfloat16 / XLA across batch sizes at 512x512), the cascade on a
# 512x512x500 volume, training updates/s of both recipes; one JSON of figures
# in ${OUT:-.}/gpu_check.json. Extra arguments go to gpu_check.py (--tiny,
# --budget_s). Record the figures in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu_check.json"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
timeout 480 python benchmarks/gpu_check.py --output="$out" "$@"
