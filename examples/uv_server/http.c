/*
** http.c — connections of infer-server: accept, read, parse with http_parser (the parser of
** the libuv ecosystem, Debian's libhttp-parser), answer, keep alive.
**
** Reading: the alloc callback hands out the tail of the connection's input buffer, so bytes
** land where the parser reads them. The parser pauses itself at the end of each message
** (http_parser_pause in on_message_complete); the request is then dispatched and parsing
** waits (`busy`) until its response is complete, so pipelined requests are answered in order.
** Reading goes on meanwhile — a read EOF or error while a request runs is how a client
** disconnect is seen (the job is cancelled) — until a bounded amount is buffered.
**
** Limits: URL 8 KiB (414), headers as http_parser's HTTP_MAX_HEADER_SIZE (431), body
** sv->max_body (413, at once when Content-Length says so, before the body is read; an
** "Expect: 100-continue" is answered only when the body fits).
**
** Responses: HTTP/1.1 with Content-Length, or, for server-sent events, chunked transfer
** encoding (HTTP/1.0 clients get the stream unframed and the connection closes at its end).
** Connection: close from the client, or a response that must close, ends with uv_shutdown
** after the queued writes, then uv_close.
*/
#include "server.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define URL_MAX 8192
#define READ_CHUNK 65536

typedef struct wreq {
    uv_write_t req;
    uv_buf_t buf;
    char data[];
} wreq;

static void conn_process(conn *c);
static void read_start(conn *c);

/* ---------------------------------------------------------------------------- writing */

static void on_write(uv_write_t *req, int status)
{
    conn *c = req->handle->data;
    free(req);
    if (status < 0 && !c->closing) conn_close(c);
}

/* Queue head (+ body) as one write; the bytes are copied. */
static void conn_write2(conn *c, const char *head, size_t hlen, const char *body, size_t blen)
{
    if (c->closing) return;
    wreq *w = malloc(sizeof *w + hlen + blen);
    if (!w) {
        conn_close(c);
        return;
    }
    memcpy(w->data, head, hlen);
    if (blen) memcpy(w->data + hlen, body, blen);
    w->buf = uv_buf_init(w->data, (unsigned)(hlen + blen));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_write) != 0) {
        free(w);
        conn_close(c);
    }
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

const char *http_method_name(int method)
{
    return http_method_str((enum http_method)method);
}

/* One log line per request, on stderr: time, method, path, status, model@version, tokens, ms. */
static void conn_log(conn *c)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    double ms = c->t0 ? (double)(uv_hrtime() - c->t0) / 1e6 : 0.0;
    const char *path = c->url_len ? c->url : "-"; /* "-": rejected before a URL was read */
    size_t n = c->url_len ? strcspn(c->url, "?") : 1;
    fprintf(stderr, "%s %s %.*s %d %s prompt_tokens=%d completion_tokens=%d %.1fms\n", ts,
            c->url_len ? http_method_name(c->parser.method) : "-", (int)(n > 200 ? 200 : n), path, c->status,
            c->log_model[0] ? c->log_model : "-", c->log_prompt, c->log_completion, ms);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->handle->data;
    free(req);
    if (!c->closing) conn_close(c);
}

/* The response to the current request is fully queued: log it, then keep the connection for
** the next request or close it once the writes are out. */
static void http_done(conn *c)
{
    conn_log(c);
    c->busy = 0;
    c->job = NULL;
    c->admin = NULL;
    if (c->closing) return;
    if (!c->keep_alive || c->sv->stopping) {
        uv_shutdown_t *req = malloc(sizeof *req);
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->read_paused = 1;
        c->busy = 1; /* parse nothing more */
        if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
            free(req);
            conn_close(c);
        }
        return;
    }
    c->url_len = 0;
    c->body_len = 0;
    c->hdr_name_len = c->hdr_val_len = 0;
    c->hdr_in_value = 0;
    c->headers_sent = c->chunked = 0;
    c->status = 0;
    c->log_model[0] = 0;
    c->log_prompt = c->log_completion = 0;
    c->t0 = 0;
    if (!c->in_process) conn_process(c);
}

static void write_head(conn *c, int status, const char *ctype, const char *extra, long long clen, const char *body,
                       size_t blen)
{
    char head[512];
    char len[48] = "";
    if (clen >= 0) snprintf(len, sizeof len, "Content-Length: %lld\r\n", clen);
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sConnection: %s\r\n%s\r\n", status,
                     reason(status), ctype, len, c->keep_alive ? "keep-alive" : "close", extra ? extra : "");
    c->status = status;
    conn_write2(c, head, (size_t)n, body, blen);
}

void http_respond(conn *c, int status, const char *ctype, const char *body, size_t len)
{
    if (c->closing) return;
    write_head(c, status, ctype, NULL, (long long)len, body, len);
    http_done(c);
}

void http_respond_json(conn *c, int status, cJSON *obj)
{
    char *txt = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!txt) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                  "\"param\":null,\"code\":null}}";
        http_respond(c, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    http_respond(c, status, "application/json", txt, strlen(txt));
    free(txt);
}

static cJSON *error_body(const char *type, const char *code, const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    if (!e) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    return root;
}

/* An OpenAI-style error: {"error":{"message","type","param":null,"code"}}. A streamed response
** that already started gets it as an SSE event, then [DONE]. */
void http_error(conn *c, int status, const char *type, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->headers_sent) {
        cJSON *b = error_body(type, code, msg);
        char *txt = b ? cJSON_PrintUnformatted(b) : NULL;
        cJSON_Delete(b);
        if (txt) http_sse(c, txt);
        free(txt);
        c->keep_alive = 0;
        http_sse(c, "[DONE]");
        http_stream_end(c);
        c->status = status;
        return;
    }
    http_respond_json(c, status, error_body(type, code, msg));
}

void http_stream_begin(conn *c)
{
    if (c->headers_sent || c->closing) return;
    c->headers_sent = 1;
    c->chunked = c->parser.http_major > 1 || (c->parser.http_major == 1 && c->parser.http_minor >= 1);
    if (!c->chunked) c->keep_alive = 0; /* the end of an unframed body is the connection's end */
    write_head(c, 200, "text/event-stream",
               c->chunked ? "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n"
                          : "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
               -1, NULL, 0);
}

void http_stream_write(conn *c, const char *data, size_t len)
{
    if (!len || c->closing) return;
    if (!c->chunked) {
        conn_write2(c, data, len, NULL, 0);
        return;
    }
    char *buf = malloc(len + 24);
    if (!buf) {
        conn_close(c);
        return;
    }
    int n = snprintf(buf, 24, "%zx\r\n", len);
    memcpy(buf + n, data, len);
    memcpy(buf + n + len, "\r\n", 2);
    conn_write2(c, buf, (size_t)n + len + 2, NULL, 0);
    free(buf);
}

void http_sse(conn *c, const char *json)
{
    size_t n = strlen(json);
    char *buf = malloc(n + 9);
    if (!buf) {
        conn_close(c);
        return;
    }
    memcpy(buf, "data: ", 6);
    memcpy(buf + 6, json, n);
    memcpy(buf + 6 + n, "\n\n", 2);
    http_stream_write(c, buf, n + 8);
    free(buf);
}

void http_stream_end(conn *c)
{
    if (c->chunked) conn_write2(c, "0\r\n\r\n", 5, NULL, 0);
    http_done(c);
}

/* ---------------------------------------------------------------------------- parsing */

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    c->url_len = 0;
    c->body_len = 0;
    c->hdr_name_len = c->hdr_val_len = 0;
    c->hdr_in_value = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->url_len + len > URL_MAX) {
        c->reject = 414;
        return -1;
    }
    if (!c->url) {
        c->url = malloc(URL_MAX + 1);
        if (!c->url) {
            c->reject = 500;
            return -1;
        }
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = 0;
    return 0;
}

/* Header names and values may arrive in pieces; only Expect matters, so both are kept in short
** buffers (a longer name is not "expect"; a longer value is truncated). */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->hdr_in_value) c->hdr_name_len = 0;
    c->hdr_in_value = 0;
    for (size_t i = 0; i < len; i++) {
        if (c->hdr_name_len < sizeof c->hdr_name - 1) c->hdr_name[c->hdr_name_len] = (char)tolower((unsigned char)at[i]);
        c->hdr_name_len++;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    c->hdr_in_value = 1;
    if (c->hdr_name_len != 6 || memcmp(c->hdr_name, "expect", 6) != 0) return 0;
    for (size_t i = 0; i < len && c->hdr_val_len < sizeof c->hdr_val - 1; i++)
        c->hdr_val[c->hdr_val_len++] = (char)tolower((unsigned char)at[i]);
    c->hdr_val[c->hdr_val_len] = 0;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->sv->max_body) {
        c->reject = 413;
        return -1;
    }
    if (c->hdr_val_len && strstr(c->hdr_val, "100-continue"))
        conn_write2(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, NULL, 0);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->body_len + len > c->sv->max_body) {
        c->reject = 413;
        return -1;
    }
    if (c->body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + len + 1) cap *= 2;
        char *b = realloc(c->body, cap);
        if (!b) {
            c->reject = 500;
            return -1;
        }
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    c->msg_ready = 1;
    c->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void dispatch(conn *c)
{
    srv *sv = c->sv;
    c->busy = 1;
    c->t0 = uv_hrtime();
    if (!c->url) {
        http_error(c, 400, "invalid_request_error", NULL, "request without a URL");
        return;
    }
    if (!c->body) {
        c->body = malloc(1);
        c->body_cap = 1;
        if (!c->body) {
            conn_close(c);
            return;
        }
    }
    c->body[c->body_len] = 0;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
        http_error(c, 400, "invalid_request_error", NULL, "malformed request URL");
        return;
    }
    char path[URL_MAX + 1], query[URL_MAX + 1] = "";
    memcpy(path, c->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    path[u.field_data[UF_PATH].len] = 0;
    if (u.field_set & (1 << UF_QUERY)) {
        memcpy(query, c->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
        query[u.field_data[UF_QUERY].len] = 0;
    }
    if (sv->stopping) {
        c->keep_alive = 0;
        http_error(c, 503, "server_error", NULL, "the server is shutting down");
        return;
    }
    if (!strncmp(path, "/admin/", 7)) admin_dispatch(c, c->parser.method, path, query, c->body, c->body_len);
    else api_dispatch(c, c->parser.method, path, query, c->body, c->body_len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    if (c->in_cap - c->in_len < READ_CHUNK) {
        size_t cap = c->in_len + READ_CHUNK;
        char *in = realloc(c->in, cap);
        if (!in) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        c->in = in;
        c->in_cap = cap;
    }
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (nread < 0) {
        /* EOF or error: a running request is cancelled (api_conn_gone, from conn_close) */
        conn_close(c);
        return;
    }
    c->in_len += (size_t)nread;
    if (c->busy && c->in_len - c->in_off > c->sv->max_body + 65536) {
        uv_read_stop(st); /* enough buffered behind the running request */
        c->read_paused = 1;
    }
    conn_process(c);
}

/* Parse what is buffered and dispatch complete requests, one at a time. */
static void conn_process(conn *c)
{
    c->in_process = 1;
    while (!c->busy && !c->closing && c->in_off < c->in_len) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in + c->in_off, c->in_len - c->in_off);
        c->in_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (c->reject || (e != HPE_OK && e != HPE_PAUSED)) {
            int status = c->reject ? c->reject : e == HPE_HEADER_OVERFLOW ? 431 : 400;
            c->keep_alive = 0;
            c->busy = 1;
            c->t0 = uv_hrtime();
            if (status == 413)
                http_error(c, 413, "invalid_request_error", "request_too_large",
                           "request body larger than the server's limit of %zu bytes", c->sv->max_body);
            else if (c->reject)
                http_error(c, status, "invalid_request_error", NULL, "%s", reason(status));
            else
                http_error(c, status, "invalid_request_error", NULL, "malformed HTTP request: %s",
                           http_errno_description(e));
            break;
        }
        if (e == HPE_PAUSED) http_parser_pause(&c->parser, 0);
        if (c->msg_ready) {
            c->msg_ready = 0;
            dispatch(c);
        }
    }
    c->in_process = 0;
    if (c->closing) return;
    if (c->in_off == c->in_len) c->in_off = c->in_len = 0;
    else if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (!c->busy && c->read_paused) {
        c->read_paused = 0;
        read_start(c);
    }
}

static void read_start(conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

/* ---------------------------------------------------------------------- connections */

static void on_close(uv_handle_t *h)
{
    conn *c = h->data;
    free(c->in);
    free(c->url);
    free(c->body);
    free(c);
}

void conn_close(conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    srv *sv = c->sv;
    if (c->job) {
        c->status = sv->stopping ? 503 : 499; /* 499: client closed request (nginx's code) */
        api_conn_gone(c->job);
        conn_log(c);
        c->job = NULL;
    }
    if (c->admin) {
        admin_conn_gone(c->admin);
        c->admin = NULL;
    }
    if (c->prev) c->prev->next = c->next;
    else sv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_connection(uv_stream_t *server, int status)
{
    srv *sv = server->data;
    if (status < 0 || sv->stopping) return;
    conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->sv = sv;
    if (uv_tcp_init(sv->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = sv->conns;
    if (sv->conns) sv->conns->prev = c;
    sv->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    read_start(c);
}

int http_listen(srv *sv)
{
    struct sockaddr_storage addr;
    int rc = strchr(sv->host, ':') ? uv_ip6_addr(sv->host, sv->port, (struct sockaddr_in6 *)&addr)
                                   : uv_ip4_addr(sv->host, sv->port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        fprintf(stderr, "infer-server: bad --host '%s': %s\n", sv->host, uv_strerror(rc));
        return rc;
    }
    if ((rc = uv_tcp_init(sv->loop, &sv->listener)) != 0) return rc;
    sv->listener.data = sv;
    if ((rc = uv_tcp_bind(&sv->listener, (const struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&sv->listener, 1024, on_connection)) != 0) {
        fprintf(stderr, "infer-server: cannot listen on %s:%d: %s\n", sv->host, sv->port, uv_strerror(rc));
        return rc;
    }
    return 0;
}

/* Shutdown: stop accepting and close every connection (cancelling what runs for it). */
void http_close_all(srv *sv)
{
    if (!uv_is_closing((uv_handle_t *)&sv->listener)) uv_close((uv_handle_t *)&sv->listener, NULL);
    while (sv->conns) conn_close(sv->conns);
}
