#!/usr/bin/env bash
# bench/gpu/run.sh — the GPU benchmark of one device call: libinfer against the GPU's measured
# peaks, llama.cpp and HF transformers, on synthetic-weight models of real shapes.
#
#   bench/gpu/run.sh SHAPE...            SHAPE: 1b (Llama-3.2-1B), 8b (Llama-3-8B), tiny (smoke test)
#
# Per shape, each step skippable and time-bounded:
#   gen       bench/gpu/make_hf_model.py: a bf16 HF directory $WORK/hf-SHAPE (reused when complete)
#   peak      bench/gpu/peak.cu (built with nvcc once): read bandwidth, cuBLAS bf16 GEMM (once a run)
#   ours      build/bench/gpu_decode on the HF directory (label SHAPE-bf16)
#   llamacpp  .anchors/llamacpp-gpu-bench.sh $WORK/anchors SHAPE, SHAPE:q8_0, SHAPE:q4_0 (one call per
#             model, so a timeout loses one model's figures only); it writes $WORK/anchors/SHAPE-*.gguf
#   quant     gpu_decode on $WORK/anchors/SHAPE-q8_0.gguf and SHAPE-q4_0.gguf (made here when the
#             llama.cpp step did not run: gen_gguf.py + llama-quantize from the anchors tarball)
#   hf        bench/gpu/hf_peer.py on the HF directory (eager, compile)
#   table     bench/gpu/table.py over every result of this machine ($WORK/results) -> stdout, $OUT/table.md
#
# Environment:
#   OUT             where results go (default $WORK/out); every result file is also kept in
#                   $WORK/results, so a later call on the same warm machine can finish the table
#   WORK            models and results (default /tmp/gpubench; 8b needs ~45 GB with the GGUFs)
#   STEPS           steps to run (default gen,peak,ours,llamacpp,quant,hf,table)
#   SKIP_PEAK=1 SKIP_OURS=1 SKIP_LLAMACPP=1 SKIP_QUANT=1 SKIP_HF=1   drop a step (SKIP_QUANT also drops
#                   the llama.cpp q8_0/q4_0 runs)
#   DEADLINE        seconds after start past which no step starts; running steps are cut to it
#                   (default 570: one device call has 600 s)
#   T_GEN T_PEAK T_OURS T_LLAMA T_QUANT T_HF   per-step limits in seconds (defaults 300 120 240 240 60 330)
#   GPU_DECODE      the benchmark binary (default build/bench/gpu_decode); GPU_DECODE_ARGS: extra options
#   HF_ARGS         extra options of hf_peer.py (default: --modes eager,compile --seqs 1,32)
#   ANCHORS         the anchors folder (default .anchors, else ../shared/anchors, shared/anchors)
#   PYTHON          python3 with torch, transformers, numpy (default python3)
#   CLEAN=1         first delete the models of shapes not named (disk: 64 GiB on the GPU machine)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
OUT=${OUT:-${WORK:-/tmp/gpubench}/out}
WORK=${WORK:-/tmp/gpubench}
STEPS=${STEPS:-gen,peak,ours,llamacpp,quant,hf,table}
DEADLINE=${DEADLINE:-570}
PYTHON=${PYTHON:-python3}
GPU_DECODE=${GPU_DECODE:-$repo/build/bench/gpu_decode}
GPU_DECODE_ARGS=${GPU_DECODE_ARGS:-}
HF_ARGS=${HF_ARGS:---modes eager,compile --seqs 1,32}
T_GEN=${T_GEN:-300} T_PEAK=${T_PEAK:-120} T_OURS=${T_OURS:-240} T_LLAMA=${T_LLAMA:-240} T_QUANT=${T_QUANT:-60}
T_HF=${T_HF:-330}
RES=$WORK/results
mkdir -p "$OUT" "$WORK" "$RES"

if [ $# -eq 0 ]; then
    echo "usage: $0 SHAPE...   (1b, 8b, tiny)" >&2
    exit 2
fi
for s in "$@"; do
    case $s in 1b|8b|tiny) ;; *) echo "unknown shape '$s' (1b, 8b, tiny)" >&2; exit 2;; esac
done

ANCHORS=${ANCHORS:-}
if [ -z "$ANCHORS" ]; then
    for d in "$repo/.anchors" "$repo/../shared/anchors" "$repo/shared/anchors"; do
        [ -f "$d/llamacpp-gpu-bench.sh" ] && { ANCHORS=$d; break; }
    done
fi

log() {
    local m
    m="[run.sh $(date +%H:%M:%S) +${SECONDS}s] $*"
    echo "$m"
    echo "$m" >> "$OUT/run.log"
}

want() {  # want STEP: in $STEPS and not skipped
    local skip=
    case $1 in
        peak) skip=${SKIP_PEAK:-};; ours) skip=${SKIP_OURS:-};; llamacpp) skip=${SKIP_LLAMACPP:-};;
        quant) skip=${SKIP_QUANT:-};; hf) skip=${SKIP_HF:-};;
    esac
    [ "$skip" = 1 ] && return 1
    [[ ",$STEPS," == *",$1,"* ]]
}

# step NAME LIMIT OUTFILE CMD...: CMD's stdout to OUTFILE, stderr to OUTFILE.err, within LIMIT
# seconds and the deadline; both files copied to $RES. Returns CMD's status (124: timed out).
step() {
    local name=$1 limit=$2 outf=$3
    shift 3
    local left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 20 ]; then
        log "SKIP $name: ${left}s left before the ${DEADLINE}s deadline"
        return 125
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    log "start $name (limit ${limit}s)"
    local t0=$SECONDS rc=0
    timeout -k 10 "$limit" "$@" > "$outf" 2> "$outf.err" || rc=$?
    cp -f "$outf" "$outf.err" "$RES/" 2>/dev/null
    if [ $rc -eq 0 ]; then
        log "done  $name in $((SECONDS - t0))s"
    else
        if [ $rc -eq 124 ]; then
            log "TIMEOUT $name after ${limit}s"
        else
            log "FAILED $name (exit $rc) after $((SECONDS - t0))s"
        fi
        tail -n 5 "$outf.err" | sed 's/^/    /'
    fi
    return $rc
}

run_ours() {  # run_ours SHAPE DTYPE MODEL_PATH LIMIT
    local shape=$1 dt=$2 model=$3 limit=$4 label=$1-$2
    if [ ! -x "$GPU_DECODE" ]; then
        log "SKIP ours $label: $GPU_DECODE is missing (make bench)"
        return 1
    fi
    # shellcheck disable=SC2086
    step "ours $label" "$limit" "$OUT/ours-$label.txt" \
        "$GPU_DECODE" -m "$model" --label "$label" --shape "$shape" --dtype "$dt" \
        -o "$OUT/ours-$label.jsonl" $GPU_DECODE_ARGS
    local rc=$?
    cp -f "$OUT/ours-$label.jsonl" "$RES/" 2>/dev/null
    sed -n '/^gpu_decode:/,$p' "$OUT/ours-$label.txt" | grep -v '^{' | head -20
    return $rc
}

gguf_args() {
    case $1 in
        1b) echo "--hidden 2048 --layers 16 --heads 32 --kv 8 --ffn 8192 --tied";;
        8b) echo "--hidden 4096 --layers 32 --heads 32 --kv 8 --ffn 14336";;
        tiny) echo "--hidden 256 --layers 2 --heads 8 --kv 2 --ffn 512";;
    esac
}

# The GGUF the anchors script would have written, when it did not run (same generator and quantizer).
make_gguf() {  # make_gguf SHAPE QUANT
    local shape=$1 q=$2 W=$WORK/anchors
    local f16=$W/$shape-f16.gguf out=$W/$shape-$q.gguf
    [ -e "$out" ] && return 0
    [ -n "$ANCHORS" ] || { log "no anchors folder: cannot make $out"; return 1; }
    mkdir -p "$W"
    [ -x "$W/llbin/llama-quantize" ] || tar xJf "$ANCHORS/llamacpp-cuda-sm90.tar.xz" -C "$W" || return 1
    # shellcheck disable=SC2046
    [ -e "$f16" ] || "$PYTHON" "$ANCHORS/gen_gguf.py" --out "$f16" $(gguf_args "$shape") --ctx 8192 \
        --name "synth-$shape" >&2 || return 1
    LD_LIBRARY_PATH="$W/llbin:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" \
        "$W/llbin/llama-quantize" "$f16" "$out" "${q^^}" 16 > /dev/null 2>&1
}

# step runs commands under timeout, in a new process: make_gguf goes there through bash -c.
export OUT WORK ANCHORS PYTHON
export -f make_gguf gguf_args log

# ----------------------------------------------------------------------------------- start

log "shapes: $*; steps: $STEPS; OUT=$OUT WORK=$WORK deadline ${DEADLINE}s"
if rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null); then
    git -C "$repo" diff --quiet HEAD -- lib include kernels bench 2>/dev/null || rev="$rev + uncommitted changes"
    log "repo $repo at $rev"
fi
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,clocks.mem,power.draw --format=csv \
    > "$OUT/nvidia-smi.txt" 2>&1 && sed 's/^/    /' "$OUT/nvidia-smi.txt"
df -h "$WORK" | tail -1 | awk '{print "    disk " $1 ": " $4 " free of " $2}'

if [ "${CLEAN:-}" = 1 ]; then
    for d in "$WORK"/hf-* "$WORK"/anchors/*.gguf; do
        [ -e "$d" ] || continue
        b=$(basename "$d"); b=${b#hf-}; b=${b%%-*}
        keep=0
        for s in "$@"; do [ "$b" = "$s" ] && keep=1; done
        [ $keep = 0 ] && { log "CLEAN: removing $d"; rm -rf "$d"; }
    done
fi

if want peak; then
    peak_bin=$WORK/peak
    sum=$(cksum < "$here/peak.cu")
    if [ ! -x "$peak_bin" ] || [ "$(cat "$peak_bin.sum" 2>/dev/null)" != "$sum" ]; then
        NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
        step "build peak" 120 "$OUT/peak-build.txt" \
            "$NVCC" -O3 -gencode arch=compute_90a,code=sm_90a "$here/peak.cu" -lcublas -o "$peak_bin" &&
            echo "$sum" > "$peak_bin.sum"
    fi
    [ -x "$peak_bin" ] && step peak "$T_PEAK" "$OUT/peak.jsonl" "$peak_bin" && cat "$OUT/peak.jsonl"
fi

for shape in "$@"; do
    hfdir=$WORK/hf-$shape
    log "===== $shape"
    if want gen || want ours || want hf; then
        if [ ! -e "$hfdir/.complete" ]; then
            step "gen $shape" "$T_GEN" "$OUT/gen-$shape.txt" \
                "$PYTHON" "$here/make_hf_model.py" --shape "$shape" --out "$hfdir"
        fi
    fi
    if want ours && [ -e "$hfdir/.complete" ]; then
        run_ours "$shape" bf16 "$hfdir" "$T_OURS"
    fi

    quants=(q8_0 q4_0)
    [ "${SKIP_QUANT:-}" = 1 ] && quants=()
    if want llamacpp; then
        if [ -z "$ANCHORS" ]; then
            log "SKIP llama.cpp: no anchors folder (.anchors, ../shared/anchors)"
        elif [ "$shape" = tiny ]; then
            log "SKIP llama.cpp: the anchors script knows 1b and 8b only"
        else
            for spec in "$shape" "${quants[@]/#/$shape:}"; do
                q=${spec#*:}; [ "$q" = "$spec" ] && q=f16
                step "llama.cpp $shape $q" "$T_LLAMA" "$OUT/llamacpp-$shape-$q.txt" \
                    bash "$ANCHORS/llamacpp-gpu-bench.sh" "$WORK/anchors" "$spec"
                grep -h '^|' "$OUT/llamacpp-$shape-$q.txt" | head -8
            done
        fi
    fi
    if want quant; then
        for q in "${quants[@]}"; do
            g=$WORK/anchors/$shape-$q.gguf
            if [ ! -e "$g" ]; then
                # shellcheck disable=SC2016
                step "make $shape-$q.gguf" "$T_LLAMA" "$OUT/gguf-$shape-$q.txt" \
                    bash -c 'make_gguf "$1" "$2"' make_gguf "$shape" "$q"
            fi
            if [ -e "$g" ]; then
                run_ours "$shape" "$q" "$g" "$T_OURS"
            else
                log "SKIP ours $shape-$q: no $g"
            fi
        done
    fi
    if want hf && [ -e "$hfdir/.complete" ]; then
        left=$((DEADLINE - SECONDS - 30))
        lim=$T_HF; [ "$lim" -gt "$left" ] && lim=$left
        # hf_peer stops starting cases 60 s before its limit (a compile takes about that long).
        # shellcheck disable=SC2086
        step "hf $shape" "$T_HF" "$OUT/hf-$shape.jsonl" \
            "$PYTHON" "$here/hf_peer.py" --model "$hfdir" --shape "$shape" --budget $((lim > 90 ? lim - 60 : 30)) $HF_ARGS
        grep -h '"tok_s"' "$OUT/hf-$shape.jsonl" | sed 's/^/    /'
    fi
done

if want table; then
    log "table (from $RES)"
    "$PYTHON" "$here/table.py" "$RES" -o "$OUT/table.md"
fi
log "end; results in $OUT (and $RES)"
