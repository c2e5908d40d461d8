#!/usr/bin/env bash
# The checks that need a CUDA GPU: FSDPStrategy (sharded and full state dicts) and DeepSpeed checkpoints kept,
# verified, resumed and consolidated by a run. One command, a few minutes on one GPU:
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU: nothing to check')"
exec timeout 290 python -m pytest -q -p no:randomly -n 0 -rs tests/test_sharded_gpu.py "$@"
