#!/usr/bin/env bash
# The GPU checks, under 8 minutes on one GPU: the CUDA tests (CUDA equals CPU, host
# synchronisations, fit on the GPU), the training step on CPU vs GPU, and the data throughput of
# a prepared dataset against the GPU training step's consumption.
#   bash benchmarks/gpu_check.sh [output folder]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/gpu_check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python -c "import pyg_hipts, psutil" 2>/dev/null || python -m pip install -q -e ".[test,benchmarks]"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
python -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py tests/test_host_syncs.py 2>&1 | tee "$out/tests.log"
python -m benchmarks.gpu_step --molecules 64 256 1024 2>&1 | tee "$out/gpu_step.log"
python benchmarks/data_throughput.py --frames 200000 --device cuda --threads 4 --batch_size 256 \
    --workdir "$out/data_throughput" 2>&1 | tee "$out/data_throughput.log"
