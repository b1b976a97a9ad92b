#!/usr/bin/env python3
"""table.py — one markdown table from the outputs of a GPU benchmark run (bench/gpu/run.sh).

    table.py [-o table.md] FILE_OR_DIR...

Reads, from each file (a directory: every *.jsonl, *.txt and *.log in it), whatever it
recognises, line by line; anything else is skipped, so missing, partial or mixed files are fine:
  - peak.cu JSON lines: {"peak":"read_bw","TBps":..}, {"peak":"gemm_bf16","m":..,"TFLOPs":..};
  - gpu_decode JSON lines: {"bench":"gpu_decode","label":"1b-bf16","case":"decode","seqs":..,
    "tok_s":..,"achieved_GBps":..,"TFLOPs":..};
  - hf_peer.py JSON lines: {"peer":"hf","mode":"eager|compile","case":..,"seqs":..,"tok_s":..};
  - the llama.cpp anchors script's output (shared/anchors/llamacpp-gpu-bench.sh): its
    "== llama.cpp SHAPE QUANT: ..." headers say which model the lines after them belong to;
    llama-bench JSON lines (n_prompt 512 / n_gen 0 = prefill, n_prompt 0 / n_gen 128 = batch-1
    decode; avg_ts) and llama-batched-bench markdown rows (B sequences: S_TG = aggregate decode
    tok/s; B = 1 stands in for batch-1 decode when llama-bench's is missing).
Rows: shape x weights (bf16 = llama.cpp's f16: same bytes) x case (batch-1 decode, aggregate
decode at 8/32/64/128 sequences, prefill). Columns: our tok/s; what we achieved (decode: bytes read
per step / step time; prefill: TFLOP/s); that as a % of the measured read bandwidth (decode) or of
the best cuBLAS bf16 GEMM TFLOP/s (prefill); llama.cpp's tok/s and our ratio to it; HF eager and
compile tok/s and our ratio to compile (to eager where compile is missing, marked so). Where
several runs gave a figure, the last one read counts. A missing value prints as "—".
"""
import argparse
import json
import os
import re
import sys

DASH = "\u2014"
SHAPE_ORDER = ["1b", "8b", "tiny"]
DTYPE_ORDER = ["bf16", "q8_0", "q4_0"]
DECODE_SEQS = [1, 8, 32, 64, 128]


def norm_dtype(d):
    d = (d or "").lower()
    return "bf16" if d in ("f16", "bf16", "fp16") else d


def shape_dtype_of_label(label):
    m = re.match(r"^([0-9a-z.]+?)[-_](bf16|f16|q8_0|q4_0)(?:\.gguf)?$", label or "")
    return (m.group(1), norm_dtype(m.group(2))) if m else ("", "")


def num(x):
    try:
        v = float(x)
        return v if v == v else None  # NaN -> None
    except (TypeError, ValueError):
        return None


class Data:
    def __init__(self):
        self.read_bw = None            # TB/s
        self.read_dev = ""
        self.gemm = []                 # (m, n, k, TFLOPs)
        self.ours = {}                 # (shape, dtype, case, seqs) -> record
        self.llama = {}                # (shape, dtype, case, seqs) -> (tok/s, source)
        self.hf = {}                   # (shape, mode, case, seqs) -> tok/s
        self.hf_version = ""
        self.files = []

    # ------------------------------------------------------------------ readers
    def read_path(self, p):
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.endswith((".jsonl", ".txt", ".log")):
                    self.read_file(os.path.join(p, name))
        elif os.path.isfile(p):
            self.read_file(p)

    def read_file(self, path):
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        self.files.append(path)
        ctx = None                     # (shape, dtype) from a llama.cpp header
        cols = None                    # llama-batched-bench column names
        for line in lines:
            s = line.strip()
            try:
                m = re.match(r"^== llama\.cpp (\S+) (\S+?):", s)
                if m:
                    ctx = (m.group(1).lower(), norm_dtype(m.group(2)))
                    cols = None
                    continue
                if s.startswith("|"):
                    cols = self.batched_row(s, ctx, cols)
                    continue
                if s.startswith("{"):
                    self.json_line(json.loads(s), ctx)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                continue

    def json_line(self, j, ctx):
        if not isinstance(j, dict):
            return
        if "peak" in j:
            if j["peak"] == "read_bw" and num(j.get("TBps")):
                self.read_bw = num(j["TBps"])
                self.read_dev = j.get("device", "")
            elif j["peak"] == "gemm_bf16" and num(j.get("TFLOPs")):
                self.gemm.append((j.get("m"), j.get("n"), j.get("k"), num(j["TFLOPs"])))
        elif j.get("bench") == "gpu_decode":
            shape, dtype = j.get("shape") or "", norm_dtype(j.get("dtype"))
            ls, ld = shape_dtype_of_label(j.get("label"))
            shape, dtype = shape or ls, dtype or ld or "bf16"
            if not shape or num(j.get("tok_s")) is None:
                return
            seqs = int(j.get("seqs", 1))
            if j.get("case") == "prefill":
                self.ours[(shape, dtype, "prefill", 1)] = j
            elif j.get("case") == "decode":
                self.ours[(shape, dtype, "decode", seqs)] = j
        elif j.get("peer") == "hf":
            self.hf_version = j.get("transformers", self.hf_version)
            if num(j.get("tok_s")) is None or not j.get("mode"):
                return
            case = j.get("case")
            seqs = 1 if case == "prefill" else int(j.get("seqs", 1))
            self.hf[(j.get("shape", ""), j["mode"], case, seqs)] = num(j["tok_s"])
        elif "avg_ts" in j and "n_prompt" in j:
            shape, dtype = ctx if ctx else self.llama_model_type(j.get("model_type", ""))
            if not shape:
                return
            npr, ngen = int(j.get("n_prompt", 0)), int(j.get("n_gen", 0))
            if npr > 0 and ngen == 0:
                self.llama[(shape, dtype, "prefill", 1)] = (num(j["avg_ts"]), f"llama-bench pp{npr}")
            elif ngen > 0 and npr == 0:
                self.llama[(shape, dtype, "decode", 1)] = (num(j["avg_ts"]), f"llama-bench tg{ngen}")

    @staticmethod
    def llama_model_type(mt):
        """'llama 1B F16' -> ('1b', 'bf16'): used when no header line came first."""
        mt = mt.lower()
        size = re.search(r"\b(\d+b)\b", mt)
        q = re.search(r"\b(f16|bf16|q8_0|q4_0)\b", mt)
        return (size.group(1) if size else "", norm_dtype(q.group(1)) if q else "")

    def batched_row(self, s, ctx, cols):
        cells = [c.strip() for c in s.strip().strip("|").split("|")]
        if "S_TG t/s" in cells or "S_TG" in cells:
            return [c.split()[0] if c else c for c in cells]  # "S_TG t/s" -> "S_TG"
        if cols is None or ctx is None or len(cells) != len(cols) or set(s) <= set("|-: "):
            return cols
        row = dict(zip(cols, cells))
        b, stg = num(row.get("B")), num(row.get("S_TG"))
        if b is None or stg is None:
            return cols
        shape, dtype = ctx
        key = (shape, dtype, "decode", int(b))
        if int(b) == 1:
            # llama-bench's tg128 wins for batch 1; this only fills in for it.
            if key not in self.llama or self.llama[key][1].startswith("batched"):
                self.llama[key] = (stg, "batched-bench B=1")
        else:
            self.llama[key] = (stg, f"batched-bench B={int(b)}")
        return cols

    # ------------------------------------------------------------------ table
    def gemm_peak(self):
        return max((g[3] for g in self.gemm), default=None)

    def rows(self):
        keys = set(self.ours) | set(self.llama)
        for (shape, mode, case, seqs) in self.hf:
            keys.add((shape, "bf16", case, seqs))
        shapes = sorted({k[0] for k in keys if k[0]},
                        key=lambda s: (SHAPE_ORDER.index(s) if s in SHAPE_ORDER else 99, s))
        dtypes = sorted({k[1] for k in keys},
                        key=lambda d: (DTYPE_ORDER.index(d) if d in DTYPE_ORDER else 99, d))
        cases = [("decode", n) for n in sorted(set(DECODE_SEQS) | {k[3] for k in keys if k[2] == "decode"})]
        cases.append(("prefill", 1))
        for sh in shapes:
            for dt in dtypes:
                for case, n in cases:
                    k = (sh, dt, case, n)
                    hk = [(sh, m, case, n) for m in ("eager", "compile")] if dt == "bf16" else []
                    if k in self.ours or k in self.llama or any(h in self.hf for h in hk):
                        yield k

    def render(self):
        out = []
        gp = self.gemm_peak()
        head = []
        if self.read_bw:
            head.append(f"read bandwidth {self.read_bw:.3f} TB/s" + (f" ({self.read_dev})" if self.read_dev else ""))
        if self.gemm:
            g = ", ".join(f"{m}x{n}x{k} {t:.0f}" for m, n, k, t in self.gemm)
            head.append(f"cuBLAS bf16 GEMM TFLOP/s: {g}")
        if head:
            out.append("Measured peaks: " + "; ".join(head) + ".")
            out.append("")
        out.append("| model | case | ours tok/s | ours achieved | % of peak | llama.cpp tok/s | ours / llama.cpp "
                   "| HF eager tok/s | HF compile tok/s | ours / HF compile |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k in self.rows():
            sh, dt, case, n = k
            o = self.ours.get(k)
            ours = num(o.get("tok_s")) if o else None
            ach, pct = DASH, DASH
            if o and case == "decode":
                gbs = num(o.get("achieved_GBps"))
                if gbs:
                    ach = f"{fmt(gbs)} GB/s"
                    if self.read_bw:
                        pct = f"{100 * gbs / (self.read_bw * 1000):.0f}% of BW"
            elif o and case == "prefill":
                tf = num(o.get("TFLOPs"))
                if not tf and num(o.get("params")) and ours:
                    tf = 2 * num(o["params"]) * ours / 1e12
                if tf:
                    ach = f"{fmt(tf)} TFLOP/s"
                    if gp:
                        pct = f"{100 * tf / gp:.0f}% of GEMM"
            ll = self.llama.get(k, (None, ""))[0]
            he = self.hf.get((sh, "eager", case, n)) if dt == "bf16" else None
            hc = self.hf.get((sh, "compile", case, n)) if dt == "bf16" else None
            hr, hr_note = (hc, "") if hc else (he, " (eager)")
            name = f"{sh.upper()} {dt}"
            cname = ("batch-1 decode" if n == 1 else f"decode, {n} seqs") if case == "decode" else \
                f"prefill {int(o.get('tokens', 512)) if o else 512}"
            out.append("| " + " | ".join([
                name, cname, fmt(ours), ach, pct, fmt(ll), ratio(ours, ll), fmt(he), fmt(hc),
                ratio(ours, hr) + (hr_note if ours and hr else "")]) + " |")
        out.append("")
        notes = ["ours: libinfer (bench/gpu_decode, median of runs). decode tok/s are aggregate over the sequences "
                 "(128-token prompts, 256 new tokens, window from the last first token to the last token); "
                 "achieved = (weight bytes + KV bytes read per step) / step time."]
        if gp:
            notes.append(f"prefill % = our TFLOP/s (2 x matrix parameters x tokens + attention) / the best cuBLAS "
                         f"bf16 GEMM figure above ({gp:.0f} TFLOP/s).")
        notes.append("llama.cpp: llama-bench tg128 (batch 1) and pp512 (prefill); llama-batched-bench S_TG for "
                     "N sequences (prompt 128, 128 new tokens); its f16 rows sit in our bf16 rows (same bytes).")
        if self.hf:
            notes.append(f"HF: transformers {self.hf_version or '?'}, bf16, sdpa; eager = dynamic cache, compile = "
                         f"static cache + torch.compile; prefill = one eager forward pass.")
        out += ["- " + n for n in notes]
        return "\n".join(out) + "\n"


def fmt(v):
    if v is None:
        return DASH
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.3g}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else DASH


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="*", default=["."])
    ap.add_argument("-o", "--out", default="")
    a = ap.parse_args()
    d = Data()
    for p in a.inputs:
        d.read_path(p)
    text = d.render()
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
