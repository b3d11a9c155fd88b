#!/bin/sh
# One session on a lent GPU machine, as one device call (at most 10 minutes; the timeouts below
# sum to 9 min, 9 min 40 s if every one must kill):
# every result written under $OUT as it is measured, so a run stopped at a limit keeps what came before.
#   1. ResNet-18 and -50 eager against torchvision, then frnn4-cifar: eager, checkpointed, the naive
#      unrolling, under CUDA graphs (reduce-overhead), compiled in the default mode, then the extras
#      (stacked norms eager and under CUDA graphs, the optimizer's step in a graph); each row is written
#      as it is measured, so a timeout costs only the last extras.
#   2. The CUDA tests, the two resume tests first (a bf16 run, resume, --compile reduce-overhead, compiled
#      against eager).
#   3. srn1-cifar: eager, checkpointed, naive, under CUDA graphs.
# Left for a session with more time: compiled ResNets, max-autotune (minutes of autotuning), frnn4-imagenet:
# python benchmarks/gpu.py.
#
#   here:   make gpu-wheels          # pydantic and graphviz for the device's Python (3.12), into .whl/
#   there:  sh benchmarks/gpu_session.sh   (the device tool's run, timeout_s 600, carry [".whl"])
set -u
OUT=${OUT:-benchmarks/results/gpu-session}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)  # absolute: the benchmarks run from benchmarks/
python3 -m pip install -q --no-index --no-deps .whl/*.whl > "$OUT/install.txt" 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project from its tree (no build backend there)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1
# SIGINT, not TERM: pytest then prints what failed and why (KILL 10 s later if ignored); gpu.py rewrites
# its JSON whole after each row.
(cd benchmarks && timeout -s INT -k 10 310 python3 gpu.py --resnet-modes eager --specs liao2016/frnn4-cifar \
  --modes reduce-overhead default --extras --json "$OUT/frnn4-cifar.json" > "$OUT/frnn4-cifar.txt" 2>&1)
# The resume tests first (the fused optimizer's loading is checked nowhere else on a GPU), each result as it comes.
timeout -s INT -k 10 40 python3 -m pytest -v -m cuda -p no:cacheprovider -k resume tests/test_cuda.py \
  > "$OUT/cuda-tests-resume.txt" 2>&1
timeout -s INT -k 10 90 python3 -m pytest -v -m cuda -p no:cacheprovider -k "not resume" tests/test_cuda.py \
  > "$OUT/cuda-tests.txt" 2>&1
(cd benchmarks && timeout -s INT -k 10 100 python3 gpu.py --recurrent-only --specs liao2016/srn1-cifar \
  --modes reduce-overhead --json "$OUT/srn1-cifar.json" > "$OUT/srn1-cifar.txt" 2>&1)
exit 0
