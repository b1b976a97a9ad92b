#!/usr/bin/env python3
"""
gen_pretok_ref.py — expected pre-tokenizer splits and Unicode properties for tests/test_pretok.c.

Writes tests/data/pretok_ref.txt (committed; the C test needs no Python). Needs the PyPI
`regex` module (it has \\p{L}); run with the Python whose unicodedata made lib/unicode_data.c
(3.13 -> Unicode 15.1), e.g.  python3.13 -m pip install regex && python3.13 tests/gen_pretok_ref.py

Reference semantics. Each pre-tokenizer is a list of regexes applied as llama.cpp's
unicode_regex_split() does (src/llama-vocab.cpp, llm_tokenizer_bpe): the first regex splits the
text into its matches and the unmatched gaps between them; each later regex splits every piece
of the previous stage the same way, never looking across a piece boundary. With one regex this
is the Hugging Face `Split(behavior=Isolated)` / ByteLevel(use_regex) pre-tokenizer.
The patterns are llama.cpp's (its Llama 3 / Qwen2 strings spell HF's (?i:'s|...) as '[sS]...);
GPT-2 is HF ByteLevel's default (llama.cpp drops the final |\\s+, which changes nothing: such text
is an unmatched gap of the same extent).

llama.cpp does not run a regex engine for GPT-2 and Llama 3: it has hand-written splitters
(unicode_regex_split_custom_gpt2/_llama3 in src/unicode.cpp). They are ported below
(llamacpp_gpt2 / llamacpp_llama3) and compared with the regex module on every generated
string; the script stops if they ever disagree, so the expectations are those of both.

Invalid UTF-8 is decoded with errors="surrogateescape": each bad byte becomes U+DC80..U+DCFF
(category Cs, so [^\\s\\p{L}\\p{N}]), which is the rule lib/unicode.h documents.

Strings are drawn with a fixed seed; characters whose category differs between unicodedata
and the regex module's (newer) Unicode tables are never drawn.
"""
import hashlib
import os
import random
import sys
import unicodedata

import regex

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
          r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

KINDS = {  # name as in tok_pretok.c pretok_kind_name() -> regex stages
    "gpt2": [GPT2],
    "llama3": [LLAMA3],
    "qwen2": [QWEN2],
    "smollm": [r"\p{N}", GPT2],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
}
COMPILED = {k: [regex.compile(p) for p in v] for k, v in KINDS.items()}


def regex_split(kind, s):
    pieces = [s]
    for rx in COMPILED[kind]:
        out = []
        for p in pieces:
            last = 0
            for m in rx.finditer(p):
                if m.start() > last:
                    out.append(p[last:m.start()])
                out.append(m.group())
                last = m.end()
            if last < len(p):
                out.append(p[last:])
        pieces = out
    return pieces


# ---- port of llama.cpp's custom splitters (unicode.cpp), for the cross-check ----
def _is_ws(c):
    return regex.match(r"\s", c) is not None


def _cls(c):
    """flags as llama.cpp sees them: None = out of range; else (letter, number, whitespace)."""
    if c is None:
        return None
    return (regex.match(r"\p{L}", c) is not None, regex.match(r"\p{N}", c) is not None, _is_ws(c))


def _other(f):
    return f is not None and not (f[0] or f[1] or f[2])


def llamacpp_gpt2(s):
    out, pos, n = [], 0, len(s)
    at = lambda i: s[i] if i < n else None
    while pos < n:
        c = s[pos]
        if c == "'" and pos + 1 < n:
            if at(pos + 1) in ("s", "t", "m", "d"):
                out.append(s[pos:pos + 2]); pos += 2; continue
            if pos + 2 < n and s[pos + 1:pos + 3] in ("re", "ve", "ll"):
                out.append(s[pos:pos + 3]); pos += 3; continue
        f2 = _cls(at(pos + 1)) if c == " " else _cls(c)
        start = pos
        for k in (0, 1):
            if f2 is not None and f2[k]:
                pos += (c == " ")
                while _cls(at(pos)) is not None and _cls(at(pos))[k]:
                    pos += 1
                break
        else:
            if _other(f2):
                pos += (c == " ")
                while _other(_cls(at(pos))):
                    pos += 1
            else:
                nws = 0
                while at(pos + nws) is not None and _is_ws(at(pos + nws)):
                    nws += 1
                if nws > 1 and at(pos + nws) is not None:
                    pos += nws - 1
                elif nws > 0:
                    pos += nws
                else:
                    pos += 1
        out.append(s[start:pos])
    return out


def llamacpp_llama3(s, maxdig):
    out, pos, n = [], 0, len(s)
    at = lambda i: s[i] if i < n else None
    while pos < n:
        c, f = s[pos], _cls(s[pos])
        start = pos
        if c == "'" and pos + 1 < n:
            c1 = s[pos + 1].lower() if s[pos + 1] < "\x80" else s[pos + 1]
            if c1 in ("s", "t", "m", "d"):
                out.append(s[pos:pos + 2]); pos += 2; continue
            if pos + 2 < n and (c1 + (s[pos + 2].lower() if s[pos + 2] < "\x80" else s[pos + 2])) in ("re", "ve", "ll"):
                out.append(s[pos:pos + 3]); pos += 3; continue
        if not (c in "\r\n" or f[1]) and (f[0] or (_cls(at(pos + 1)) or (0, 0, 0))[0]):
            pos += 1
            while _cls(at(pos)) is not None and _cls(at(pos))[0]:
                pos += 1
            out.append(s[start:pos]); continue
        if f[1]:
            while pos - start < maxdig and _cls(at(pos)) is not None and _cls(at(pos))[1]:
                pos += 1
            out.append(s[start:pos]); continue
        f2 = _cls(at(pos + 1)) if c == " " else f
        if f2 is None or _other(f2):
            pos += (c == " ")
            while _other(_cls(at(pos))):
                pos += 1
            while at(pos) in ("\r", "\n"):
                pos += 1
            out.append(s[start:pos]); continue
        nws, last_nl = 0, 0
        while at(pos + nws) is not None and _is_ws(at(pos + nws)):
            if s[pos + nws] in "\r\n":
                last_nl = pos + nws + 1
            nws += 1
        if last_nl:
            pos = last_nl
        elif nws > 1 and at(pos + nws) is not None:
            pos += nws - 1
        elif nws > 0:
            pos += nws
        else:
            pos += 1
        out.append(s[start:pos])
    return out


CROSS = {"gpt2": llamacpp_gpt2, "llama3": lambda s: llamacpp_llama3(s, 3)}

# ---- test strings ----
rng = random.Random(20240611)


def agrees(ch):
    """True if unicodedata and the regex module classify ch the same way (and it is assigned)."""
    cat = unicodedata.category(ch)
    if cat == "Cn":
        return False
    for pat, pre in ((r"\p{L}", "L"), (r"\p{N}", "N"), (r"\p{P}", "P")):
        if (regex.match(pat, ch) is not None) != cat.startswith(pre):
            return False
    return True


LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
CHUNKS = [
    # apostrophes and contractions
    "'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL", "'d",
    "'D", "'", "''", "'x", "' s", "'1", "'é",
    # whitespace runs
    " ", " ", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\r\r\n", " \n", "\n ", " \t ",
    "\u00a0", "\u3000", "\u2009", "\u0085", "\u000b", "\u000c", "\u1680", "\u2028", "\u202f", "\u205f",
    "\u200b", "\ufeff", "\x1c", "\x1f",
    # punctuation and symbols
    ".", ",", "!", "?", "...", "-", "--", "(", ")", "[", "]", "{", "}", "\"", "#", "%", "&", "*", "/",
    ":", ";", "@", "\\", "_", "$", "+", "<", "=", ">", "^", "`", "|", "~", "…", "«", "»", "—", "¿", "。",
    "、", "€", "©", "°", "→", "∑",
    # letters beyond ASCII
    "é", "ñ", "Ä", "ß", "e\u0301", "a\u0308", "Ωμέγα", "Привет", "日本語", "中文", "한국어", "カタカナ",
    "ひらがな", "नमस्ते", "مرحبا", "שלום", "ไทย", "ǅ", "ʰ", "ᾨ",
    # numbers beyond ASCII digits
    "½", "²", "Ⅻ", "١٢٣", "๓", "௧௨", "①",
    # emoji and friends
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "❤\ufe0f", "🦙", "\u20e3",
    # controls, private use, marks alone
    "\x00", "\x07", "\x7f", "\ue000", "\u0301", "\u0903",
]
BAD_BYTES = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80",
             b"\xf0\x9f\x98", b"\xc1\xbf", b"\xfe"]
for ch in "".join(CHUNKS):
    assert agrees(ch), (ch, hex(ord(ch)))


def rand_chunk():
    r = rng.random()
    if r < 0.22:
        return "".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 8))).encode()
    if r < 0.34:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 7))).encode()
    if r < 0.37:
        return rng.choice(BAD_BYTES)
    if r < 0.39:  # any assigned code point both tables agree on
        while True:
            cp = rng.choice([rng.randint(0x80, 0x2FFF), rng.randint(0x3000, 0xFFFF), rng.randint(0x10000, 0x1FFFF)])
            ch = chr(cp)
            if not 0xD800 <= cp <= 0xDFFF and agrees(ch):
                return ch.encode()
    return rng.choice(CHUNKS).encode()


def edge_cases():
    e = ["", " ", "a", "'", "'s", "'ll", " '", "'  ", "\n", "\r\n", " \n", "  a", "   a", "\t a", " \ta",
         "a  ", "a  b", "a \t b", "a\t\tb", "  \n  b", "a\r\n\r\nb", "x\n\n  \n y", "1234567", " 123",
         "x 1", "a1b2", "12 345 6789", "½½½½", "..\n\n", "!!\r\n ", " !", "  !", "\u00a0a", "\u00a0\u00a0a",
         "\u3000\u3000!", "e\u0301\u0301", " \u0301", "\u0301a", "'S'T'Re", "don't", "DON'T", "we'VE",
         "$100", "1+1=2", "a|b^c~d", "`x`", "\u2028\u2029x", "\x85a", "1\u00a02", "٣٤٥٦٧"]
    out = [s.encode() for s in e]
    out += [b"\xff", b"a\xffb", b"\xc3", b"\xc3\xa9\xc3", b" \xff", b"  \xff", b"\xe2\x82a", b"1\xed\xa0\x802",
            b"\xf0\x9f\x98\x80\xf0\x9f\x98"]
    return out


def gen_strings(n):
    out = edge_cases()
    while len(out) < n:
        out.append(b"".join(rand_chunk() for _ in range(rng.randint(1, 10))))
    return out


def lens_of(pieces):
    ls = [len(p.encode("utf-8", "surrogateescape")) for p in pieces]
    assert all(ls)
    return ls


def fnv1a(values, nbytes):
    h = 0x811C9DC5
    for v in values:
        for k in range(nbytes):
            h ^= (v >> (8 * k)) & 0xFF
            h = (h * 0x01000193) & 0xFFFFFFFF
    return h


GC_ORDER = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
            "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"]
MAJOR = {"L": 0x001, "N": 0x002, "P": 0x004, "S": 0x008, "M": 0x010, "Z": 0x020, "C": 0x040}


def expect_flags(cp):
    cat = unicodedata.category(chr(cp))
    f = 0x080 if cat == "Cn" else MAJOR[cat[0]]
    if regex.match(r"\s", chr(cp)):  # White_Space, independently of gen_unicode.py's list
        f |= 0x100
    return f


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = os.path.join(here, "data", "pretok_ref.txt")
    inp_path = os.path.join(os.environ.get("INFER_SHARED", os.path.join(here, "..", "..", "shared")),
                            "tokenizer", "ggml-vocab-gpt-2.gguf.inp")
    raw = open(inp_path, "rb").read()
    inp = raw.split(b"\n__ggml_vocab_test__\n")
    assert inp[-1] == b"" and len(inp) == 47
    inp = inp[:-1]

    lines = ["# pretok_ref.txt - GENERATED by tests/gen_pretok_ref.py; do not edit.",
             "# regex %s, Unicode %s (unicodedata)" % (regex.__version__, unicodedata.unidata_version),
             "# str ID HEX            one input (bytes)",
             "# split KIND ID N L...  expected piece lengths in bytes (N pieces)",
             "# uni CP FLAGS GC       unicode_flags / unicode_category of a code point (hex, hex, dec)",
             "# unihash FLAGS_FNV GC_FNV   FNV-1a of flags (2 bytes LE) / gc (1 byte) over U+0000..U+10FFFF",
             "# utf8 HEX N CP...      code points unicode_utf8_decode must produce"]
    named = [("inp%d" % i, s) for i, s in enumerate(inp)]
    named += [("g%d" % i, s) for i, s in enumerate(gen_strings(420))]
    n_cross = 0
    for sid, b in named:
        lines.append("str %s %s" % (sid, b.hex()))
        s = b.decode("utf-8", "surrogateescape")
        for kind in KINDS:
            pieces = regex_split(kind, s)
            assert "".join(pieces) == s
            if kind in CROSS:
                alt = CROSS[kind](s)
                if alt != pieces:
                    sys.exit("llama.cpp port and regex disagree (%s) on %r:\n %r\n %r" % (kind, s, alt, pieces))
                n_cross += 1
            ls = lens_of(pieces)
            lines.append(("split %s %s %d %s" % (kind, sid, len(ls), " ".join(map(str, ls)))).rstrip())

    flags = [expect_flags(cp) for cp in range(0x110000)]
    gcs = [GC_ORDER.index(unicodedata.category(chr(cp))) for cp in range(0x110000)]
    lines.append("unihash %08x %08x" % (fnv1a(flags, 2), fnv1a(gcs, 1)))
    sample = [0, 9, 0x1C, 0x20, 0x41, 0x5F, 0x85, 0xA0, 0xAD, 0x301, 0x378, 0x660, 0x1680, 0x180E, 0x2028,
              0x2029, 0x202F, 0x3000, 0x4E00, 0xD800, 0xDC80, 0xE000, 0xFEFF, 0xFFFD, 0x1F600, 0xE0001,
              0x10FFFF]
    sample += rng.sample(range(0x110000), 300)
    for cp in sorted(set(sample)):
        lines.append("uni %x %x %d" % (cp, flags[cp], gcs[cp]))

    utf8_vec = [b"", b"A", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xc2\x80", b"\xdf\xbf",
                b"\xe0\xa0\x80", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x9f\xbf",
                b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
                b"\xff", b"\x80", b"\xbf\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xe2\x82A", b"\xc3\xc3\xa9"]
    for _ in range(60):
        pool = [b"\x80", b"\xbf", b"\xc2", b"\xc3", b"\xe0", b"\xe2", b"\xed", b"\xf0", b"\xf4", b"\xf5", b"a",
                b"\x9f", b"\xa0", b"\x8f", b"\x90", b"\xff"]
        utf8_vec.append(b"".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
    for b in utf8_vec:
        cps = [ord(c) for c in b.decode("utf-8", "surrogateescape")]
        lines.append(("utf8 %s %d %s" % (b.hex() or "-", len(cps), " ".join("%x" % c for c in cps))).rstrip())

    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    text = "\n".join(lines) + "\n"
    with open(out_path, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    print("wrote %s: %d strings x %d kinds, %d llama.cpp cross-checks, %d bytes, sha256 %s" % (
        out_path, len(named), len(KINDS), n_cross, len(text), hashlib.sha256(text.encode()).hexdigest()[:16]),
        file=sys.stderr)


if __name__ == "__main__":
    main()
