/*
** rng.h — a small seeded PRNG (xoshiro256**, seeded through splitmix64) per request.
** No rand(), no global state: every sequence carries its own.
*/
#ifndef INFER_RNG_H
#define INFER_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float rng_float(rng *r);

#endif
