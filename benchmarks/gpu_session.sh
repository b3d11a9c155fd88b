#!/bin/sh
# One session on a lent GPU machine, in two device calls (one call runs at most 10 minutes): the CUDA tests,
# then the recurrent specs' GPU benchmark, every result written under $OUT as it comes (a run stopped at its
# limit keeps what it measured). Part 1 (at most 9 minutes: the timeouts below): the tests, then frnn4-cifar
# eager, checkpointed, naive, under CUDA graphs (reduce-overhead), with stacked norms and with the optimizer's
# step in a graph. Part 2 (at most 4 minutes): frnn4-cifar compiled in the default mode, srn1-cifar under
# CUDA graphs. With a machine's start, both fit 15 minutes of device time; ResNets and max-autotune (minutes
# of autotuning) are for a session with more: python benchmarks/gpu.py.
#
#   here:   make gpu-wheels          # pydantic and graphviz for the device's Python (3.12), into .whl/
#   there:  sh benchmarks/gpu_session.sh 1, then 2   (the device tool's run, with carry: [".whl"])
set -u
OUT=${OUT:-benchmarks/results/gpu-session}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)  # absolute: the benchmarks run from benchmarks/
python3 -m pip install -q --no-index --no-deps .whl/*.whl > "$OUT/install.txt" 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project from its tree (no build backend there)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1
if [ "${1:-1}" = 1 ]; then
  timeout 150 python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py > "$OUT/cuda-tests.txt" 2>&1
  cd benchmarks
  timeout 380 python3 gpu.py --recurrent-only --specs liao2016/frnn4-cifar --modes reduce-overhead --extras \
    --json "$OUT/frnn4-cifar.json" > "$OUT/frnn4-cifar.txt" 2>&1
else
  cd benchmarks
  timeout 150 python3 gpu.py --recurrent-only --specs liao2016/frnn4-cifar --modes default \
    --json "$OUT/frnn4-cifar-default.json" > "$OUT/frnn4-cifar-default.txt" 2>&1
  timeout 90 python3 gpu.py --recurrent-only --specs liao2016/srn1-cifar --modes reduce-overhead \
    --json "$OUT/srn1-cifar.json" > "$OUT/srn1-cifar.txt" 2>&1
fi
exit 0
