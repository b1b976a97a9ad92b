/*
** backend.c — backend selection.
*/
#include "backend.h"

infer_status backend_create(infer_backend kind, int n_threads, backend **out)
{
    switch (kind) {
    case INFER_BACKEND_AUTO:
    case INFER_BACKEND_CPU:
        return backend_cpu_create(n_threads, out);
    }
    return infer_err(INFER_EUNSUPPORTED, "backend %d is not available in this build", (int)kind);
}

void backend_destroy(backend *be)
{
    if (be) be->ops->destroy(be);
}
