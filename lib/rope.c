/*
** rope.c — rotary position embedding (Su et al., RoFormer): per-pair frequencies computed
** once per model, with Llama-3's frequency scaling, and the rotation in both layouts
** (pairs (2i, 2i+1), or halves (i, i + d/2) as Hugging Face's rotate_half does).
*/
#include "model.h"

#include <math.h>
#include <stdlib.h>

infer_status rope_init(infer_model *m)
{
    const llama_hparams *hp = &m->hp;
    int half = hp->head_dim / 2;
    m->rope_freqs = malloc((size_t)half * sizeof(float));
    if (!m->rope_freqs) return infer_err(INFER_ENOMEM, "out of memory for RoPE frequencies");
    for (int i = 0; i < half; i++) {
        /* In float, as llama2.c does, so its reference logits are reproduced to the last bit
        ** that matters. */
        float f = 1.0f / powf(hp->rope_theta, (float)(2 * i) / (float)hp->head_dim);
        if (hp->rope_factor > 0) {
            /* Meta's llama3 scaling: wavelengths above orig_ctx / low_freq_factor are slowed
            ** by `factor`, those below orig_ctx / high_freq_factor kept, a linear blend in
            ** between (in 1 / wavelength). */
            double wavelen = 2 * M_PI / f;
            double lo_w = hp->rope_orig_ctx / hp->rope_low_freq_factor;
            double hi_w = hp->rope_orig_ctx / hp->rope_high_freq_factor;
            if (wavelen > lo_w) {
                f = (float)(f / hp->rope_factor);
            } else if (wavelen >= hi_w) {
                double smooth = (hp->rope_orig_ctx / wavelen - hp->rope_low_freq_factor) /
                                (hp->rope_high_freq_factor - hp->rope_low_freq_factor);
                f = (float)((1 - smooth) * f / hp->rope_factor + smooth * f);
            }
        }
        if (m->w.rope_freq_factors) f /= m->w.rope_freq_factors[i];
        m->rope_freqs[i] = f;
    }
    return INFER_OK;
}
