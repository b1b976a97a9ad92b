/*
** rng.c — the per-request PRNG: xoshiro256** (Blackman & Vigna, "Scrambled linear
** pseudorandom number generators", 2018), seeded through splitmix64.
**
** Each request carries its own state so its samples depend only on its seed, never on
** what else is running (no rand(), no global state). splitmix64 spreads even small or
** all-zero seeds over the 256-bit state, which xoshiro must never see as all zeros.
*/
#include "rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rng_seed(rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    /* splitmix64 is a bijection of a counter, so four consecutive outputs are never all
    ** zero; nothing more is needed to keep xoshiro out of its one fixed point. */
}

uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_float(rng *r)
{
    /* The top 24 bits fit a float's mantissa exactly, so the result is uniform on a
    ** 2^-24 grid and strictly below 1 (a 53-bit double would round up to 1.0f). */
    return (float)(rng_next(r) >> 40) * 0x1.0p-24f;
}
