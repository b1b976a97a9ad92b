/*
** infer.h — the public interface of libinfer, an embeddable LLM inference runtime.
**
** This is the only header a host includes. Everything here is implemented and tested;
** nothing else is exported from the library (symbols are hidden by default).
**
** Conventions (see README.md):
**  - Opaque handles, create/destroy pairs; every destroy accepts NULL.
**  - Every fallible function returns infer_status (INFER_OK = 0, errors negative);
**    results come back through out-parameters. infer_last_error() gives a sentence
**    with detail for the calling thread's last failure.
**  - Parameter structs start with `size_t size` and are filled by an _init() function,
**    so fields can be appended without breaking the ABI: always call _init() first.
**  - The caller owns what it passes in; the library copies what it keeps.
**  - Every function states its thread-safety on a `Thread-safety:` line.
*/
#ifndef INFER_H
#define INFER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(INFER_BUILD) && defined(__GNUC__)
#define INFER_API __attribute__((visibility("default")))
#else
#define INFER_API
#endif

#define INFER_VERSION_MAJOR 0
#define INFER_VERSION_MINOR 1
#define INFER_VERSION_PATCH 0
#define INFER_VERSION_NUMBER (INFER_VERSION_MAJOR * 10000 + INFER_VERSION_MINOR * 100 + INFER_VERSION_PATCH)

/*
** infer_version: the library's version as "MAJOR.MINOR.PATCH" (static string).
** Compare with INFER_VERSION_* to detect a header/library mismatch.
** Thread-safety: any thread.
*/
INFER_API const char *infer_version(void);

/* Status codes. The table lives in lib/status.c; infer_status_str() names each. */
typedef enum infer_status {
    INFER_OK           = 0,
    INFER_EINVAL       = -1,  /* a bad argument or request (detail in infer_last_error) */
    INFER_ENOMEM       = -2,  /* out of memory, or a request that can never fit the KV pool */
    INFER_EBUSY        = -3,  /* the submit queue is full; try again later */
    INFER_ENOTFOUND    = -4,  /* no such model, version or request */
    INFER_EFORMAT      = -5,  /* a malformed model or tokenizer file */
    INFER_EIO          = -6,  /* a file could not be opened, read or mapped */
    INFER_ECANCELED    = -7,  /* the request was cancelled (or its session destroyed) */
    INFER_ETIMEDOUT    = -8,  /* a deadline passed */
    INFER_EDEVICE      = -9,  /* an accelerator error */
    INFER_EUNSUPPORTED = -10, /* a valid but unsupported feature, format or option */
    INFER_EINTERNAL    = -11  /* a bug in libinfer: please report it */
} infer_status;

/*
** infer_status_str: the name of a status code, e.g. "INFER_EFORMAT". Static string;
** never NULL ("INFER_UNKNOWN" for a value outside the table).
** Thread-safety: any thread.
*/
INFER_API const char *infer_status_str(infer_status st);

typedef struct infer_session infer_session;

/*
** infer_last_error: a human-readable sentence describing the calling thread's most recent
** failure in libinfer (with file, offset, field or limit where they apply), or "" if none.
** `s` may be NULL (e.g. after infer_session_create failed); the text is per thread, so it
** is the same for every session. Valid until the next libinfer call on this thread.
** Thread-safety: any thread.
*/
INFER_API const char *infer_last_error(const infer_session *s);

/* ----------------------------------------------------------------------------- sessions */

typedef enum infer_backend {
    INFER_BACKEND_AUTO = 0,  /* the best backend available in this build and machine */
    INFER_BACKEND_CPU  = 1,  /* C kernels + OpenBLAS */
    INFER_BACKEND_CUDA = 2   /* NVIDIA GPU: CUDA kernels + cuBLAS (builds made where nvcc was
                                found); AUTO picks it when such a build sees a GPU */
} infer_backend;

/* Most GPUs one session drives (tensor parallelism over the GPUs of one host). */
#define INFER_MAX_DEVICES 8

typedef enum infer_threading {
    INFER_THREADING_ENGINE = 0,  /* the session owns an engine thread that runs steps */
    INFER_THREADING_CALLER = 1   /* no thread: infer_poll() runs engine steps itself */
} infer_threading;

typedef enum infer_log_level {
    INFER_LOG_ERROR = 0,
    INFER_LOG_WARN  = 1,
    INFER_LOG_INFO  = 2,
    INFER_LOG_DEBUG = 3
} infer_log_level;

/* A log sink. Called from the thread that logs (an engine thread or a caller's thread);
** `msg` is a NUL-terminated line without '\n', valid for the duration of the call.
** It must not call back into the library. */
typedef void (*infer_log_fn)(void *user, infer_log_level level, const char *msg);

typedef struct infer_session_params {
    size_t size;               /* sizeof(infer_session_params), set by _init */
    infer_backend backend;     /* default INFER_BACKEND_AUTO */
    infer_threading threading; /* default INFER_THREADING_ENGINE */
    int n_threads;             /* CPU compute threads; 0 (default) = all online cores */
    int queue_capacity;        /* submitted-but-not-admitted requests; default 256 */
    int max_running;           /* sequences decoded together per step; default 64 */
    int max_batch_tokens;      /* tokens per step (decode + prefill chunks); default 512 */
    int kv_block_tokens;       /* tokens per KV block; default 16 */
    size_t kv_cache_bytes;     /* KV pool of each loaded model, in bytes; default 256 MiB */
    int prefix_cache;          /* share the KV of identical prompt prefixes (full blocks);
                                  default 1 */
    int n_devices;             /* CUDA: GPUs used; > 1 splits every layer across them
                                  (tensor parallelism, NCCL; see the README); default 0 =
                                  one, devices[0] */
    int devices[INFER_MAX_DEVICES]; /* CUDA device ordinals; default {0} */
    infer_log_fn log_fn;       /* default NULL: no logging */
    void *log_user;
    infer_log_level log_level; /* default INFER_LOG_WARN */
} infer_session_params;

/*
** infer_session_params_init: fill *p with the defaults above (and p->size).
** Thread-safety: any thread.
*/
INFER_API void infer_session_params_init(infer_session_params *p);

/*
** infer_session_create: create a session: request and event queues, scheduler, and (in
** INFER_THREADING_ENGINE mode) its engine thread. `p` may be NULL for the defaults.
** Returns INFER_OK and *out, or INFER_EINVAL (a field out of range, named in
** infer_last_error), INFER_EUNSUPPORTED (a backend this build lacks), INFER_ENOMEM.
** Ownership: the caller destroys *out with infer_session_destroy().
** Thread-safety: any thread.
*/
INFER_API infer_status infer_session_create(const infer_session_params *p, infer_session **out);

/*
** infer_session_destroy: cancel everything in flight, stop the engine thread, unload every
** model and free all memory. Returns promptly (at most one engine step). NULL is a no-op.
** Events not yet polled are discarded.
** Thread-safety: any thread, but no other call on `s` may run concurrently or follow.
*/
INFER_API void infer_session_destroy(infer_session *s);

/*
** infer_session_fd: a file descriptor (an eventfd on Linux) that is readable while the
** session has events waiting to be polled, for poll/epoll/libuv loops. Do not read or close
** it; call infer_poll(s, ev, n, 0) when it is readable. Valid until the session is destroyed.
** In INFER_THREADING_CALLER mode it only becomes readable once infer_poll runs steps.
** Thread-safety: any thread.
*/
INFER_API int infer_session_fd(const infer_session *s);

/* ------------------------------------------------------------------------------- models */

typedef struct infer_model_params {
    size_t size;                /* sizeof(infer_model_params), set by _init */
    const char *tokenizer_path; /* llama2.c checkpoints: the tokenizer.bin to use; default NULL =
                                   "tokenizer.bin" in the checkpoint's folder */
    int max_running;            /* sequences of this model running at once; default 0 = only the
                                   session's max_running applies */
    int weights_f32;            /* 1: convert the matrices of a generating model (16-bit and
                                   quantized alike) to fp32 at load, so products see the stored
                                   values exactly, without the int8 rounding of activations that
                                   quantized kernels apply: answers then match a float reference
                                   of the same file, at 4 bytes a weight in memory and the fp32
                                   decoding speed. Default 0 = compute in the stored type. */
} infer_model_params;

/*
** infer_model_params_init: fill *p with the defaults above.
** Thread-safety: any thread.
*/
INFER_API void infer_model_params_init(infer_model_params *p);

/*
** infer_model_load: load the model at `path` under `name` and `version` (NULL = "1") into the
** session; `p` may be NULL for the defaults. The format is detected from the path:
**  - a GGUF file (llama.cpp's format): architectures llama (Llama 2/3, Mistral, SmolLM) and
**    qwen2; F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K tensors; the tokenizer and chat
**    template stored in the file. A vocabulary-only GGUF loads as a tokenizer (tokenize only);
**  - a Hugging Face directory (or its config.json / a .safetensors file in it): config.json
**    (Llama, Mistral, Qwen2 for generation; BertModel for embeddings), *.safetensors shards
**    (F32, F16, BF16), tokenizer.json, generation_config.json;
**  - a llama2.c checkpoint (.bin, shared or unshared classifier) with its tokenizer.bin.
** Files are memory-mapped and every header field, offset and size is checked before use.
** A generating model gets its own KV pool of kv_cache_bytes (session params).
** Returns INFER_OK, INFER_EINVAL (bad name/arguments, or name+version already loaded),
** INFER_EIO (cannot open/map), INFER_EFORMAT (malformed file; infer_last_error names the file,
** field and offset), INFER_ENOMEM (including a KV pool too small for one block).
** Thread-safety: any thread; the engine keeps serving other models meanwhile.
*/
INFER_API infer_status infer_model_load(infer_session *s, const char *name, const char *version,
                                        const char *path, const infer_model_params *p);

/* What infer_model_unload does with requests still running on the version. */
typedef enum infer_unload_mode {
    INFER_UNLOAD_WAIT = 0,    /* let them finish (new requests no longer reach it), then free */
    INFER_UNLOAD_NOWAIT = 1,  /* fail with INFER_EBUSY if any is in flight; nothing changes */
    INFER_UNLOAD_CANCEL = 2   /* cancel them (they end with INFER_ECANCELED), then free */
} infer_unload_mode;

/*
** infer_model_unload: remove model `name`, version `version` (NULL = every version). It leaves
** the registry at once, so new requests no longer reach it; requests in flight are handled
** as `mode` says; its memory is freed when the last of them ends (infer_stats.models_resident
** counts models still in memory). With INFER_UNLOAD_WAIT the call returns after they finished
** (in INFER_THREADING_CALLER mode it runs the engine steps itself meanwhile; their events stay
** queued for infer_poll). Returns INFER_OK, INFER_ENOTFOUND, INFER_EBUSY (NOWAIT), INFER_EINVAL.
** Thread-safety: any thread (in INFER_THREADING_CALLER mode, not concurrently with infer_poll).
*/
INFER_API infer_status infer_model_unload(infer_session *s, const char *name, const char *version,
                                          infer_unload_mode mode);

/* ------------------------------------------------------------------------------ routing */

/* One entry of a model's routing table. */
typedef struct infer_route {
    const char *version;  /* a loaded version of the model */
    double weight;        /* serving route: relative share of requests (> 0 counts);
                             shadow route: probability (0..1) that a request is mirrored */
    int shadow;           /* 1 = mirror requests here, discard the output, record metrics */
} infer_route;

/*
** infer_route_set: route requests for model `name` that do not pin a version: each goes to
** one serving route, chosen with probability weight / sum of weights (A/B split; a canary is
** a small weight); a request with a route_key always goes to the same version while the table
** is unchanged (sticky users). Each shadow route also receives a copy of a request with its
** probability: the copy runs, its output is discarded (no events), its metrics are recorded
** with role="shadow". Routes to versions unloaded later are skipped. n = 0 clears the table
** (requests go to the newest version). The table is copied.
** Returns INFER_OK, INFER_ENOTFOUND (a version that is not loaded), INFER_EINVAL (no serving
** route with weight > 0, a negative weight, a shadow weight above 1).
** Thread-safety: any thread; requests submitted after it returns use the new table.
*/
INFER_API infer_status infer_route_set(infer_session *s, const char *name, const infer_route *routes, size_t n);

/* Flags of infer_tokenize. */
typedef enum infer_tokenize_flags {
    INFER_TOKENIZE_ADD_BOS = 1,    /* prepend BOS */
    INFER_TOKENIZE_MODEL_BOS = 2,  /* prepend BOS only if the model's tokenizer asks for it
                                      (overrides ADD_BOS) */
    INFER_TOKENIZE_SPECIAL = 4     /* control tokens written in the text (e.g. "<|im_start|>")
                                      become their ids; otherwise they are plain text */
} infer_tokenize_flags;

/*
** infer_tokenize: encode `text` with the tokenizer of model `name` (newest version when
** `version` is NULL), as `flags` (infer_tokenize_flags) say. Writes up to `cap` ids to `ids`
** and the full count to *n_ids; when cap < *n_ids it writes nothing and returns INFER_EINVAL
** (call with cap = 0 to size the buffer). Returns INFER_OK, INFER_ENOTFOUND, INFER_EINVAL.
** Thread-safety: any thread.
*/
INFER_API infer_status infer_tokenize(infer_session *s, const char *name, const char *version,
                                      const char *text, unsigned flags,
                                      int32_t *ids, size_t cap, size_t *n_ids);

/*
** infer_detokenize: the text of ids[0..n) with model `name`'s tokenizer, as a generated
** sequence would stream it (control tokens such as BOS give no text; a SentencePiece
** sequence loses the dummy-prefix space at its start). Writes up to cap - 1 bytes and a NUL
** to `buf` and the full length to *len; when cap <= *len it writes nothing and returns
** INFER_EINVAL (cap = 0 sizes the buffer). INFER_EINVAL also for an id outside the vocabulary.
** Thread-safety: any thread.
*/
INFER_API infer_status infer_detokenize(infer_session *s, const char *name, const char *version,
                                        const int32_t *ids, size_t n, char *buf, size_t cap, size_t *len);

/* ----------------------------------------------------------------------------- requests */

typedef uint64_t infer_request_id;

/* One turn of a conversation: role "system", "user" or "assistant". */
typedef struct infer_message {
    const char *role;
    const char *content;
} infer_message;

typedef enum infer_request_kind {
    INFER_REQ_GENERATE = 0,        /* generate text: TOKEN events, then DONE */
    INFER_REQ_EMBED = 1            /* embed the prompt (encoder models such as BERT/MiniLM):
                                      one EMBEDDING event, then DONE */
} infer_request_kind;

typedef struct infer_request {
    size_t size;                   /* sizeof(infer_request), set by _init */
    infer_request_kind kind;       /* default INFER_REQ_GENERATE */
    const char *model;             /* model name (required) */
    const char *version;           /* NULL (default) = the newest loaded version */
    const char *prompt;            /* UTF-8 text ("" is allowed); or NULL with messages */
    const infer_message *messages; /* a conversation, rendered with the model's chat template
                                      (ending with an open assistant turn) instead of prompt;
                                      INFER_EUNSUPPORTED when the template is not recognised */
    size_t n_messages;
    int add_bos;                   /* prepend BOS: -1 (default) = as the model's tokenizer says,
                                      0 = no, 1 = yes */
    int max_tokens;                /* generated tokens at most; default 128; must be >= 1 */
    /* sampling: temperature 0 = greedy (argmax, ties -> lowest id) */
    float temperature;             /* default 0.8 */
    int top_k;                     /* default 40; 0 = off */
    float top_p;                   /* default 0.95; 1 = off */
    float min_p;                   /* default 0.05; 0 = off */
    float repetition_penalty;      /* default 1 (off); >1 penalises tokens already seen */
    float frequency_penalty;       /* default 0; subtract f * count(token) */
    float presence_penalty;        /* default 0; subtract p if token seen */
    int penalty_last_n;            /* window (tokens of prompt+output) for penalties; default 64 */
    uint64_t seed;                 /* sampling seed; same seed -> same output, batched or not */
    const char *const *stop;       /* stop strings (copied); the text stops before them */
    size_t n_stop;
    const int32_t *stop_tokens;    /* extra token ids that end the sequence (copied) */
    size_t n_stop_tokens;
    int ignore_eos;                /* default 0: the model's end tokens stop generation */
    int want_logits;               /* default 0; 1 = an INFER_EVENT_LOGITS per position */
    int normalize;                 /* INFER_REQ_EMBED: L2-normalise the pooled vector; default 1 */
    int priority;                  /* default 0; higher is admitted first and preempted last;
                                      equal priorities run in arrival order */
    int64_t deadline_ms;           /* default 0 = none; from submit: a request still queued or
                                      running then ends with INFER_ETIMEDOUT */
    const char *route_key;         /* default NULL; requests with the same key are routed to the
                                      same version (see infer_route_set) */
    void *user_data;               /* echoed in every event of this request */
} infer_request;

/*
** infer_request_init: fill *rq with the defaults above.
** Thread-safety: any thread.
*/
INFER_API void infer_request_init(infer_request *rq);

/*
** infer_submit: validate and tokenize the request (on the calling thread), copy it, and
** queue it. Never blocks on the engine. *id identifies it in events and infer_cancel.
** Returns INFER_OK, INFER_EBUSY (queue full: retry later), INFER_ENOTFOUND (no such
** model/version), INFER_EINVAL (bad field, or a prompt + max_tokens beyond the model's
** context: the message names the limit), INFER_ENOMEM (the request alone needs more KV
** than the pool holds), INFER_ECANCELED (the session is being destroyed).
** Thread-safety: any thread.
*/
INFER_API infer_status infer_submit(infer_session *s, const infer_request *rq, infer_request_id *id);

/*
** infer_cancel: ask for request `id` to stop. It ends with an INFER_EVENT_DONE whose status
** is INFER_ECANCELED at the next step boundary, and its KV blocks go back to the pool.
** Returns INFER_OK, or INFER_ENOTFOUND if the request is unknown or already finished.
** Thread-safety: any thread.
*/
INFER_API infer_status infer_cancel(infer_session *s, infer_request_id id);

typedef enum infer_event_type {
    INFER_EVENT_TOKEN  = 1,  /* a generated token and the text it completes */
    INFER_EVENT_LOGITS = 2,  /* logits at one position (only with want_logits) */
    INFER_EVENT_DONE   = 3,  /* the request ended; the last event for its id */
    INFER_EVENT_EMBEDDING = 4 /* the pooled embedding of an INFER_REQ_EMBED request */
} infer_event_type;

typedef enum infer_finish {
    INFER_FINISH_NONE   = 0, /* not finished (TOKEN and LOGITS events) */
    INFER_FINISH_LENGTH = 1, /* max_tokens reached */
    INFER_FINISH_STOP   = 2, /* an end token, stop token or stop string */
    INFER_FINISH_ERROR  = 3  /* status says why: INFER_ECANCELED, INFER_ENOMEM, ... */
} infer_finish;

typedef struct infer_event {
    infer_event_type type;
    infer_request_id id;
    void *user_data;          /* the request's user_data */
    /* TOKEN: the sampled token id and the UTF-8 text it completes. The text never ends
    ** inside a character (bytes of an incomplete one wait for the next token) and stops
    ** before a stop string; it may be empty. */
    int32_t token;
    const char *text;         /* valid until the next infer_poll on this session */
    size_t text_len;
    /* LOGITS: the logits produced after the token at position `pos` (0 = the first
    ** prompt token) was fed; n_logits = vocabulary size. Valid until the next infer_poll. */
    int32_t pos;
    const float *logits;
    int32_t n_logits;
    /* EMBEDDING: the model's pooled vector (mean over the tokens, L2-normalised unless the
    ** request said otherwise). Valid until the next infer_poll. */
    const float *embedding;
    int32_t n_embedding;
    /* DONE */
    infer_status status;      /* INFER_OK, or why it failed */
    infer_finish finish;
    const char *version;      /* the model version that served it (valid until next poll) */
    int32_t n_prompt_tokens;
    int32_t n_generated;
} infer_event;

/*
** infer_poll: move up to `max` pending events into ev[] and return how many (>= 0), or a
** negative infer_status (INFER_EINVAL for bad arguments). Waits up to `timeout_ms` for the
** first event (0 = do not wait, -1 = wait until one arrives). Events of one request come in
** order; the DONE event is its last. In INFER_THREADING_CALLER mode this call itself runs
** engine steps until an event exists or the timeout passes.
** Pointers in returned events stay valid until the next infer_poll on this session.
** Thread-safety: any thread, but one poller at a time per session.
*/
INFER_API int infer_poll(infer_session *s, infer_event *ev, int max, int timeout_ms);

/* --------------------------------------------------------------------------------- stats */

typedef struct infer_stats {
    size_t size;                /* set by the caller to sizeof(infer_stats) */
    int64_t queued;             /* submitted, not yet admitted */
    int64_t running;            /* admitted, not finished */
    int64_t kv_blocks_total;    /* over all loaded models */
    int64_t models_resident;    /* models in memory: loaded, or unloaded but still draining */
    int64_t kv_blocks_used;     /* held by queued or running sequences */
    int64_t kv_blocks_cached;   /* prefix-cache blocks nobody holds (reclaimable) */
    int64_t prefix_hit_tokens;  /* prompt tokens taken from the prefix cache, not computed */
    int64_t preempted;          /* times a sequence was preempted for lack of KV blocks */
    int64_t steps;              /* engine steps that ran a forward pass */
    int64_t max_batch_seqs;     /* most sequences in one step so far */
    int64_t requests_done;      /* DONE events produced, any status */
    int64_t tokens_prompt;      /* prompt tokens computed (prefilled; hits not included) */
    int64_t tokens_generated;
    int64_t batch_hist[8];      /* steps by sequences in the batch: [0] 1, [1] 2-3, [2] 4-7, ...,
                                   [7] 128 or more */
    int64_t sched_ns;           /* engine time spent scheduling (admission, batch building,
                                   sampling, events): the host overhead around forward passes */
    int64_t forward_ns;         /* engine time spent in forward passes */
} infer_stats;

/*
** infer_session_stats: a consistent snapshot of the counters above. Set st->size first.
** Returns INFER_OK or INFER_EINVAL.
** Thread-safety: any thread.
*/
INFER_API infer_status infer_session_stats(infer_session *s, infer_stats *st);

/*
** infer_metrics_text: the session's metrics in the Prometheus text exposition format (for a
** /metrics endpoint): per model, version and role (primary/shadow) — requests by outcome,
** prompt and generated tokens, histograms of queue time, time to first token, time per
** output token and request duration — and session-wide gauges and counters (running,
** queued, KV blocks, preemptions, prefix-cache hits, steps, batch sizes). Writes up to
** cap - 1 bytes and a NUL to buf and the full length to *len; when cap <= *len nothing is
** written and INFER_EINVAL returned (cap = 0 sizes the buffer).
** Thread-safety: any thread.
*/
INFER_API infer_status infer_metrics_text(infer_session *s, char *buf, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* INFER_H */
