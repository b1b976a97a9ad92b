/*
** backend.c — backend selection.
*/
#include "backend.h"

infer_status backend_create(const infer_session_params *p, backend **out)
{
    switch (p->backend) {
    case INFER_BACKEND_AUTO:
        if (backend_cuda_create(p, out) == INFER_OK) return INFER_OK;
        infer_err_clear(); /* no GPU (or no CUDA in this build): the CPU it is */
        return backend_cpu_create(p->n_threads, out);
    case INFER_BACKEND_CPU:
        return backend_cpu_create(p->n_threads, out);
    case INFER_BACKEND_CUDA:
        return backend_cuda_create(p, out);
    }
    return infer_err(INFER_EUNSUPPORTED, "backend %d is not available in this build", (int)p->backend);
}

void backend_destroy(backend *be)
{
    if (be) be->ops->destroy(be);
}

#ifndef INFER_HAVE_CUDA
infer_status backend_cuda_create(const infer_session_params *p, backend **out)
{
    (void)p;
    *out = NULL;
    return infer_err(INFER_EUNSUPPORTED, "this libinfer was built without CUDA (nvcc was not found at build time)");
}
#endif
