/*
** chat.c — chat templates of the known families (see chat.h). Each renderer writes what
** the family's reference template produces with add_generation_prompt = true:
**  - ChatML (Qwen2, SmolLM2): every message as "<|im_start|>ROLE\nCONTENT<|im_end|>\n",
**    then "<|im_start|>assistant\n". Templates that add a default system turn when the
**    conversation has none carry its text literally; it is extracted and inserted the same way.
**  - Llama 3: "<|begin_of_text|>" then "<|start_header_id|>ROLE<|end_header_id|>\n\n" +
**    trimmed CONTENT + "<|eot_id|>" per message, then the assistant header.
**  - Llama 2: "<s>[INST] " (+ "<<SYS>>\nSYSTEM\n<</SYS>>\n\n" in the first turn) + USER +
**    " [/INST]", answers as " ANSWER </s>" and each later turn opens with "<s>[INST] ".
**  - Mistral: "<s>[INST] USER [/INST]" and answers as "ANSWER</s>"; a system message is
**    put before the first user message, separated by "\n\n" (as v0.3's template does).
*/
#include "chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ChatML templates that add a system turn write it as a literal such as
** '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' (the newline either
** escaped or literal inside the quotes). */
static char *default_system(const char *tmpl)
{
    const char *mark = "<|im_start|>system";
    const char *p = strstr(tmpl, mark);
    if (!p || !strstr(tmpl, "messages[0]['role'] != 'system'")) return NULL;
    p += strlen(mark);
    if (*p == '\n') p++;
    else if (p[0] == '\\' && p[1] == 'n') p += 2;
    else return NULL;
    const char *e = strstr(p, "<|im_end|>");
    if (!e || memchr(p, '{', (size_t)(e - p)) || memchr(p, '\'', (size_t)(e - p))) return NULL;
    char *s = malloc((size_t)(e - p) + 1);
    if (s) {
        memcpy(s, p, (size_t)(e - p));
        s[e - p] = 0;
    }
    return s;
}

infer_status chat_parse(const char *tmpl, chat_template *out)
{
    memset(out, 0, sizeof *out);
    if (!tmpl) return infer_err(INFER_EUNSUPPORTED, "the model has no chat template");
    if (strstr(tmpl, "<|im_start|>")) {
        out->family = CHAT_CHATML;
        out->default_system = default_system(tmpl);
    } else if (strstr(tmpl, "<|start_header_id|>")) {
        out->family = CHAT_LLAMA3;
    } else if (strstr(tmpl, "[INST]") && strstr(tmpl, "<<SYS>>")) {
        out->family = CHAT_LLAMA2;
    } else if (strstr(tmpl, "[INST]")) {
        out->family = CHAT_MISTRAL;
    } else {
        return infer_err(INFER_EUNSUPPORTED, "unrecognised chat template \"%.60s%s\" (known: ChatML, Llama 2, "
                                             "Llama 3, Mistral); send a raw prompt instead",
                         tmpl, strlen(tmpl) > 60 ? "..." : "");
    }
    return INFER_OK;
}

void chat_template_free(chat_template *t)
{
    free(t->default_system);
    t->default_system = NULL;
}

static infer_status put(strbuf *b, const char *s)
{
    return sb_append(b, s, strlen(s));
}

/* Llama 3's template trims each message's content. */
static infer_status put_trimmed(strbuf *b, const char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return sb_append(b, s, n);
}

static infer_status render_chatml(const chat_template *t, const infer_message *m, size_t n, strbuf *o)
{
    infer_status st = INFER_OK;
    if (t->default_system && (n == 0 || strcmp(m[0].role, "system") != 0)) {
        if ((st = put(o, "<|im_start|>system\n")) || (st = put(o, t->default_system)) || (st = put(o, "<|im_end|>\n")))
            return st;
    }
    for (size_t i = 0; i < n && !st; i++)
        if ((st = put(o, "<|im_start|>")) || (st = put(o, m[i].role)) || (st = put(o, "\n")) ||
            (st = put(o, m[i].content)) || (st = put(o, "<|im_end|>\n")))
            return st;
    return st ? st : put(o, "<|im_start|>assistant\n");
}

static infer_status render_llama3(const infer_message *m, size_t n, strbuf *o)
{
    infer_status st = put(o, "<|begin_of_text|>");
    for (size_t i = 0; i < n && !st; i++)
        if ((st = put(o, "<|start_header_id|>")) || (st = put(o, m[i].role)) || (st = put(o, "<|end_header_id|>\n\n")) ||
            (st = put_trimmed(o, m[i].content)) || (st = put(o, "<|eot_id|>")))
            return st;
    return st ? st : put(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Llama 2 and Mistral: [INST] turns; `llama2` selects the <<SYS>> block and the spacing. */
static infer_status render_inst(const infer_message *m, size_t n, int llama2, strbuf *o)
{
    const char *system = NULL;
    size_t i = 0;
    infer_status st = INFER_OK;
    if (n > 0 && strcmp(m[0].role, "system") == 0) {
        system = m[0].content;
        i = 1;
    }
    int first = 1;
    for (; i < n && !st; i++) {
        if (strcmp(m[i].role, "user") == 0) {
            if ((st = put(o, llama2 || first ? "<s>[INST] " : "[INST] "))) return st;
            if (first && system) {
                if (llama2) st = put(o, "<<SYS>>\n");
                if (!st) st = put(o, system);
                if (!st) st = put(o, llama2 ? "\n<</SYS>>\n\n" : "\n\n");
            }
            if (!st) st = put(o, m[i].content);
            if (!st) st = put(o, " [/INST]");
            first = 0;
        } else if (strcmp(m[i].role, "assistant") == 0) {
            if ((st = put(o, llama2 ? " " : "")) || (st = put(o, m[i].content)) || (st = put(o, llama2 ? " </s>" : "</s>")))
                return st;
        } else {
            return infer_err(INFER_EINVAL, "message %zu: role '%s' is not valid in this chat template (user, "
                                           "assistant, and a first system message are)", i, m[i].role);
        }
    }
    return st;
}

infer_status chat_render(const chat_template *t, const infer_message *m, size_t n, strbuf *out)
{
    for (size_t i = 0; i < n; i++)
        if (!m[i].role || !m[i].content)
            return infer_err(INFER_EINVAL, "message %zu: role and content are required", i);
    switch (t->family) {
    case CHAT_CHATML: return render_chatml(t, m, n, out);
    case CHAT_LLAMA3: return render_llama3(m, n, out);
    case CHAT_LLAMA2: return render_inst(m, n, 1, out);
    case CHAT_MISTRAL: return render_inst(m, n, 0, out);
    case CHAT_UNKNOWN: break;
    }
    return infer_err(INFER_EUNSUPPORTED, "no chat template");
}
