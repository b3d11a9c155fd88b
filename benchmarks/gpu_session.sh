#!/bin/sh
# One session on a lent GPU machine: the CUDA tests, then the recurrent specs' GPU benchmark, every result
# written under $OUT as it comes (a run stopped at its limit keeps what it measured). Well inside 15 minutes
# of device time: about 2 for the tests and 6 for the benchmark on an H100/H200 (Dynamo and Inductor compile
# each mode of each spec; reduce-overhead and default first, max-autotune last, the longest to compile).
#
#   here:   make gpu-wheels          # pydantic and graphviz for the device's Python (3.12), into .whl/
#   there:  sh benchmarks/gpu_session.sh   (the device tool's run, with carry: [".whl"])
set -u
OUT=${OUT:-benchmarks/results/gpu-session}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps .whl/*.whl > "$OUT/install.txt" 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project from its tree (no build backend there)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1
timeout 180 python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py > "$OUT/cuda-tests.txt" 2>&1
cd benchmarks
timeout 300 python3 gpu.py --recurrent-only --specs liao2016/frnn4-cifar liao2016/srn1-cifar \
  --modes default reduce-overhead --json "../$OUT/recurrent.json" > "../$OUT/recurrent.txt" 2>&1
timeout 120 python3 gpu.py --recurrent-only --specs liao2016/frnn4-cifar --modes max-autotune \
  --json "../$OUT/max-autotune.json" > "../$OUT/max-autotune.txt" 2>&1
exit 0
