#!/usr/bin/env bash
# bench/gpu/ncu_top.sh — where a step's GPU time goes: Nsight Compute over COUNT kernel launches
# after SKIP (graph nodes count one each), summed per kernel: launches, total and mean time,
# DRAM read rate and % of peak DRAM throughput. Run on the GPU machine.
#   bench/gpu/ncu_top.sh SKIP COUNT COMMAND [ARGS...]
set -euo pipefail
skip=$1 count=$2; shift 2
csv=$(mktemp)
ncu --graph-profiling node --launch-skip "$skip" --launch-count "$count" --csv --page raw \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed \
    "$@" > "$csv" 2>/dev/null || true
python3 - "$csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if r]
hdr = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
if hdr is None:
    print("ncu produced no kernel rows"); sys.exit(0)
h = rows[hdr]; units = rows[hdr + 1]
ki, ti = h.index("Kernel Name"), h.index("gpu__time_duration.sum")
bi, pi = h.index("dram__bytes_read.sum"), h.index("gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed")
tscale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}.get(units[ti], 1.0)
bscale = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}.get(units[bi], 1)
agg = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
total = 0.0
for r in rows[hdr + 2:]:
    try:
        t = float(r[ti].replace(",", "")) * tscale; b = float(r[bi].replace(",", "")) * bscale; p = float(r[pi])
    except (ValueError, IndexError):
        continue
    name = r[ki].split("(")[0][:60]
    a = agg[name]; a[0] += 1; a[1] += t; a[2] += b; a[3] += p * t
    total += t
print(f"{'kernel':60} {'n':>5} {'total us':>10} {'mean us':>9} {'GB/s':>8} {'%dram':>6}")
for name, (n, t, b, pt) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:20]:
    print(f"{name:60} {n:5d} {t:10.1f} {t/n:9.2f} {b/(t*1e3) if t else 0:8.0f} {pt/t if t else 0:6.1f}")
print(f"{'all':60} {sum(a[0] for a in agg.values()):5d} {total:10.1f}")
PY
rm -f "$csv"
