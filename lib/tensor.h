/*
** tensor.h — a weight matrix as the forward pass sees it: n_rows rows of n_cols elements of
** one dtype, row-major, usually pointing into a memory-mapped model file.
*/
#ifndef INFER_TENSOR_H
#define INFER_TENSOR_H

#include "dtype.h"

typedef struct tensor {
    dtype type;
    const void *data;
    int64_t n_rows;   /* output features */
    int64_t n_cols;   /* input features (the reduction dimension) */
} tensor;

#endif
