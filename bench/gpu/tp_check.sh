#!/usr/bin/env bash
# bench/gpu/tp_check.sh — tensor parallelism on a machine with 2+ GPUs, in one device call:
# correctness (test_cuda's tests, the tensor-parallel ones on GPUs 0 and 1) and speed (gpu_decode
# on a synthetic Llama-3-8B-shaped model over 1 GPU, 2 GPUs, and 2 GPUs without the collectives).
#
#   bench/gpu/tp_check.sh [STEPS]     STEPS: comma list of gen,tests,big,bench (default: all)
#
#   gen    bench/gpu/make_hf_model.py --shape 8b into $WORK/hf-8b (reused when complete), in the
#          background while the tests run
#   tests  build/tests/test_cuda: every test (single-GPU kernels and models, then 2 GPUs vs 1 on
#          the golden cases and batched prompts); log in $OUT/test_cuda.txt
#   big    test_tp_model on the 8B-shaped model (INFER_TEST_TP_MODEL): logits of every position
#          and 64 greedy tokens, 2 GPUs vs 1; log in $OUT/test_tp_model.txt
#   bench  gpu_decode (--seqs $SEQS --prefill 512) on GPU 0, on GPUs 0,1, and on GPUs 0,1 with
#          INFER_CUDA_TP_NOCOMM=1 (the all-reduces and logit gather skipped: wrong tokens, but
#          the difference of step times is the time a step spends communicating), on GPUs 0,1
#          with INFER_CUDA_TP_AR=nccl (ncclAllReduce instead of our device-API kernels:
#          2gpu-nccl), all with
#          NCCL_GRAPH_MIXING_SUPPORT=0 (see README: libinfer never leaves a graph's collectives
#          outstanding, and NCCL's default guard costs ~4 us a collective); then GPUs 0,1 with
#          NCCL's default (2gpu-ncclmix). Results in $OUT/tp-*.jsonl, summary in $OUT/tp-summary.txt
#
# Environment: OUT (default $WORK/out), WORK (default /tmp/gpubench), INFER_SHARED (the shared
# test data; default .shared), SEQS (default 1,64), NEW (new tokens, default 128), RUNS (the
# bench runs, NAME:DEVICES[:VAR=VALUE+VAR=VALUE...], the first one the baseline of the ratios;
# default "1gpu:0 2gpu:0,1 2gpu-nccl:0,1:INFER_CUDA_TP_AR=nccl 2gpu-nocomm:0,1:INFER_CUDA_TP_NOCOMM=1
# 2gpu-ncclmix:0,1:NCCL_GRAPH_MIXING_SUPPORT=1").
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORK=${WORK:-/tmp/gpubench}
OUT=${OUT:-$WORK/out}
STEPS=${1:-gen,tests,big,bench}
SEQS=${SEQS:-1,64}
NEW=${NEW:-128}
export INFER_SHARED=${INFER_SHARED:-.shared}
mkdir -p "$OUT" "$WORK"
cd "$repo" || exit 1
hf=$WORK/hf-8b
log() { echo "[tp_check $(date +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$OUT/tp_check.log"; }
want() { [[ ",$STEPS," == *",$1,"* ]]; }

nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader | tee -a "$OUT/tp_check.log"
nvidia-smi topo -m 2>/dev/null | head -5 >> "$OUT/tp_check.log"

genpid=
if want gen && [ ! -f "$hf/config.json" ]; then
    log "gen: 8B-shaped bf16 model into $hf (background)"
    python3 "$here/make_hf_model.py" --shape 8b --out "$hf" > "$OUT/gen.log" 2>&1 &
    genpid=$!
fi
if want tests; then
    log "tests: test_cuda"
    INFER_CUDA_PROFILE=1 INFER_TEST_TP_MODEL= timeout 400 build/tests/test_cuda > "$OUT/test_cuda.txt" 2>&1
    log "tests: rc $? — $(grep -E 'PASSED|FAILED|SKIPPED' "$OUT/test_cuda.txt" | tr '\n' ' ')"
    grep -E '^\s{4}' "$OUT/test_cuda.txt" | tail -30
fi
if [ -n "$genpid" ]; then
    wait "$genpid"
    log "gen: rc $? ($(du -sh "$hf" 2>/dev/null | cut -f1))"
fi
if want big; then
    log "big: test_tp_model on $hf"
    INFER_CUDA_PROFILE=1 INFER_TEST_FILTER=test_tp_model INFER_TEST_TP_MODEL=$hf timeout 300 build/tests/test_cuda \
        > "$OUT/test_tp_model.txt" 2>&1
    log "big: rc $?"
    cat "$OUT/test_tp_model.txt"
fi
if want bench; then
    args=(-m "$hf" --shape 8b --dtype bf16 --seqs "$SEQS" --new-tokens "$NEW" --prefill 512 --repeat 3)
    runs=${RUNS:-1gpu:0 2gpu:0,1 2gpu-nccl:0,1:INFER_CUDA_TP_AR=nccl 2gpu-nocomm:0,1:INFER_CUDA_TP_NOCOMM=1 2gpu-ncclmix:0,1:NCCL_GRAPH_MIXING_SUPPORT=1}
    for run in $runs; do
        IFS=: read -r name devs extra <<< "$run"
        env=(NCCL_GRAPH_MIXING_SUPPORT=0)
        [ -n "$extra" ] && env+=(${extra//+/ })
        log "bench: $name (devices $devs; ${env[*]})"
        env "${env[@]}" timeout 240 build/bench/gpu_decode "${args[@]}" --devices "$devs" --label "8b-bf16-$name" \
            -o "$OUT/tp-$name.jsonl" > "$OUT/tp-$name.txt" 2>&1
        log "bench: $name rc $?"
        sed -n '/^gpu_decode:/,$p' "$OUT/tp-$name.txt" | grep -v '^{' | head -12
    done
    python3 - "$OUT" $runs <<'PY' | tee "$OUT/tp-summary.txt"
# One column per run (tok/s, and the ratio to the first run, the baseline); a run X-nocomm
# gives X's communication per step (X's step time minus its own).
import json, sys, os
out, runs = sys.argv[1], [r.split(":")[0] for r in sys.argv[2:]]
def load(name):
    p = os.path.join(out, f"tp-{name}.jsonl")
    rows = {}
    if os.path.exists(p):
        for line in open(p):
            if line.startswith("{"):
                r = json.loads(line)
                rows[(r["case"], r["seqs"])] = r
    return rows
res = {n: load(n) for n in runs}
base = res[runs[0]]
print("| case | " + " | ".join(runs) + " |")
print("|---|" + "---:|" * len(runs))
for key in sorted(base):
    a = base[key]
    case = f"{key[0]} {key[1]} seq" if key[0] == "decode" else f"prefill {a.get('tokens', '')}"
    cells = []
    for n in runs:
        r = res[n].get(key)
        cells.append(f"{r['tok_s']:.1f} ({r['tok_s'] / a['tok_s']:.2f}x)" if r else "-")
    print(f"| {case} | " + " | ".join(cells) + " |")
for n in runs:
    nc = res.get(n + "-nocomm")
    if not nc:
        continue
    for key, r in sorted(res[n].items()):
        if key in nc:
            print(f"communication per step, {n}, {key[0]} {key[1]}: {r['step_ms'] - nc[key]['step_ms']:.3f} ms "
                  f"of {r['step_ms']:.3f}")
PY
fi
log "done"
