#!/usr/bin/env bash
# The prepared device run for a session lent an H100/H200 (issue 8), in three parts that each end within 8 min
# (A about 485 s, B at most 450 s, C at most 490 s of step limits: A and B fit one 15-minute lease with the
# starts; C, and B's remainder, wait for the next lease if the first runs short):
#   bash benchmarks/gpu_session.sh A          CUDA tests, SKA kernels vs the official Triton kernel, the user's
#                                             command, our LSNet vs the official model (official weights in ours)
#   bash benchmarks/gpu_session.sh B          registry sweep under the `lsnet_short` preset (the lsnet recipe with
#                                             2 s + 4 s windows: 56 models x 15 s of `lsnet` windows would not fit
#                                             8 minutes), the models of the published GPU figures first;
#                                             resuming from reports/gpu/incoming/results.jsonl if present
#   bash benchmarks/gpu_session.sh C          the cost anatomy on CUDA (issue 12), `lsbench erf lsnet_b` timed,
#                                             train mode and `lsbench scale` on CUDA (issue 13)
#   bash benchmarks/gpu_session.sh A --dry-run   the same steps on the CPU at toy sizes, with Triton's
#                                             interpreter for the kernels (run it here before spending GPU time)
# Device tool call: run(command="bash benchmarks/gpu_session.sh A", carry=[".official", ".whl", ".erf_images"]).
# Needs beside the checkout (git-ignored, travel through `carry`):
#   .official/  THU-MIG/lsnet (model/, utils.py, COMMIT); the script stops at once when it is missing
#   .whl/       wheels of the pure-Python packages the GPU image lacks (fvcore, ptflops and their deps), made with
#               pip download --no-deps -d .whl fvcore==0.1.5.post20221221 ptflops==0.7.5 yacs termcolor \
#                   tabulate iopath portalocker && pip wheel --no-deps -w .whl .whl/*.tar.gz && rm .whl/*.tar.gz
#               installed with --no-index --no-deps into a scratch folder on PYTHONPATH (nothing else changes);
#               matplotlib and its compiled deps for figures: pip download --only-binary=:all: --python-version 3.12
#                   --platform manylinux2014_x86_64 --no-deps -d .whl matplotlib kiwisolver contourpy fonttools cycler
#                   pyparsing
#   .erf_images/ the 9 scikit-image photos the ERF uses by default, as PNG (scikit-image is not on the GPU image):
#               made with `python benchmarks/make_erf_images.py .erf_images`
# Part B resumes: copy the results.jsonl that came back to reports/gpu/incoming/results.jsonl and rerun B.
# Output under $OUT (at most 8 files, one folder down): session.log, env.txt, cuda_tests.xml, ska_gpu.json,
# official.json, results/results.jsonl (part B: tables/ from `lsbench table`; part C: results/results.jsonl
# (train mode), results/anatomy.jsonl, results/scaling.jsonl, anatomy_totals.md, scaling_exponents.md; copy scaling.jsonl to reports/gpu/incoming/ to resume part C's scale step). CLI options relied on: profile
# --models --device --preset --metrics
# --out --format --quick (dry run), table --results --out.
set -uo pipefail
PART="${1:-}"; DRY="${2:-}"
case "$PART" in A|B|C) ;; *) echo "usage: bash benchmarks/gpu_session.sh A|B|C [--dry-run]" >&2; exit 2;; esac
[ -z "$DRY" ] || [ "$DRY" = "--dry-run" ] || { echo "unknown option $DRY" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"; cd "$ROOT"
OUT="${OUT:-$ROOT/gpu_out}"; mkdir -p "$OUT/results"
PY="${PYTHON:-python3}"
LOG="$OUT/session.log"
START=$(date +%s)
say() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
step() {  # step NAME TIMEOUT_S CMD...: runs, logs, never aborts the session; records the exit code
    local name="$1" limit="$2"; shift 2
    say "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" >>"$LOG" 2>&1; local rc=$?
    say "== $name rc=$rc"; [ "$rc" = 0 ] || FAILED+=("$name:$rc"); return 0
}
FAILED=()
# the models of the published GPU figures (LSNet's comparison and the team's H200 anchors), swept first in B
PRIORITY=lsnet_t,lsnet_s,lsnet_b,efficientvit_m3,efficientvit_m4,efficientvit_m5,repvit_m0_9,repvit_m1_1,repvit_m1_5,\
fastvit_t8,fastvit_t12,fastvit_s12,mobilenetv3_large_100,fasternet_t0,fasternet_t1,fasternet_t2
[ -f .official/model/lsnet.py ] && [ -f .official/model/ska.py ] && [ -f .official/utils.py ] || {
    echo "error: the official THU-MIG/lsnet code is missing at $ROOT/.official (carry it: carry=[\".official\"])" \
        | tee -a "$LOG" >&2; exit 3; }
DEPS="$(mktemp -d)"
if ! "$PY" -c "import fvcore, ptflops, matplotlib, tabulate" 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "error: fvcore/ptflops missing and no wheels in .whl/" | tee -a "$LOG" >&2; exit 3; }
    "$PY" -m pip install -q --no-index --no-deps --target "$DEPS" .whl/*.whl >>"$LOG" 2>&1
fi
"$PY" benchmarks/check_gpu_imports.py >>"$LOG" 2>&1 || { echo "error: GPU-path imports fail" | tee -a "$LOG" >&2; exit 3; }
export PYTHONPATH="$ROOT:$DEPS${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -n "$DRY" ]; then
    DEVICE=cpu; SIZE=(--dry-run); QUICK=(--quick); PRESET=(); export TRITON_INTERPRET=1
else
    DEVICE=cuda; SIZE=(); QUICK=(); PRESET=(--preset lsnet_short)
fi
{ echo "part $PART ${DRY:-device} $(date -u +%FT%TZ) $(git rev-parse HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw \
      --format=csv 2>&1 || true
  "$PY" -c "import sys, torch, triton, timm; print(sys.version.split()[0], torch.__version__, torch.version.cuda, triton.__version__, timm.__version__)"
  cat .official/COMMIT 2>/dev/null; } >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt" >>"$LOG"

if [ "$PART" = A ]; then
    if [ -n "$DRY" ]; then  # the CPU half of the checks: interpreter kernels and the sm_90 budget
        step tests 400 "$PY" -m pytest -q -p no:cacheprovider --junitxml="$OUT/cuda_tests.xml" \
            tests/test_ska_triton.py tests/test_ska_package.py tests/test_ska_sass.py
        step ska_bench 300 "$PY" benchmarks/gpu_ska.py "${SIZE[@]}" --models lsnet_t --dtypes fp32 \
            --official .official --out "$OUT/ska_gpu.json"
    else   # CUDA tests first (compiles + autotunes the kernels the benchmarks then reuse)
        step cuda_tests 120 "$PY" -m pytest -q -x -m cuda -p no:cacheprovider --junitxml="$OUT/cuda_tests.xml" \
            tests/test_ska_triton.py tests/test_timing.py tests/test_anatomy.py tests/test_roofline.py \
            tests/test_memory_energy.py tests/test_resources.py
        step ska_bench 110 "$PY" benchmarks/gpu_ska.py --models lsnet_t,lsnet_b --dtypes fp32,bf16,fp16 \
            --official .official --budget-s 80 --out "$OUT/ska_gpu.json"
    fi
    # the user's first command, exactly as typed (its results land in ./results, copied out below)
    # (isolated by default on CUDA: one fresh process per model, so the limit allows two interpreter starts)
    step user_command 90 "$PY" -m lsbench.cli profile --models lsnet_t,repvit_m0_9 --device "$DEVICE" "${QUICK[@]}"
    [ -f results/results.jsonl ] && cp results/results.jsonl "$OUT/results/results.jsonl"
    if [ -n "$DRY" ]; then
        step official 300 "$PY" benchmarks/gpu_official.py --dry-run --models lsnet_t --dtypes fp32,bf16 \
            --official .official --out "$OUT/official.json"
    else   # lsnet_short windows (2 s + 4 s): 3 models x 3 dtypes x 2 implementations
        step official 165 "$PY" benchmarks/gpu_official.py --official .official --out "$OUT/official.json"
    fi
elif [ "$PART" = B ]; then
    [ -f reports/gpu/incoming/results.jsonl ] && cp reports/gpu/incoming/results.jsonl "$OUT/results/results.jsonl"
    # `lsnet_short` protocol (fp32, batch 2048, fused, 2 s + 4 s); every finished round is stored at once, so
    # the timeout only cuts the sweep short and a rerun of part B with the returned file resumes it. The models
    # with published GPU figures come first (the Pareto figure needs them), then the rest of the registry.
    if [ -n "$DRY" ]; then MODELS=lsnet_t,repvit_m0_9,efficientvit_m0; else MODELS="$PRIORITY,all"; fi
    step registry_sweep 420 "$PY" -m lsbench.cli profile --models "$MODELS" --device "$DEVICE" "${PRESET[@]}" \
        "${QUICK[@]}" --metrics latency --out "$OUT/results" --format md
    step table 30 "$PY" -m lsbench.cli table --results "$OUT/results" --out "$OUT/tables"
else  # part C: the cost anatomy, the user's second command, training and scaling
    # the cost anatomy on CUDA (issue 12): per-part time on CUDA events, GEMM/HBM ceilings, peak memory and
    # NVML J/img; its records land in the results store that comes back
    if [ -n "$DRY" ]; then ANATOMY=(--warmup 2 --repeats 3 --rounds 2 --resolution 64); else ANATOMY=(--batch 256); fi
    # (its tables and roofline figure stay on the machine, only 8 files come back: the records and totals do)
    ANAT="$(mktemp -d)"
    step anatomy 120 "$PY" -m lsbench.cli anatomy lsnet_t lsnet_b repvit_m0_9 efficientvit_m4 --device "$DEVICE" \
        "${ANATOMY[@]}" --out "$ANAT" --format md
    cp "$ANAT/results.jsonl" "$OUT/results/anatomy.jsonl" 2>/dev/null; cp "$ANAT/anatomy_totals.md" "$OUT/" 2>/dev/null
    # the user's second command, timed by the step's log stamps (issue 8 item 6); the table is in the log
    if [ -n "$DRY" ]; then ERF=(--num-images 2 --size 64 --no-stages); else ERF=(); fi
    step erf 120 "$PY" -m lsbench.cli erf lsnet_b --device "$DEVICE" --images .erf_images "${ERF[@]}" \
        --out "$(mktemp -d)" --format md
    # training throughput (issue 13): forward + loss + backward + SGD step, AMP fp16, batch 256 (decayed and
    # recorded on out-of-memory), the Triton SKA backward on the GPU; one isolated process per model
    if [ -n "$DRY" ]; then TRAIN=(--batch 2 --resolution 64 --warmup 1 --repeats 2 --rounds 1); \
    else TRAIN=(--batch 256 --dtype fp16 --amp); fi
    step train 100 "$PY" -m lsbench.cli profile --models lsnet_t,lsnet_b,repvit_m0_9 --device "$DEVICE" \
        --mode train "${TRAIN[@]}" --metrics params,latency --out "$OUT/results" --format md
    # cost against resolution and batch on the GPU (issue 13); stored per point, so a rerun resumes
    if [ -n "$DRY" ]; then SCALE=(--models lsnet_t --resolution 64,96 --batch 1,2 --warmup 1 --repeats 2 --rounds 1)
    else SCALE=(--models lsnet_t,lsnet_b,repvit_m0_9,efficientvit_m4,fastvit_t8,mobilenetv3_large_100 \
                --resolution 224,448,1024 --batch 1,64,256); fi
    # (its figures and tables stay on the machine: only 8 files come back; the records and exponents do)
    SCALED="$(mktemp -d)"; [ -f reports/gpu/incoming/scaling.jsonl ] && cp reports/gpu/incoming/scaling.jsonl "$SCALED/results.jsonl"
    step scale 150 "$PY" -m lsbench.cli scale --device "$DEVICE" "${SCALE[@]}" --out "$SCALED" --format md
    cp "$SCALED/results.jsonl" "$OUT/results/scaling.jsonl" 2>/dev/null; cp "$SCALED/scaling_exponents.md" "$OUT/" 2>/dev/null
fi
rm -rf "$DEPS"
find "$OUT" -name .locks -type d -prune -exec rm -rf {} +  # store locks: not results, and only 8 files come back
[ ${#FAILED[@]} = 0 ] || { say "part $PART done, FAILED steps: ${FAILED[*]}"; exit 1; }
say "part $PART done, every step rc=0"
