// A 3x3 stride-1 convolution as Winograd F(4x4, 3x3) (Lavin & Gray, 2015): each 6x6 input
// tile and each 3x3 filter are transformed so that a 4x4 output tile costs 36 products per
// channel pair instead of 144. The 36 element-wise products over channels are 36 matrix
// products (K x C) x (C x tiles), run as single-threaded BLAS calls spread over the
// kernels' OpenMP threads (like parallel_gemm.cpp). Compiled and cached like a generated
// kernel: same entry signature, same prelude.
//
// inputs: x (N, C, H, W), w (K, C, 3, 3) or flipped (C, K, 3, 3), [bias (K,)], [residual (N, K, OH, OW)];
// outputs: y (N, K, OH, OW), float32.
// parameters: sgemm pointer, N, C, H, W, K, OH, OW, pad top, pad left, has bias,
//             scratch address, transformed-weights address, transform the weights (0/1),
//             tiles per block (0: whole phases), flipped weights (0/1: w is (C, K, 3, 3), the
//             convolution is an input gradient), activation on the output (0: none, 1: ReLU,
//             2: ReLU6), has residual (added before the activation).
// Scratch holds U (36, C, tiles) then M (36, K, tiles), tiles rounded up to LANES (per thread,
// tiles = the block, when blocked); transformed weights are V (36, K, C).

typedef void (*mj_sgemm_fn)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                            float, float*, int);

#include <omp.h>

namespace {

constexpr int LANES = 8;  // tiles (or channels) transformed together: one AVX register

struct Geometry {
  mj_i64 n, c, h, w, k, oh, ow, pad_top, pad_left;
  mj_i64 tiles_h, tiles_w, tiles, padded_tiles;
};

// u[i] = (B^T z)[i] for the six lanes-vectors z[0], z[zs], ..., z[5 zs].
inline void input_rows(const float* z, mj_i64 zs, float* u, mj_i64 us) {
  for (int l = 0; l < LANES; ++l) {
    const float z0 = z[l], z1 = z[zs + l], z2 = z[2 * zs + l], z3 = z[3 * zs + l], z4 = z[4 * zs + l],
                z5 = z[5 * zs + l];
    u[l] = 4.0f * z0 - 5.0f * z2 + z4;
    u[us + l] = -4.0f * (z1 + z2) + z3 + z4;
    u[2 * us + l] = 4.0f * (z1 - z2) - z3 + z4;
    u[3 * us + l] = 2.0f * (z3 - z1) - z2 + z4;
    u[4 * us + l] = 2.0f * (z1 - z3) - z2 + z4;
    u[5 * us + l] = 4.0f * z1 - 5.0f * z3 + z5;
  }
}

// v[i] = (G z)[i] for the three lanes-vectors z[0], z[zs], z[2 zs].
inline void filter_rows(const float* z, mj_i64 zs, float* v, mj_i64 vs) {
  for (int l = 0; l < LANES; ++l) {
    const float z0 = z[l], z1 = z[zs + l], z2 = z[2 * zs + l];
    const float outer = z0 + z2, quarter = 0.25f * z0 + z2;  // constant products, not divisions
    v[l] = 0.25f * z0;
    v[vs + l] = -(outer + z1) * (1.0f / 6.0f);
    v[2 * vs + l] = -(outer - z1) * (1.0f / 6.0f);
    v[3 * vs + l] = (quarter + 0.5f * z1) * (1.0f / 6.0f);
    v[4 * vs + l] = (quarter - 0.5f * z1) * (1.0f / 6.0f);
    v[5 * vs + l] = z2;
  }
}

// y[i] = (A^T z)[i] for the six lanes-vectors z[0], z[zs], ..., z[5 zs].
inline void output_rows(const float* z, mj_i64 zs, float* y, mj_i64 ys) {
  for (int l = 0; l < LANES; ++l) {
    const float z0 = z[l], z1 = z[zs + l], z2 = z[2 * zs + l], z3 = z[3 * zs + l], z4 = z[4 * zs + l],
                z5 = z[5 * zs + l];
    const float sum12 = z1 + z2, diff12 = z1 - z2, sum34 = z3 + z4, diff34 = z3 - z4;
    y[l] = z0 + sum12 + sum34;
    y[ys + l] = diff12 + 2.0f * diff34;
    y[2 * ys + l] = sum12 + 4.0f * sum34;
    y[3 * ys + l] = diff12 + 8.0f * diff34 + z5;
  }
}

// V[xi][k][c] for LANES channels from c0 (fewer at the end). ``flipped``: w is (C, K, 3, 3)
// and the filter of (k, c) is w[c][k] turned by 180 degrees (an input gradient).
void transform_filters(const Geometry& g, const float* w, bool flipped, float* v, mj_i64 k, mj_i64 c0) {
  alignas(32) float taps[9][LANES], half[18][LANES], out[36][LANES];
  const int count = (int)(g.c - c0 < LANES ? g.c - c0 : LANES);
  for (int l = 0; l < LANES; ++l)
    for (int i = 0; i < 9; ++i)
      taps[i][l] = l >= count ? 0.0f : flipped ? w[((c0 + l) * g.k + k) * 9 + 8 - i] : w[(k * g.c + c0 + l) * 9 + i];
  for (int j = 0; j < 3; ++j) filter_rows(taps[j], 3 * LANES, half[j], 3 * LANES);  // G g: 6 x 3
  for (int i = 0; i < 6; ++i) filter_rows(half[3 * i], LANES, out[6 * i], LANES);  // (G g) G^T: 6 x 6
  for (int xi = 0; xi < 36; ++xi)
    for (int l = 0; l < count; ++l) v[(xi * g.k + k) * g.c + c0 + l] = out[xi][l];
}

// U[xi][c][t - first] (rows of ``stride``) for the LANES tiles from t0 (zeros past the last tile).
void transform_inputs(const Geometry& g, const float* x, float* u, mj_i64 stride, mj_i64 first, mj_i64 c,
                      mj_i64 t0) {
  alignas(32) float tile[36][LANES], half[36][LANES], out[36][LANES];
  const mj_i64 per_image = g.tiles_h * g.tiles_w;
  for (int l = 0; l < LANES; ++l) {
    const mj_i64 t = t0 + l;
    if (t >= g.tiles) {
      for (int i = 0; i < 36; ++i) tile[i][l] = 0.0f;
      continue;
    }
    const mj_i64 image = t / per_image, row = (t % per_image) / g.tiles_w, column = t % g.tiles_w;
    const mj_i64 top = row * 4 - g.pad_top, left = column * 4 - g.pad_left;
    const float* plane = x + (image * g.c + c) * g.h * g.w;
    if (top >= 0 && left >= 0 && top + 6 <= g.h && left + 6 <= g.w) {
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) tile[6 * i + j][l] = plane[(top + i) * g.w + left + j];
    } else {
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const mj_i64 y = top + i, xx = left + j;
          tile[6 * i + j][l] = y >= 0 && y < g.h && xx >= 0 && xx < g.w ? plane[y * g.w + xx] : 0.0f;
        }
    }
  }
  for (int j = 0; j < 6; ++j) input_rows(tile[j], 6 * LANES, half[j], 6 * LANES);   // B^T d
  for (int i = 0; i < 6; ++i) input_rows(half[6 * i], LANES, out[6 * i], LANES);   // (B^T d) B
  for (int xi = 0; xi < 36; ++xi) {
    float* row = u + (xi * g.c + c) * stride + t0 - first;
    for (int l = 0; l < LANES; ++l) row[l] = out[xi][l];
  }
}

// y for the LANES tiles from t0 of output channel k, from M[xi][k][t - first] (rows of ``stride``).
void transform_outputs(const Geometry& g, const float* m, mj_i64 stride, mj_i64 first, const float* bias,
                       const float* residual, bool relu, float upper, float* y, mj_i64 k, mj_i64 t0) {
  alignas(32) float products[36][LANES], half[24][LANES], out[16][LANES];
  for (int xi = 0; xi < 36; ++xi) {
    const float* row = m + (xi * g.k + k) * stride + t0 - first;
    for (int l = 0; l < LANES; ++l) products[xi][l] = row[l];
  }
  for (int j = 0; j < 6; ++j) output_rows(products[j], 6 * LANES, half[j], 6 * LANES);  // A^T m: 4 x 6
  for (int i = 0; i < 4; ++i) output_rows(half[6 * i], LANES, out[4 * i], LANES);       // (A^T m) A: 4 x 4
  const float shift = bias ? bias[k] : 0.0f;
  const mj_i64 per_image = g.tiles_h * g.tiles_w;
  for (int l = 0; l < LANES && t0 + l < g.tiles; ++l) {
    const mj_i64 t = t0 + l;
    const mj_i64 image = t / per_image, top = (t % per_image) / g.tiles_w * 4, left = t % g.tiles_w * 4;
    float* plane = y + (image * g.k + k) * g.oh * g.ow;
    const float* added = residual ? residual + (image * g.k + k) * g.oh * g.ow : nullptr;
    const int rows = (int)(g.oh - top < 4 ? g.oh - top : 4), columns = (int)(g.ow - left < 4 ? g.ow - left : 4);
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < columns; ++j) {
        const mj_i64 at = (top + i) * g.ow + left + j;
        const float value = out[4 * i + j][l] + shift + (added ? added[at] : 0.0f);
        const float rectified = relu && value < 0.0f ? 0.0f : value;  // (a nan stays)
        plane[at] = rectified > upper ? upper : rectified;
      }
  }
}

}  // namespace

// 36 products M[xi] (K x count) = V[xi] (K x C) U[xi] (C x count), rows of ``stride``.
inline void multiply(const Geometry& g, mj_sgemm_fn sgemm, const float* v, const float* u, float* m, mj_i64 stride,
                     mj_i64 count, int xi) {
  sgemm(101, 111, 111, (int)g.k, (int)count, (int)g.c, 1.0f, v + xi * g.k * g.c, (int)g.c, u + xi * g.c * stride,
        (int)stride, 0.0f, m + xi * g.k * stride, (int)stride);
}

extern "C" void MJ_KERNEL_NAME(void* const* inputs, void* const* outputs, const void* parameters,
                               long long num_threads) {
  const mj_i64* p = (const mj_i64*)parameters;
  const mj_sgemm_fn sgemm = (mj_sgemm_fn)p[0];
  Geometry g{p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], 0, 0, 0, 0};
  g.tiles_h = (g.oh + 3) / 4;
  g.tiles_w = (g.ow + 3) / 4;
  g.tiles = g.n * g.tiles_h * g.tiles_w;
  g.padded_tiles = (g.tiles + LANES - 1) / LANES * LANES;
  const float* x = (const float*)inputs[0];
  const float* w = (const float*)inputs[1];
  const float* bias = p[10] ? (const float*)inputs[2] : nullptr;
  float* y = (float*)outputs[0];
  float* scratch = (float*)p[11];
  float* v = (float*)p[12];
  const bool transform_weights = p[13] != 0;
  const mj_i64 block = p[14];
  const bool flipped = p[15] != 0;
  const bool relu = p[16] != 0;  // 1: ReLU, 2: ReLU6
  const float upper = p[16] == 2 ? 6.0f : __builtin_inff();
  const float* residual = p[17] ? (const float*)inputs[p[10] ? 3 : 2] : nullptr;
  const mj_i64 tile_groups = g.padded_tiles / LANES, channel_groups = (g.c + LANES - 1) / LANES;
#pragma omp parallel num_threads(num_threads)
  {
    if (transform_weights) {
#pragma omp for schedule(static)
      for (mj_i64 item = 0; item < g.k * channel_groups; ++item)
        transform_filters(g, w, flipped, v, item / channel_groups, item % channel_groups * LANES);
    }
    if (block > 0) {  // each thread runs whole blocks of tiles, its U and M staying in cache
      const mj_i64 blocks = (g.padded_tiles + block - 1) / block;
      float* u = scratch + omp_get_thread_num() * 36 * (g.c + g.k) * block;
      float* m = u + 36 * g.c * block;
#pragma omp for schedule(dynamic, 1)
      for (mj_i64 b = 0; b < blocks; ++b) {
        const mj_i64 first = b * block, count = first + block < g.padded_tiles ? block : g.padded_tiles - first;
        for (mj_i64 c = 0; c < g.c; ++c)
          for (mj_i64 t0 = first; t0 < first + count; t0 += LANES) transform_inputs(g, x, u, block, first, c, t0);
        for (int xi = 0; xi < 36; ++xi) multiply(g, sgemm, v, u, m, block, count, xi);
        for (mj_i64 k = 0; k < g.k; ++k)
          for (mj_i64 t0 = first; t0 < first + count; t0 += LANES) transform_outputs(g, m, block, first, bias, residual, relu, upper, y, k, t0);
      }
    } else {  // whole phases: each product once over all tiles, V read once
      float* u = scratch;
      float* m = u + 36 * g.c * g.padded_tiles;
#pragma omp for schedule(static)
      for (mj_i64 item = 0; item < g.c * tile_groups; ++item)
        transform_inputs(g, x, u, g.padded_tiles, 0, item / tile_groups, item % tile_groups * LANES);
#pragma omp for schedule(static)
      for (int xi = 0; xi < 36; ++xi) multiply(g, sgemm, v, u, m, g.padded_tiles, g.padded_tiles, xi);
#pragma omp for schedule(static)
      for (mj_i64 item = 0; item < g.k * tile_groups; ++item)
        transform_outputs(g, m, g.padded_tiles, 0, bias, residual, relu, upper, y, item / tile_groups,
                          item % tile_groups * LANES);
    }
  }
}
