/*
** infer-tokenize — token ids of a text, or the text of ids, with a model's tokenizer.
**
**   infer-tokenize -m FILE [-z TOKENIZER] [--no-bos] [--special] TEXT
**   infer-tokenize -m FILE [-z TOKENIZER] --decode ID...
**
** FILE is a model (GGUF, Hugging Face directory, llama2.c .bin) or a vocabulary-only GGUF.
** Ids are printed on one line, space-separated. BOS is added when the model's tokenizer
** asks for it (llama2.c: always), unless --no-bos; --special parses control tokens written
** in the text (e.g. "<|im_start|>").
*/
#include <infer.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: infer-tokenize -m FILE [-z TOKENIZER] [--no-bos] [--special] TEXT\n"
               "       infer-tokenize -m FILE [-z TOKENIZER] --decode ID...\n");
}

int main(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *text = NULL;
    unsigned flags = INFER_TOKENIZE_MODEL_BOS;
    int decode = 0, first_id = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) model = argv[++i];
        else if ((!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) && i + 1 < argc) tokenizer = argv[++i];
        else if (!strcmp(a, "--no-bos")) flags &= ~(unsigned)(INFER_TOKENIZE_MODEL_BOS | INFER_TOKENIZE_ADD_BOS);
        else if (!strcmp(a, "--special")) flags |= INFER_TOKENIZE_SPECIAL;
        else if (!strcmp(a, "--decode")) { decode = 1; first_id = i + 1; break; }
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "infer-tokenize: unknown option '%s'\n", a); usage(stderr); return 2; }
        else if (!text) text = a;
        else { fprintf(stderr, "infer-tokenize: give the text as one argument (quote it)\n"); return 2; }
    }
    if (!model || (!decode && !text)) {
        usage(stderr);
        return 2;
    }
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    sp.n_threads = 1;
    infer_session *s;
    if (infer_session_create(&sp, &s) != INFER_OK) {
        fprintf(stderr, "infer-tokenize: %s\n", infer_last_error(NULL));
        return 1;
    }
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = tokenizer;
    int rc = 1;
    if (infer_model_load(s, "m", NULL, model, &mp) != INFER_OK) {
        fprintf(stderr, "infer-tokenize: %s\n", infer_last_error(s));
        goto out;
    }
    if (decode) {
        int n = argc - first_id;
        int32_t *ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1));
        for (int i = 0; i < n; i++) {
            char *end;
            errno = 0;
            long v = strtol(argv[first_id + i], &end, 10);
            if (errno || *end || v < 0 || v > INT32_MAX) {
                fprintf(stderr, "infer-tokenize: '%s' is not a token id\n", argv[first_id + i]);
                free(ids);
                goto out;
            }
            ids[i] = (int32_t)v;
        }
        size_t len;
        infer_status st = infer_detokenize(s, "m", NULL, ids, (size_t)n, NULL, 0, &len);
        char *buf = st ? NULL : malloc(len + 1);
        if (buf) st = infer_detokenize(s, "m", NULL, ids, (size_t)n, buf, len + 1, &len);
        if (st || !buf) fprintf(stderr, "infer-tokenize: %s\n", infer_last_error(s));
        else { fwrite(buf, 1, len, stdout); fputc('\n', stdout); rc = 0; }
        free(buf);
        free(ids);
    } else {
        size_t n;
        infer_status st = infer_tokenize(s, "m", NULL, text, flags, NULL, 0, &n);
        int32_t *ids = st ? NULL : malloc(sizeof *ids * (n ? n : 1));
        if (ids) st = infer_tokenize(s, "m", NULL, text, flags, ids, n, &n);
        if (st || !ids) fprintf(stderr, "infer-tokenize: %s\n", infer_last_error(s));
        else {
            for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
            rc = 0;
        }
        free(ids);
    }
out:
    infer_session_destroy(s);
    return rc;
}
