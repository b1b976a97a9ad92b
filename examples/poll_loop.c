/*
** poll_loop — drive libinfer from a host's own poll(2) loop through infer_session_fd(),
** the way an epoll or libuv server would: several prompts in flight at once, their tokens
** interleaved as the engine batches them, each printed on its own line at the end.
**
**   poll_loop MODEL TOKENIZER [PROMPT...]
*/
#include <infer.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQ 8

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: poll_loop MODEL TOKENIZER [PROMPT...]\n");
        return 2;
    }
    const char *defaults[] = { "Once upon a time", "The little dog", "Lily wanted to" };
    const char **prompts = argc > 3 ? (const char **)argv + 3 : defaults;
    int n = argc > 3 ? argc - 3 : 3;
    if (n > MAX_REQ) n = MAX_REQ;

    infer_session *s;
    if (infer_session_create(NULL, &s) != INFER_OK) {
        fprintf(stderr, "poll_loop: %s\n", infer_last_error(NULL));
        return 1;
    }
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = argv[2];
    if (infer_model_load(s, "m", NULL, argv[1], &mp) != INFER_OK) {
        fprintf(stderr, "poll_loop: %s\n", infer_last_error(s));
        infer_session_destroy(s);
        return 1;
    }
    char *out[MAX_REQ] = { 0 };
    size_t len[MAX_REQ] = { 0 };
    for (int i = 0; i < n; i++) {
        infer_request rq;
        infer_request_init(&rq);
        rq.model = "m";
        rq.prompt = prompts[i];
        rq.max_tokens = 40;
        rq.temperature = 0;
        rq.user_data = (void *)(intptr_t)i;
        infer_request_id id;
        if (infer_submit(s, &rq, &id) != INFER_OK) {
            fprintf(stderr, "poll_loop: %s\n", infer_last_error(s));
            return 1;
        }
        out[i] = calloc(1, 4096);
    }
    int left = n, wakeups = 0;
    struct pollfd pfd = { .fd = infer_session_fd(s), .events = POLLIN };
    while (left > 0) {
        if (poll(&pfd, 1, 10000) <= 0) {
            fprintf(stderr, "poll_loop: no event in 10 s\n");
            break;
        }
        wakeups++;
        infer_event ev[64];
        int k;
        while ((k = infer_poll(s, ev, 64, 0)) > 0) {
            for (int j = 0; j < k; j++) {
                int i = (int)(intptr_t)ev[j].user_data;
                if (ev[j].type == INFER_EVENT_TOKEN && len[i] + ev[j].text_len < 4095) {
                    memcpy(out[i] + len[i], ev[j].text, ev[j].text_len);
                    len[i] += ev[j].text_len;
                } else if (ev[j].type == INFER_EVENT_DONE) {
                    left--;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        printf("[%d] %s%s\n", i, prompts[i], out[i]);
        free(out[i]);
    }
    fprintf(stderr, "poll_loop: %d requests, %d fd wake-ups\n", n, wakeups);
    infer_session_destroy(s);
    return 0;
}
