#!/usr/bin/env python3
"""hf_peer.py — HF transformers on the same synthetic model as libinfer's gpu_decode: the peer
most users would otherwise run.

    hf_peer.py --model DIR --shape 1b [--modes eager,compile] [--seqs 1,32] [--new-tokens 256]
               [--prompt-tokens 128] [--prefill 512] [--repeat 2] [--budget SECONDS] [-o FILE]

Model: AutoModelForCausalLM, bf16, attn_implementation="sdpa", on cuda (--device).
Modes:
  eager    model.generate with the default dynamic KV cache, nothing compiled;
  compile  model.generate with cache_implementation="static", which recent transformers compile
           by themselves (torch.compile of the decode step, mode "reduce-overhead": CUDA graphs),
           as the HF docs recommend for fast decoding; on versions without that automatic
           compilation model.forward is wrapped in torch.compile(mode="reduce-overhead",
           fullgraph=True) instead. The first generate of each batch size compiles (warm-up).
Cases, as gpu_decode measures them:
  decode   N sequences of --prompt-tokens random token ids, greedy, exactly --new-tokens new
           tokens (min_new_tokens = max_new_tokens); tok/s = N * (new - 1) / (end - first token),
           the first token's time taken by a StoppingCriteria that synchronizes on its first call
           (generate synchronizes every step anyway to check stopping);
  prefill  one forward pass over --prefill tokens, batch 1, logits of the last position only
           (eager mode; generate's prefill is not compiled in either mode).
Each case: a warm-up, then --repeat timed runs, the median counts. Cases that would start after
--budget seconds are skipped (a line says so). A CUDA out-of-memory error skips that case.
Output: JSON lines on stdout (and appended to -o FILE):
  {"peer":"hf","mode":"compile","shape":"1b","case":"decode","seqs":1,"tok_s":...,"step_ms":...}
"""
import argparse
import json
import os
import statistics
import sys
import time


def log(msg):
    print(f"[hf_peer {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--shape", default="")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--seqs", default="1,32")
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--prefill", type=int, default=512, help="0 = no prefill case")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--budget", type=float, default=420, help="seconds after which no new case starts")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("-o", "--out", default="")
    a = ap.parse_args()
    t_start = time.time()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig, StoppingCriteria, StoppingCriteriaList

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    out_f = open(a.out, "a") if a.out else None
    base = {"peer": "hf", "shape": a.shape, "transformers": transformers.__version__, "torch": torch.__version__}

    def emit(rec):
        line = json.dumps({**base, **rec})
        print(line, flush=True)
        if out_f:
            out_f.write(line + "\n")
            out_f.flush()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    log(f"transformers {transformers.__version__}, torch {torch.__version__}, loading {a.model} ...")
    t0 = time.time()
    kw = dict(attn_implementation="sdpa")
    model = None
    try:  # straight to the device (needs accelerate)
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, device_map=a.device, **kw)
    except (ValueError, ImportError, TypeError) as e:
        log(f"  device_map={a.device} unavailable ({str(e)[:80]}...): loading on the CPU, then moving")
    if model is None:
        try:
            model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, **kw)
        except TypeError:  # transformers < 4.56: torch_dtype
            model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16, **kw)
        model = model.to(dev)
    model.eval()
    log(f"  loaded in {time.time() - t0:.1f} s")
    vocab = model.config.vocab_size
    eos = model.config.eos_token_id
    pad = eos[0] if isinstance(eos, list) else (eos if eos is not None else 0)
    has_disable_compile = hasattr(GenerationConfig(), "disable_compile")
    auto_compile = hasattr(GenerationConfig(), "compile_config") and hasattr(model, "get_compiled_call")
    gen = torch.Generator(device="cpu").manual_seed(0)

    def prompt(n_seq, n_tok):
        ids = torch.randint(0, max(2, vocab - 256), (n_seq, n_tok), generator=gen).to(dev)
        return ids, torch.ones_like(ids)

    class FirstToken(StoppingCriteria):
        """Records when the first new token exists; never stops anything."""

        def __init__(self):
            self.t = None

        def __call__(self, input_ids, scores, **kwargs):
            if self.t is None:
                sync()
                self.t = time.perf_counter()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def generate(mode, ids, mask, new):
        timer = FirstToken()
        g = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=pad,
                 stopping_criteria=StoppingCriteriaList([timer]))
        if mode == "compile":
            g["cache_implementation"] = "static"
        elif has_disable_compile:
            g["disable_compile"] = True
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, **g)
        sync()
        t1 = time.perf_counter()
        got = out.shape[1] - ids.shape[1]
        if got != new:
            log(f"  warning: generated {got} tokens, not {new}")
        return t0, timer.t, t1, got

    state = {"how": "auto (static cache)" if auto_compile else "torch.compile(model.forward)"}

    def graphs():
        """Graphs torch.compile has produced so far in this process (-1: unknown)."""
        try:
            from torch._dynamo.utils import counters
            return int(counters["stats"]["unique_graphs"])
        except Exception:
            return -1

    def over_budget(what):
        el = time.time() - t_start
        if el > a.budget:
            log(f"  skipping {what}: {el:.0f} s spent, budget {a.budget:.0f} s")
            emit({"case": what, "skipped": f"budget {a.budget:.0f} s"})
            return True
        return False

    def decode_case(mode, n):
        what = f"{mode} decode {n}"
        if over_budget(what):
            return
        P, G = a.prompt_tokens, a.new_tokens
        try:
            ids, mask = prompt(n, P)
            tw = time.time()
            # Warm-up: in compile mode the same shapes (static cache of P + G) so nothing recompiles.
            generate(mode, ids, mask, G if mode == "compile" else min(G, 32))
            log(f"  {what}: warm-up {time.time() - tw:.1f} s")
            if mode == "compile" and state["how"] == "auto (static cache)" and graphs() == 0:
                # generate did not compile by itself (a version or device it skips): do it by hand.
                log(f"  {what}: generate compiled nothing; wrapping model.forward in torch.compile")
                model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
                state["how"] = "torch.compile(model.forward)"
                tw = time.time()
                generate(mode, ids, mask, G)
                log(f"  {what}: warm-up {time.time() - tw:.1f} s")
            runs, ttfts = [], []
            for r in range(a.repeat):
                t0, tf, t1, got = generate(mode, ids, mask, G)
                tok_s = n * (got - 1) / (t1 - tf) if tf and t1 > tf else 0.0
                runs.append(tok_s)
                ttfts.append(tf - t0 if tf else 0.0)
                log(f"  {what}: run {r + 1}/{a.repeat}: {tok_s:.1f} tok/s, ttft {1e3 * (tf - t0):.1f} ms")
            med = statistics.median(runs)
            rec = {"mode": mode, "case": "decode", "seqs": n, "tok_s": round(med, 3),
                   "step_ms": round(1e3 * n / med, 4) if med > 0 else None,
                   "ttft_s": round(statistics.median(ttfts), 5), "prompt_tokens": P, "new_tokens": G,
                   "runs": [round(x, 3) for x in runs]}
            if mode == "compile":
                rec["compile"] = state["how"]
                rec["dynamo_unique_graphs"] = graphs()
            emit(rec)
        except torch.cuda.OutOfMemoryError as e:
            log(f"  {what}: out of memory: {str(e)[:200]}")
            emit({"mode": mode, "case": "decode", "seqs": n, "error": "out of memory"})
            torch.cuda.empty_cache()

    def prefill_case():
        what = f"eager prefill {a.prefill}"
        if over_budget(what):
            return
        ids, _ = prompt(1, a.prefill)

        def fwd():
            with torch.inference_mode():
                try:
                    return model(input_ids=ids, use_cache=False, logits_to_keep=1)
                except TypeError:
                    return model(input_ids=ids, use_cache=False)

        try:
            for _ in range(2):
                fwd()
            times = []
            for _ in range(max(5, a.repeat)):
                sync()
                t0 = time.perf_counter()
                fwd()
                sync()
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            log(f"  {what}: {1e3 * med:.2f} ms, {a.prefill / med:.0f} tok/s")
            emit({"mode": "eager", "case": "prefill", "seqs": 1, "tokens": a.prefill,
                  "tok_s": round(a.prefill / med, 2), "step_ms": round(1e3 * med, 4),
                  "runs": [round(a.prefill / t, 2) for t in times]})
        except torch.cuda.OutOfMemoryError:
            emit({"mode": "eager", "case": "prefill", "seqs": 1, "error": "out of memory"})
            torch.cuda.empty_cache()

    modes = [m for m in a.modes.split(",") if m]
    seqs = [int(x) for x in a.seqs.split(",") if x]
    for mode in modes:
        if mode not in ("eager", "compile"):
            log(f"unknown mode {mode} (eager, compile)")
            return 2
        plain_forward = model.forward
        if mode == "compile" and not auto_compile:
            model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
        for n in seqs:
            decode_case(mode, n)
        model.forward = plain_forward
        if mode == "eager" and a.prefill > 0:
            prefill_case()
    log(f"done in {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
