// A grouped stride-1 convolution with at most 4 input channels per group (ResNeXt-50's first
// stage: 32 groups of 4) as a direct convolution held in registers: for each output row, 4
// output channels x 16 columns accumulate over the group's input channels and the filter
// taps, every input load shared by the 4 channels. oneDNN's grouped convolution runs these
// at a tenth of the CPU's peak (it blocks channels by 8); with 8 or more channels per group
// it beats this kernel. Compiled and cached like a generated kernel: same entry signature,
// same prelude.
//
// inputs: x (N, C, H, W), w (K, C / groups, KH, KW), [bias (K,)]; outputs: y (N, K, OH, OW), float32.
// parameters: N, C, H, W, K, OH, OW, KH, KW, pad top, pad left, groups, has bias,
//             activation on the output (0: none, 1: ReLU, 2: ReLU6).
// Needs (K / groups) % 4 == 0 (`grouped_conv.py` checks).

#pragma GCC optimize("fp-contract=fast")  // fused multiply-adds: rounding differs from any other convolution anyway

namespace {

constexpr int COLUMNS = 16;      // output columns per register block (two 8-float vectors)
typedef float vec8 __attribute__((vector_size(32)));

inline vec8 load8(const float* p) {
  vec8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline void store8(float* p, vec8 v) { __builtin_memcpy(p, &v, sizeof v); }

struct Shape {
  mj_i64 n, c, h, w, k, oh, ow, kh, kw, pad_top, pad_left, groups;
  mj_i64 group_in, group_out, row_length;  // channels per group in and out, padded row length
};

// Output row oy of image n, group g: rows holds the group's input rows that the filter
// reaches (group_in x kh rows of row_length floats, zero outside the image).
void output_row(const Shape& s, const float* x, const float* w, const float* bias, int activation, float* y,
                float* rows, mj_i64 n, mj_i64 g, mj_i64 oy) {
  const mj_i64 taps = s.kh * s.kw;
  for (mj_i64 i = 0; i < s.group_in; ++i)
    for (mj_i64 ky = 0; ky < s.kh; ++ky) {
      float* row = rows + (i * s.kh + ky) * s.row_length;
      const mj_i64 iy = oy + ky - s.pad_top;
      const float* source = x + ((n * s.c + g * s.group_in + i) * s.h + iy) * s.w;
      // zeros left of the image, the image row, zeros right of it (all zeros above or below)
      const mj_i64 begin = iy >= 0 && iy < s.h ? (s.pad_left < s.row_length ? s.pad_left : s.row_length) : s.row_length;
      const mj_i64 end = begin + s.w < s.row_length ? begin + s.w : s.row_length;
      for (mj_i64 j = 0; j < begin; ++j) row[j] = 0.0f;
      if (end > begin) __builtin_memcpy(row + begin, source, (end - begin) * sizeof(float));
      for (mj_i64 j = end > begin ? end : begin; j < s.row_length; ++j) row[j] = 0.0f;
    }
  alignas(32) float tail[4][COLUMNS];
  for (mj_i64 o0 = 0; o0 < s.group_out; o0 += 4) {
    const mj_i64 k0 = g * s.group_out + o0;
    const float* filters = w + k0 * s.group_in * taps;  // 4 output channels' filters, one after another
    const mj_i64 stride = s.group_in * taps;
    for (mj_i64 x0 = 0; x0 < s.ow; x0 += COLUMNS) {
      vec8 acc[4][2];
      for (int o = 0; o < 4; ++o) {
        const float start = bias ? bias[k0 + o] : 0.0f;
        acc[o][0] = acc[o][1] = vec8{} + start;
      }
      for (mj_i64 i = 0; i < s.group_in; ++i)
        for (mj_i64 ky = 0; ky < s.kh; ++ky) {
          const float* row = rows + (i * s.kh + ky) * s.row_length + x0;
          const mj_i64 tap0 = (i * s.kh + ky) * s.kw;
          for (mj_i64 kx = 0; kx < s.kw; ++kx) {
            const vec8 low = load8(row + kx), high = load8(row + kx + 8);
            for (int o = 0; o < 4; ++o) {
              const float weight = filters[o * stride + tap0 + kx];
              acc[o][0] += weight * low;
              acc[o][1] += weight * high;
            }
          }
        }
      const mj_i64 count = s.ow - x0 < COLUMNS ? s.ow - x0 : COLUMNS;
      if (activation)  // (a nan compares false and stays)
        for (int o = 0; o < 4; ++o)
          for (int half = 0; half < 2; ++half) acc[o][half] = acc[o][half] < vec8{} ? vec8{} : acc[o][half];
      if (activation == 2) {
        const vec8 six = vec8{} + 6.0f;
        for (int o = 0; o < 4; ++o)
          for (int half = 0; half < 2; ++half) acc[o][half] = acc[o][half] > six ? six : acc[o][half];
      }
      for (int o = 0; o < 4; ++o) {
        float* out = y + ((n * s.k + k0 + o) * s.oh + oy) * s.ow + x0;
        if (count == COLUMNS) {
          store8(out, acc[o][0]);
          store8(out + 8, acc[o][1]);
        } else {
          store8(tail[o], acc[o][0]);
          store8(tail[o] + 8, acc[o][1]);
          for (mj_i64 j = 0; j < count; ++j) out[j] = tail[o][j];
        }
      }
    }
  }
}

}  // namespace

extern "C" void MJ_KERNEL_NAME(void* const* inputs, void* const* outputs, const void* parameters,
                               long long num_threads) {
  const mj_i64* p = (const mj_i64*)parameters;
  Shape s{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], 0, 0, 0};
  s.group_in = s.c / s.groups;
  s.group_out = s.k / s.groups;
  // every column block reads COLUMNS + kw - 1 values from its start
  s.row_length = (s.ow + COLUMNS - 1) / COLUMNS * COLUMNS + s.kw - 1;
  const float* x = (const float*)inputs[0];
  const float* w = (const float*)inputs[1];
  const float* bias = p[12] ? (const float*)inputs[2] : nullptr;
  const int activation = (int)p[13];
  float* y = (float*)outputs[0];
  const mj_i64 rows_per_call = s.n * s.groups * s.oh;
#pragma omp parallel num_threads(num_threads)
  {
    float* rows = new float[s.group_in * s.kh * s.row_length];
#pragma omp for schedule(static)
    for (mj_i64 item = 0; item < rows_per_call; ++item) {
      const mj_i64 oy = item % s.oh, g = item / s.oh % s.groups, n = item / (s.oh * s.groups);
      output_row(s, x, w, bias, activation, y, rows, n, g, oy);
    }
    delete[] rows;
  }
}
