/* forest_predict.h: ksv-forest's CPU predictor. Walks a block of rows through one tree at a
 * time (the tree stays in L1 while the block passes), or, for a single row, several trees in
 * lockstep so their node loads overlap. Margins are summed in float, in tree order, from the
 * base margin, as XGBoost does, then the objective's transform runs. */
#ifndef KSV_ENGINE_FOREST_PREDICT_H
#define KSV_ENGINE_FOREST_PREDICT_H

#include <stddef.h>

#include "common/error.h"
#include "engine/forest/forest_layout.h"

#define FOREST_BLOCK_ROWS 128

/* Floats of scratch one forest_predict call needs (a block of margins). */
size_t forest_scratch_floats(const forest *f);

/* x: rows * f->num_features floats, NaN = missing. out: rows * f->num_outputs floats.
 * scratch: forest_scratch_floats(f) floats owned by the calling thread, 8-byte aligned (a
 * LightGBM forest sums in double there; malloc's memory is). Cannot fail. */
void forest_predict(const forest *f, const float *x, size_t rows, float *out, float *scratch);

/* Same, spread over up to `threads` threads (the caller's thread included, using `scratch`);
 * small batches stay on the calling thread. Fails only when a thread or memory is refused. */
int forest_predict_parallel(const forest *f, const float *x, size_t rows, float *out,
                            float *scratch, unsigned threads, ksv_err *err);

/* The objective's transform of one row's K margins into its outputs (XGBoost's numerics). */
void forest_transform_row(const forest *f, const float *margin, float *out);

#endif
