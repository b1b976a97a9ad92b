/*
** router.c — which version of a model serves a request: weighted A/B splits (a canary is a
** small weight), sticky assignment by route key, and shadow mirroring. The table is per
** model name, copied at infer_route_set and read under the session lock at submit.
**
** A keyed request maps to a point u in [0, 1) by hashing its key, so the same key lands on
** the same version for as long as the weights stand; unkeyed requests draw u from the
** session's own PRNG. Shadow decisions use an independent hash/draw per shadow route.
*/
#include "session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void table_free(route_table *t)
{
    for (int i = 0; i < t->n; i++) free(t->r[i].version);
    free(t->r);
    free(t->name);
    memset(t, 0, sizeof *t);
}

void router_free(infer_session *s)
{
    for (int i = 0; i < s->n_routes; i++) table_free(&s->routes[i]);
    free(s->routes);
    s->routes = NULL;
    s->n_routes = s->cap_routes = 0;
}

static route_table *find_table_locked(infer_session *s, const char *name)
{
    for (int i = 0; i < s->n_routes; i++)
        if (strcmp(s->routes[i].name, name) == 0) return &s->routes[i];
    return NULL;
}

INFER_API infer_status infer_route_set(infer_session *s, const char *name, const infer_route *routes, size_t n)
{
    infer_err_clear();
    if (!s || !name || (n && !routes)) return infer_err(INFER_EINVAL, "infer_route_set: session, name and routes are required");
    if (n > 64) return infer_err(INFER_EINVAL, "infer_route_set: %zu routes (at most 64)", n);
    double serving = 0;
    for (size_t i = 0; i < n; i++) {
        const infer_route *r = &routes[i];
        if (!r->version) return infer_err(INFER_EINVAL, "infer_route_set: route %zu has no version", i);
        if (!(r->weight >= 0) || !isfinite(r->weight))
            return infer_err(INFER_EINVAL, "infer_route_set: route %zu (%s) has weight %g", i, r->version, r->weight);
        if (r->shadow && r->weight > 1)
            return infer_err(INFER_EINVAL, "infer_route_set: shadow route %zu (%s) has weight %g; a shadow weight "
                                           "is a probability in [0, 1]", i, r->version, r->weight);
        if (!r->shadow) serving += r->weight;
    }
    if (n && !(serving > 0))
        return infer_err(INFER_EINVAL, "infer_route_set: model '%s' needs a serving route with weight > 0", name);

    route_table t = { 0 };
    t.name = infer_strdup(name);
    t.r = calloc(n ? n : 1, sizeof *t.r);
    if (!t.name || !t.r) {
        table_free(&t);
        return infer_err(INFER_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        t.r[i].version = infer_strdup(routes[i].version);
        t.r[i].weight = routes[i].weight;
        t.r[i].shadow = routes[i].shadow != 0;
        t.n++;
        if (!t.r[i].version) {
            table_free(&t);
            return infer_err(INFER_ENOMEM, "out of memory");
        }
    }
    infer_status st = INFER_OK;
    uv_mutex_lock(&s->mu);
    for (size_t i = 0; i < n && !st; i++)
        if (!registry_find_locked(s, name, routes[i].version)) st = registry_not_found(name, routes[i].version);
    route_table *old = st ? NULL : find_table_locked(s, name);
    if (!st && old) {
        table_free(old);
        *old = t;
        if (n == 0) { /* cleared: drop the entry */
            table_free(old);
            *old = s->routes[--s->n_routes];
        }
    } else if (!st && n) {
        if (s->n_routes == s->cap_routes) {
            int cap = s->cap_routes ? s->cap_routes * 2 : 4;
            route_table *v = realloc(s->routes, (size_t)cap * sizeof *v);
            if (v) { s->routes = v; s->cap_routes = cap; }
            else st = infer_err(INFER_ENOMEM, "out of memory");
        }
        if (!st) s->routes[s->n_routes++] = t;
    } else if (!st) {
        table_free(&t); /* clearing a table that did not exist */
    }
    uv_mutex_unlock(&s->mu);
    if (st) table_free(&t);
    return st;
}

/* FNV-1a of the key, finished with a splitmix64 step for well-spread low bits. */
static uint64_t key_hash(const char *key, uint64_t salt)
{
    uint64_t h = 1469598103934665603ULL ^ salt;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* A point in [0, 1): from the key when there is one, else from the session's PRNG. */
static double draw(infer_session *s, const char *key, uint64_t salt)
{
    uint64_t v = key ? key_hash(key, salt) : rng_next(&s->route_rng);
    return (double)(v >> 11) * 0x1.0p-53;
}

int router_pick_locked(infer_session *s, const char *name, const char *key, infer_model **primary,
                       infer_model **shadows, int max_shadows)
{
    *primary = NULL;
    route_table *t = find_table_locked(s, name);
    if (!t) {
        *primary = registry_find_locked(s, name, NULL);
        return 0;
    }
    double total = 0;
    for (int i = 0; i < t->n; i++)
        if (!t->r[i].shadow && t->r[i].weight > 0 && registry_find_locked(s, name, t->r[i].version))
            total += t->r[i].weight;
    if (total > 0) {
        double u = draw(s, key, 0) * total, acc = 0;
        for (int i = 0; i < t->n && !*primary; i++) {
            if (t->r[i].shadow || !(t->r[i].weight > 0)) continue;
            infer_model *m = registry_find_locked(s, name, t->r[i].version);
            if (!m) continue;
            acc += t->r[i].weight;
            if (u < acc) *primary = m;
        }
        /* rounding at the top end: the last serving route */
        for (int i = t->n - 1; i >= 0 && !*primary; i--)
            if (!t->r[i].shadow && t->r[i].weight > 0) *primary = registry_find_locked(s, name, t->r[i].version);
    } else {
        *primary = registry_find_locked(s, name, NULL); /* every routed version is gone */
    }
    int n = 0;
    for (int i = 0; i < t->n && n < max_shadows; i++) {
        if (!t->r[i].shadow || !(t->r[i].weight > 0)) continue;
        infer_model *m = registry_find_locked(s, name, t->r[i].version);
        if (m && m != *primary && draw(s, key, (uint64_t)i + 1) < t->r[i].weight) shadows[n++] = m;
    }
    return n;
}
