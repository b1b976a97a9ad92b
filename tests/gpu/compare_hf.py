#!/usr/bin/env python3
"""compare_hf.py — libinfer's logits against PyTorch/transformers on a random-weight Llama (issue 4).

    LIBINFER_PATH=build/libinfer.so python3 tests/gpu/compare_hf.py [--device cuda|cpu]
        [--shape dev|tiny] [--layers N --hidden N ...] [--variants tied,untied] [--keep DIR] [-o OUT.jsonl]

For each variant (tied / untied output matrix) it
 1. writes a bf16 Llama-architecture Hugging Face directory from a fixed seed (config.json,
    safetensors, tokenizer.json: bench/gpu/make_hf_model.py's writers, with the weight scaling
    described under "Weights" below);
 2. makes a 256-token prompt (BOS + random pieces of the vocabulary; see "Prompt");
 3. runs transformers' LlamaForCausalLM on it, once in bf16 (attn_implementation="sdpa", the
    logits copied to float32) and once with the same weights upcast to float32: the float32 run is
    the reference ("truth"); the bf16 run shows what a bf16 framework itself deviates by;
 4. runs libinfer through the Python binding (session backend CUDA with --device cuda, CPU with
    --device cpu) with want_logits = 1, max_tokens = 1: one LOGITS event per prompt position;
 5. reports, per position, rel. error = ||a - b||_2 / ||b||_2 of ours vs the fp32 reference, ours
    vs HF bf16, and HF bf16 vs fp32 (max and mean over positions), top-1 agreement, and the
    reference's top-1 margin.

Pass criterion (issue 4: "logits rel. error <= 1e-2 in bf16, top-1 agreement >= 99.5% over 256
positions"): against the float32 reference, max over positions of the rel. error <= --max-rel
(1e-2) and top-1 agreement >= --min-top1 (99.5%). Exit status 1 if any variant fails, 2 on a
setup error. -o writes JSON lines: one {"kind": "summary", ...} per variant, and one
{"kind": "position", ...} per position and variant.

Weights. With Llama's usual init (all matrices normal(0, 0.02)) the final hidden state is a
random direction with respect to the output matrix, so the 128256 logits are close to i.i.d.
Gaussian: their top-1 is then decided by the gap between the two largest of 128k Gaussian
samples, about sigma / sqrt(2 ln V) = sigma / 4.85 on average (exponentially distributed), while a
bf16 computation perturbs every logit by ~r * sigma (r = relative error of the hidden state, a few
1e-3 in bf16). The expected share of flipped positions is then ~5 r, 1-2 %: the 99.5 % criterion
would fail for any correct bf16 implementation, and would measure noise. Scaling every weight up
does not help (gap and error scale together). What gives top-1 a meaning is a logit distribution
with a structurally separated winner, as a trained model has, so the weights here are:
  - linear layers normal(0, gain / sqrt(fan_in)), gain 1 (= 0.022 at hidden 2048, i.e. Llama's
    0.02; the same activation scales at every shape, so --shape tiny on a CPU behaves like the
    device shape), RMSNorm weights 1 + normal(0, 0.1) (so a loader that ignores them shows);
  - the embedding normal(0, --embed-std = 1.0): each token's embedding is a sizeable part of the
    residual stream up to the last layer (the layers add the rest: attention over the context and
    the MLPs);
  - tied variant: the output matrix is the embedding, so the current token's own logit stands out
    (a "copy" prediction); untied variant: lm_head = embedding rows in a fixed random permutation
    pi, plus normal(0, 0.5 * embed_std) noise, so the winner is pi^-1(current token) (a "bigram"
    prediction; a loader that used the embedding as output matrix would fail top-1 outright).
The winner's margin (reported: mean/min of top1 - top2 of the fp32 reference, also in units of
the logits' standard deviation) is then several sigma, far above the bf16 perturbation, while the
rel. error still measures every layer's contribution to all 128256 logits. The summary also
reports how often the reference's top-1 is the planted token.

Prompt. infer_request takes text, not token ids, so the ids are chosen by text: random pieces of
the tokenizer's reachable vocabulary (printable bytes, the "Gx", "xy", "Gxy" merges; the filler
pieces "<fN>" cannot come out of any text: the pre-tokenizer splits them) are detokenized by
libinfer, the text re-tokenized by libinfer (with BOS), cut to 256 ids, and the cut checked to
re-tokenize to the same ids; transformers is given exactly those ids (asserted: libinfer's count
of prompt tokens = 256 and one LOGITS event for each position).
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "gpu"))
sys.path.insert(0, str(REPO / "bindings" / "python"))

import make_hf_model as mhm  # noqa: E402  (bench/gpu: tokenizer, config and safetensors writers)

SHAPES = {
    # Llama-3.2-1B's layer shape (hidden 2048, 32 heads / 8 KV heads, head_dim 64, FFN 8192,
    # vocab 128256, Llama-3 rope scaling factor 32) with 8 of its 16 layers: ~1.0 B parameters
    # untied, a few seconds per variant on an H100.
    "dev": dict(hidden=2048, layers=8, heads=32, kv=8, ffn=8192, vocab=128256, rope_factor=32.0),
    # the same head_dim and GQA ratio, small enough for a CPU: for checking the script itself.
    "tiny": dict(hidden=256, layers=2, heads=4, kv=1, ffn=768, vocab=128256, rope_factor=32.0),
}
N_POS = 256
DESIGN_VERSION = 2  # bump when the weight recipe changes (invalidates --keep directories)


def log(msg):
    print(f"[compare_hf {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ weights

class ScaledGen:
    """The weight source for make_hf_model.write_weights: it asks for tensors in
    make_hf_model.tensor_list order, with only (shape, ones); the names are taken from the same
    list, in step, to pick each tensor's recipe (see the module docstring). Generated on the CPU
    from a fixed seed, so a shape gives the same weights on every machine."""

    def __init__(self, s, seed, gain, embed_std, lm_noise, norm_std):
        import torch
        self.torch = torch
        self.names = iter(mhm.tensor_list(s))
        self.g = torch.Generator(device="cpu")
        self.g.manual_seed(seed)
        self.gain, self.embed_std, self.lm_noise, self.norm_std = gain, embed_std, lm_noise, norm_std
        self.embed = None
        self.kind = "torch-cpu scaled"

    def _normal(self, shape, std, mean=0.0):
        t = self.torch
        x = t.empty(shape, dtype=t.float32)
        x.normal_(mean, std, generator=self.g)
        return x

    def bytes(self, shape, ones=False):
        t = self.torch
        name, shp, _ = next(self.names)
        assert tuple(shp) == tuple(shape), (name, shp, shape)
        if name == "model.embed_tokens.weight":
            x = self._normal(shape, self.embed_std).to(t.bfloat16)
            self.embed = x
        elif name.endswith("norm.weight"):
            x = self._normal(shape, self.norm_std, 1.0).clamp_(min=0.5).to(t.bfloat16)
        elif name == "lm_head.weight":
            perm = t.randperm(shape[0], generator=self.g)
            x = (self.embed[perm].float() + self._normal(shape, self.lm_noise * self.embed_std)).to(t.bfloat16)
            self.perm = perm
            self.embed = None
        else:  # q/k/v/o, gate/up/down: [out, in]
            x = self._normal(shape, self.gain / math.sqrt(shape[1])).to(t.bfloat16)
        return x.contiguous().view(t.int16).numpy()


def make_model(out, s, seed, design, force=False):
    """Write the HF directory (or reuse it if its .complete marker names the same recipe).
    Returns the permutation's inverse for the untied variant (token -> planted prediction) as a
    list, or None (tied: the planted prediction is the token itself)."""
    marker = os.path.join(out, ".complete")
    recipe = dict(shape=s, seed=seed, design=design, version=DESIGN_VERSION)
    if os.path.exists(marker) and not force:
        try:
            with open(marker) as f:
                m = json.load(f)
            if m.get("recipe") == recipe:
                log(f"reusing {out}")
                return m.get("planted")
        except (ValueError, OSError):
            pass
    os.makedirs(out, exist_ok=True)
    if os.path.exists(marker):
        os.unlink(marker)
    t0 = time.time()
    tok, tok_cfg, n_base = mhm.make_tokenizer(s["vocab"])
    bos, eos = n_base, n_base + 1
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(mhm.config(s, bos, eos, 131072), f, indent=2)  # as Llama 3.1/3.2's config.json
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": bos, "eos_token_id": [eos, n_base + 8, n_base + 9], "do_sample": False},
                  f, indent=2)
    gen = ScaledGen(s, seed, **design)
    total = mhm.write_weights(out, s, gen, mhm.SHARD_BYTES)
    planted = None
    if not s["tied"]:
        inv = [0] * s["vocab"]
        for v, src in enumerate(gen.perm.tolist()):  # lm_head row v = embedding row perm[v]
            inv[src] = v
        planted = inv
    with open(marker, "w") as f:
        json.dump({"recipe": recipe, "planted": planted}, f)
    log(f"wrote {out}: {total / 1e9:.2f} GB of bf16 weights in {time.time() - t0:.1f} s")
    return planted


# ------------------------------------------------------------------------------ libinfer

def open_session(backend, threads):
    """A libinfer Session (the binding), with the backend asked for; returns (session, lines
    logged at creation and load) so the report can say which backend ran."""
    from libinfer import _ffi
    import libinfer

    # The binding's infer_session_params may lag the header (it lacked n_devices/devices[]
    # when this was written: infer_session_params_init then writes past the ctypes struct,
    # and a log callback lands in devices[]). Ask the library for its sizeof (the `size`
    # field that _init writes) and use a header-accurate struct when they differ.
    buf = ctypes.create_string_buffer(4096)
    _ffi.lib.infer_session_params_init(ctypes.cast(buf, ctypes.POINTER(_ffi.infer_session_params)))
    c_size = ctypes.c_size_t.from_buffer(buf).value
    if ctypes.sizeof(_ffi.infer_session_params) != c_size:
        class fixed(ctypes.Structure):  # include/infer.h's infer_session_params
            _fields_ = [("size", ctypes.c_size_t), ("backend", ctypes.c_int), ("threading", ctypes.c_int),
                        ("n_threads", ctypes.c_int), ("queue_capacity", ctypes.c_int),
                        ("max_running", ctypes.c_int), ("max_batch_tokens", ctypes.c_int),
                        ("kv_block_tokens", ctypes.c_int), ("kv_cache_bytes", ctypes.c_size_t),
                        ("prefix_cache", ctypes.c_int), ("n_devices", ctypes.c_int),
                        ("devices", ctypes.c_int * 8), ("log_fn", _ffi.infer_log_fn),
                        ("log_user", ctypes.c_void_p), ("log_level", ctypes.c_int)]
        if ctypes.sizeof(fixed) != c_size:
            raise SystemExit(f"infer_session_params: the library's is {c_size} bytes, the binding's "
                             f"{ctypes.sizeof(_ffi.infer_session_params)}, this script's {ctypes.sizeof(fixed)}")
        log(f"note: the binding's infer_session_params is {ctypes.sizeof(_ffi.infer_session_params)} bytes, "
            f"the library's {c_size} (n_devices/devices[] missing): using a header-accurate struct")
        _ffi.infer_session_params = fixed
        _ffi.lib.infer_session_params_init.argtypes = [ctypes.POINTER(fixed)]
        _ffi.lib.infer_session_create.argtypes = [ctypes.POINTER(fixed), ctypes.POINTER(ctypes.c_void_p)]

    lines = []
    be = {"cuda": 2, "cpu": "cpu", "auto": "auto"}[backend]  # the binding names only auto/cpu
    sess = libinfer.Session(threads=threads, threading="caller", backend=be, log=lambda lv, m: lines.append(m),
                            log_level="info", kv_cache_bytes=1 << 30, max_batch_tokens=512)
    return sess, lines


def logits_request(sess, model, text, n_expect, vocab):
    """Submit `text` (BOS added) with want_logits = 1, max_tokens = 1, greedy; return a float32
    [n_expect, vocab] array of the LOGITS events and the DONE event's prompt-token count. The
    binding's generate() has no want_logits and drops LOGITS events, so this submits and polls
    through its ctypes layer (_ffi) on the session's handle (threading="caller": this thread is
    the only poller)."""
    import numpy as np
    from libinfer import _ffi

    rq = _ffi.infer_request()
    _ffi.lib.infer_request_init(ctypes.byref(rq))
    rq.size = ctypes.sizeof(rq)
    rq.kind = _ffi.INFER_REQ_GENERATE
    rq.model = model.encode()
    keep = text.encode("utf-8")
    rq.prompt = keep
    rq.add_bos = 1
    rq.max_tokens = 1
    rq.temperature = 0.0
    rq.want_logits = 1
    rq.ignore_eos = 1
    rid = _ffi.infer_request_id(0)
    st = _ffi.lib.infer_submit(sess._s, ctypes.byref(rq), ctypes.byref(rid))
    if st != 0:
        raise RuntimeError(f"infer_submit: {_ffi.lib.infer_status_str(st).decode()}: "
                           f"{_ffi.lib.infer_last_error(sess._s).decode()}")
    out = np.full((n_expect, vocab), np.nan, dtype=np.float32)
    seen = np.zeros(n_expect, dtype=bool)
    evs = (_ffi.infer_event * 64)()
    n_prompt, token = None, None
    t_end = time.time() + 600
    while n_prompt is None:
        if time.time() > t_end:
            raise RuntimeError("no DONE event in 600 s")
        n = _ffi.lib.infer_poll(sess._s, evs, 64, 1000)
        if n < 0:
            raise RuntimeError(f"infer_poll: {_ffi.lib.infer_status_str(n).decode()}")
        for i in range(n):
            ev = evs[i]
            if ev.id != rid.value:
                continue
            if ev.type == _ffi.INFER_EVENT_LOGITS:
                if ev.n_logits != vocab or not 0 <= ev.pos < n_expect or seen[ev.pos]:
                    raise RuntimeError(f"unexpected LOGITS event: pos {ev.pos}, n_logits {ev.n_logits}")
                out[ev.pos] = np.ctypeslib.as_array(ev.logits, shape=(vocab,))  # copied
                seen[ev.pos] = True
            elif ev.type == _ffi.INFER_EVENT_TOKEN:
                token = ev.token
            elif ev.type == _ffi.INFER_EVENT_DONE:
                if ev.status != 0:
                    raise RuntimeError(f"request ended with {_ffi.lib.infer_status_str(ev.status).decode()}")
                n_prompt = ev.n_prompt_tokens
    if not seen.all():
        raise RuntimeError(f"LOGITS events missing for {int((~seen).sum())} of {n_expect} positions")
    return out, n_prompt, token


def make_prompt(sess, model, n_base, seed):
    """BOS + random reachable pieces, as ids that libinfer's tokenizer gives back for their text
    (see the module docstring). Returns (ids, text)."""
    import numpy as np

    tok, _, _ = mhm.make_tokenizer(n_base + mhm.N_SPECIAL)
    b2u = mhm.bytes_to_unicode()
    printable = {b2u[b] for b in list(range(0x20, 0x7F)) + [0x0A]}
    cands = sorted(i for p, i in tok["model"]["vocab"].items()
                   if i < n_base and not p.startswith("<f") and (i >= 256 or p in printable))
    rng = np.random.default_rng(seed)
    for attempt in range(20):
        pick = rng.choice(cands, size=N_POS + 64).tolist()
        text = sess.detokenize(model, pick)
        ids = sess.tokenize(model, text, add_bos=True)
        if len(ids) < N_POS:
            continue
        ids = ids[:N_POS]
        text = sess.detokenize(model, ids[1:])
        if sess.tokenize(model, text, add_bos=True) == ids:
            return ids, text
    raise RuntimeError("could not build a prompt that re-tokenizes to itself")


# ------------------------------------------------------------------------------ transformers

def hf_logits(path, ids, device):
    """transformers' logits for `ids` (one forward pass each): the bf16 run (as float32), the fp32
    run, and the fp32 logits with the decoder layers skipped (lm_head(norm(embedding))), which
    shows how much the layers change the logits."""
    import torch
    from transformers import LlamaForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        m = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa")
    except TypeError:  # transformers < 4.56 knows only torch_dtype
        m = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    m = m.to(device).eval()
    assert m.dtype == torch.bfloat16
    x = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.no_grad():
        t0 = time.time()
        lb = m(input_ids=x).logits[0].float().cpu().numpy()
        tb = time.time() - t0
        m = m.float()  # the same bf16 weights, upcast exactly
        t0 = time.time()
        lf = m(input_ids=x).logits[0].float().cpu().numpy()
        tf = time.time() - t0
        l0 = m.lm_head(m.model.norm(m.model.embed_tokens(x)))[0].float().cpu().numpy()
    del m
    if device == "cuda":
        torch.cuda.empty_cache()
    return lb, lf, l0, tb, tf


# ------------------------------------------------------------------------------ metrics

def rel_err(a, b):
    """||a - b|| / ||b|| per row (float64)."""
    import numpy as np
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return np.linalg.norm(a64 - b64, axis=1) / np.linalg.norm(b64, axis=1)


def top2(x):
    import numpy as np
    part = np.argpartition(-x, 1, axis=1)[:, :2]
    v = np.take_along_axis(x, part, axis=1)
    order = np.argsort(-v, axis=1)
    part = np.take_along_axis(part, order, axis=1)
    v = np.take_along_axis(v, order, axis=1)
    return part[:, 0], v[:, 0] - v[:, 1]


def run_variant(a, tied, outf):
    import numpy as np

    s = dict(SHAPES[a.shape])
    for k in ("hidden", "layers", "heads", "kv", "ffn", "vocab"):
        if getattr(a, k) is not None:
            s[k] = getattr(a, k)
    s["tied"] = tied
    s["name"] = f"random-llama-{a.shape}-{'tied' if tied else 'untied'}"
    if s["hidden"] % s["heads"] or s["heads"] % s["kv"]:
        raise SystemExit("hidden must be a multiple of heads, heads of kv")
    design = dict(gain=a.gain, embed_std=a.embed_std, lm_noise=a.lm_noise, norm_std=a.norm_std)
    tag = "tied" if tied else "untied"
    path = os.path.join(a.keep, tag)
    planted = make_model(path, s, a.seed + (0 if tied else 1), design, force=a.force)
    n_base = s["vocab"] - mhm.N_SPECIAL

    sess, lines = open_session(a.device if a.backend == "default" else a.backend, a.threads)
    try:
        t0 = time.time()
        sess.load("m", path)
        t_load = time.time() - t0
        ids, text = make_prompt(sess, "m", n_base, a.seed)
        assert len(ids) == N_POS and ids[0] == n_base, ids[:4]
        t0 = time.time()
        ours, n_prompt, tok = logits_request(sess, "m", text, N_POS, s["vocab"])
        t_ours = time.time() - t0
        assert n_prompt == N_POS, f"libinfer counted {n_prompt} prompt tokens, expected {N_POS}"
    finally:
        sess.close()
    backend = next((ln.split("backend ", 1)[1].split(",")[0] for ln in lines if "session created: backend" in ln), "?")
    for ln in lines:
        log(f"libinfer: {ln}")

    lb, lf, l0, t_hfb, t_hff = hf_logits(path, ids, a.device)
    assert lb.shape == lf.shape == ours.shape == (N_POS, s["vocab"]), (lb.shape, ours.shape)
    if not np.isfinite(ours).all():
        log("ours: non-finite logits")

    e_of = rel_err(ours, lf)   # ours vs fp32 reference  (the criterion)
    e_ob = rel_err(ours, lb)   # ours vs HF bf16
    e_bf = rel_err(lb, lf)     # HF bf16 vs fp32: a bf16 framework's own deviation
    t_o, _ = top2(ours)
    t_b, _ = top2(lb)
    t_f, margin = top2(lf)
    sd = lf.std(axis=1)
    plant = np.array(ids) if planted is None else np.array(planted)[ids]
    agree_of = float((t_o == t_f).mean())
    agree_ob = float((t_o == t_b).mean())
    agree_bf = float((t_b == t_f).mean())
    passed = bool(e_of.max() <= a.max_rel and agree_of >= a.min_top1 and np.isfinite(ours).all())
    summ = {
        "kind": "summary", "variant": tag, "device": a.device, "backend": backend,
        "shape": {k: s[k] for k in ("hidden", "layers", "heads", "kv", "ffn", "vocab", "tied")},
        "design": design, "seed": a.seed, "positions": N_POS,
        "rel_ours_vs_fp32": {"max": float(e_of.max()), "mean": float(e_of.mean())},
        "rel_ours_vs_bf16": {"max": float(e_ob.max()), "mean": float(e_ob.mean())},
        "rel_bf16_vs_fp32": {"max": float(e_bf.max()), "mean": float(e_bf.mean())},
        "top1_ours_vs_fp32": agree_of, "top1_ours_vs_bf16": agree_ob, "top1_bf16_vs_fp32": agree_bf,
        "ref_margin": {"mean": float(margin.mean()), "min": float(margin.min()),
                       "mean_sd": float((margin / sd).mean()), "min_sd": float((margin / sd).min())},
        "ref_top1_is_planted": float((t_f == plant).mean()),
        "logit_sd_mean": float(sd.mean()),
        # rel. difference between the reference and the same model without its decoder layers:
        # how much of the logits the layers make (0 = none)
        "layers_effect": float(rel_err(l0, lf).mean()),
        "ours_sampled_is_argmax": bool(tok == int(t_o[-1])),
        "criterion": {"vs": "fp32", "max_rel": a.max_rel, "min_top1": a.min_top1},
        "pass": passed,
        "time_s": {"load": round(t_load, 2), "ours": round(t_ours, 2), "hf_bf16": round(t_hfb, 2),
                   "hf_fp32": round(t_hff, 2)},
    }
    if outf:
        outf.write(json.dumps(summ) + "\n")
        for p in range(N_POS):
            outf.write(json.dumps({"kind": "position", "variant": tag, "pos": p, "token": ids[p],
                                   "rel_ours_vs_fp32": float(e_of[p]), "rel_ours_vs_bf16": float(e_ob[p]),
                                   "rel_bf16_vs_fp32": float(e_bf[p]), "top1_ours": int(t_o[p]),
                                   "top1_bf16": int(t_b[p]), "top1_fp32": int(t_f[p]),
                                   "ref_margin": float(margin[p])}) + "\n")
        outf.flush()
    return summ


def print_table(rows):
    print()
    print(f"{'variant':8} {'backend':8} {'':>7} {'rel err vs fp32 max / mean':>24} "
          f"{'top-1 vs fp32':>14} {'ref margin mean / min (sd)':>28} {'planted':>8}  pass")
    for r in rows:
        for who, ek, tk in (("ours", "rel_ours_vs_fp32", "top1_ours_vs_fp32"),
                            ("hf-bf16", "rel_bf16_vs_fp32", "top1_bf16_vs_fp32")):
            e = r[ek]
            extra = (f"{r['ref_margin']['mean']:7.2f} / {r['ref_margin']['min']:5.2f} "
                     f"({r['ref_margin']['mean_sd']:.1f} / {r['ref_margin']['min_sd']:.1f})"
                     if who == "ours" else "")
            plant = f"{100 * r['ref_top1_is_planted']:7.1f}%" if who == "ours" else ""
            ok = ("PASS" if r["pass"] else "FAIL") if who == "ours" else ""
            print(f"{r['variant'] if who == 'ours' else '':8} {r['backend'] if who == 'ours' else '':8} "
                  f"{who:>7} {e['max']:12.3e} / {e['mean']:9.3e} {100 * r[tk]:13.1f}% {extra:>28} "
                  f"{plant:>8}  {ok}")
        print(f"{'':8} {'':8} {'ours vs hf-bf16':>15}: rel max {r['rel_ours_vs_bf16']['max']:.3e}, "
              f"mean {r['rel_ours_vs_bf16']['mean']:.3e}; top-1 {100 * r['top1_ours_vs_bf16']:.1f}%")
        print(f"{'':8} {'':8} {'':>15}  the layers change the reference logits by {r['layers_effect']:.2f} (rel); "
              f"sampled token = argmax: {r['ours_sampled_is_argmax']}")
    c = rows[0]["criterion"]
    print(f"\ncriterion: ours vs the fp32 reference, max rel err <= {c['max_rel']:g}, "
          f"top-1 >= {100 * c['min_top1']:g}% over {N_POS} positions")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="where both run: cuda (libinfer backend CUDA) or cpu (libinfer backend CPU)")
    ap.add_argument("--backend", choices=("default", "auto", "cuda", "cpu"), default="default",
                    help="libinfer's session backend (default: as --device)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None,
                    help="preset (default: dev with --device cuda, tiny with --device cpu)")
    for k in ("hidden", "layers", "heads", "kv", "ffn", "vocab"):
        ap.add_argument("--" + k, type=int, default=None, help=f"override the preset's {k}")
    ap.add_argument("--variants", default="tied,untied", help="tied, untied or both (default)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--gain", type=float, default=1.0, help="linear weights: std gain/sqrt(fan_in)")
    ap.add_argument("--embed-std", type=float, default=1.0)
    ap.add_argument("--lm-noise", type=float, default=0.5, help="untied lm_head noise, x embed-std")
    ap.add_argument("--norm-std", type=float, default=0.1, help="RMSNorm weights 1 + normal(0, this)")
    ap.add_argument("--keep", default=None, help="model directory root, kept and reused "
                    "(default: a temporary one, removed at the end)")
    ap.add_argument("--force", action="store_true", help="rewrite the models even if --keep has them")
    ap.add_argument("--threads", type=int, default=0, help="libinfer CPU threads (0 = all)")
    ap.add_argument("--max-rel", type=float, default=1e-2)
    ap.add_argument("--min-top1", type=float, default=0.995)
    ap.add_argument("-o", "--out", default=None, help="JSON lines output")
    a = ap.parse_args()
    if a.shape is None:
        a.shape = "dev" if a.device == "cuda" else "tiny"
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    if not variants or any(v not in ("tied", "untied") for v in variants):
        ap.error("--variants: tied, untied or tied,untied")

    import tempfile
    tmp = None
    if a.keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="compare_hf.")
        a.keep = tmp.name
    import torch
    import transformers
    import libinfer
    if a.device == "cuda" and not torch.cuda.is_available():
        log("torch sees no GPU")
        return 2
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, libinfer {libinfer.version()} "
        f"from {libinfer.library_path}" + (f", {torch.cuda.get_device_name()}" if a.device == "cuda" else ""))
    outf = open(a.out, "w") if a.out else None
    rows = []
    try:
        for v in variants:
            rows.append(run_variant(a, v == "tied", outf))
    finally:
        if outf:
            outf.close()
        if tmp is not None:
            tmp.cleanup()
    print_table(rows)
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
