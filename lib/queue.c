/*
** queue.c — the event queue between the engine and pollers, and the notification fd.
**
** Events are produced into the engine's private list during a step and published under the
** lock in one go. An event's text/logits buffers move with it; infer_poll keeps the buffers
** of what it returned until the next poll, which is what makes "valid until the next
** infer_poll" true without copying into caller memory.
**
** The fd is an eventfd whose counter is non-zero exactly while the queue is non-empty:
** written on the empty -> non-empty transition, drained when a poll empties the queue.
*/
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

infer_status evl_push(ev_list *l, const ev_item *it)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        ev_item *v = realloc(l->v, cap * sizeof *v);
        if (!v) return infer_err(INFER_ENOMEM, "out of memory queueing an event");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *it;
    return INFER_OK;
}

void evl_free_items(ev_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].text);
        free(l->v[i].logits);
    }
    l->n = 0;
}

void events_publish_locked(infer_session *s)
{
    if (s->out.n == 0) return;
    int was_empty = s->evq.n == s->ev_head;
    /* Compact the consumed head before growing. */
    if (s->ev_head > 0) {
        memmove(s->evq.v, s->evq.v + s->ev_head, (s->evq.n - s->ev_head) * sizeof *s->evq.v);
        s->evq.n -= s->ev_head;
        s->ev_head = 0;
    }
    size_t i = 0;
    for (; i < s->out.n; i++)
        if (evl_push(&s->evq, &s->out.v[i]) != INFER_OK) break;
    if (i < s->out.n) {
        /* Out of memory: drop what cannot be queued rather than corrupt the queue; the
        ** engine logs it. Freed here so nothing leaks. */
        for (size_t j = i; j < s->out.n; j++) {
            free(s->out.v[j].text);
            free(s->out.v[j].logits);
        }
        infer_log(&s->log, INFER_LOG_ERROR, "out of memory: %zu events dropped", s->out.n - i);
    }
    s->out.n = 0;
    if (was_empty && s->evq.n > s->ev_head) {
        uint64_t one = 1;
        ssize_t w = write(s->efd, &one, sizeof one);
        (void)w; /* EAGAIN only if the counter is saturated, i.e. already readable */
    }
    uv_cond_broadcast(&s->ev_cv);
}

int events_take_locked(infer_session *s, infer_event *ev, int max)
{
    int n = 0;
    while (n < max && s->ev_head < s->evq.n) {
        ev_item *it = &s->evq.v[s->ev_head++];
        ev[n++] = it->ev;
        if ((it->text || it->logits) && evl_push(&s->held, it) != INFER_OK) {
            /* Cannot track the buffers: free them and blank the pointers (the event is still
            ** delivered, without its payload). */
            free(it->text);
            free(it->logits);
            ev[n - 1].text = "";
            ev[n - 1].text_len = 0;
            ev[n - 1].logits = NULL;
        }
    }
    if (s->ev_head == s->evq.n) {
        s->ev_head = 0;
        s->evq.n = 0;
        uint64_t v;
        ssize_t r = read(s->efd, &v, sizeof v);
        (void)r; /* EAGAIN: nothing to drain */
    }
    return n;
}

int notify_init(infer_session *s)
{
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return s->efd >= 0;
}

void notify_close(infer_session *s)
{
    if (s->efd >= 0) close(s->efd);
    s->efd = -1;
}
