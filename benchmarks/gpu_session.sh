#!/usr/bin/env bash
# The one prepared script for a session that is lent a GPU (H100/H200) through the device tool.
# It uses the device image's own python3 (torch, triton, timm, typer, rich, pandas, pynvml are there)
# with this checkout on PYTHONPATH, and writes everything under $OUT (copied back by the tool):
#   1. the CUDA-marked tests (Triton SKA vs the PyTorch reference, CUDA timers)
#   2. the SKA kernel bandwidth benchmark (optionally against the official kernel: put THU-MIG/lsnet's
#      model/ska.py under build/lsnet_official/model/ and carry build/lsnet_official)
#   3. the profile of every registry model under the `lsnet` preset (fp32, batch 2048, 5 s + 10 s)
#   4. the cost anatomy on CUDA (issue 12): its CUDA tests, then per-part time on CUDA events, GEMM/HBM
#      ceilings, peak memory and NVML J/img for the four anatomy models at batch 256 ($OUT/anatomy_cuda/)
# Usage on the device: bash benchmarks/gpu_session.sh [quick]   ("quick": short windows, for a dry run)
# Then copy $OUT/gpu/results.jsonl into reports/gpu/ and run `lsbench table --results reports/gpu`.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv \
    | tee "$OUT/nvidia_smi.csv"
python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_ska_triton.py tests/test_timing.py 2>&1 \
    | tee "$OUT/cuda_tests.log"
official=()
[ -f build/lsnet_official/model/ska.py ] && official=(--official build/lsnet_official)
timeout 180 python3 benchmarks/gpu_ska.py --out "$OUT/ska_gpu.json" "${official[@]}" 2>&1 | tee "$OUT/ska_gpu.log"
quick=()
[ "${1:-}" = "quick" ] && quick=(--quick)
python3 -m lsbench.cli profile --models all --device cuda --preset lsnet --metrics latency "${quick[@]}" \
    --out "$OUT/gpu" --format md 2>&1 | tee "$OUT/profile_lsnet.log"
python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_anatomy.py tests/test_roofline.py \
    tests/test_memory_energy.py 2>&1 | tee "$OUT/anatomy_cuda_tests.log"
anatomy_quick=()
[ "${1:-}" = "quick" ] && anatomy_quick=(--warmup 3 --repeats 5 --rounds 2)
python3 -m lsbench.cli anatomy lsnet_t lsnet_b repvit_m0_9 efficientvit_m4 --device cuda --batch 256 \
    "${anatomy_quick[@]}" --out "$OUT/anatomy_cuda" --format md 2>&1 | tee "$OUT/anatomy_cuda.log"
