/*
** mmap.h — read-only file mapping. Loaders keep pointers into the mapping, so a mapped
** file lives as long as its model.
*/
#ifndef INFER_MMAP_H
#define INFER_MMAP_H

#include "internal.h"

typedef struct mapped_file {
    const uint8_t *data;
    size_t size;
} mapped_file;

/* INFER_EIO naming the path and errno text when it cannot be opened or mapped; a
** zero-length file maps to data = NULL, size = 0 (the loader reports the format error). */
infer_status map_file(const char *path, mapped_file *out);
void unmap_file(mapped_file *m);

#endif
