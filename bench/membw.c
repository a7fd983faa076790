/* Memory read-bandwidth probe for bench/engine_vs_llama_cpp.sh (compiled ad hoc by that script:
 * cc -O3 -march=native -fopenmp bench/membw.c; it is not part of the CMake build).
 *
 * Reads a buffer much larger than the last-level cache with T OpenMP threads, each summing its
 * contiguous share with 256-bit loads into 4 accumulators (what a decode matmul does with the weights), and prints the
 * best of R passes as GB/s (10^9 bytes/s). Usage: membw [MiB=1024] [threads=all] [passes=10]
 * Output (one line, JSON): {"mib":..,"threads":..,"best_gbps":..,"median_gbps":..}
 */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
  int threads = argc > 2 ? atoi(argv[2]) : omp_get_max_threads();
  int passes = argc > 3 ? atoi(argv[3]) : 10;
  if (mib < 64 || threads < 1 || passes < 1 || passes > 1000) {
    fprintf(stderr, "membw: usage: membw [MiB>=64] [threads>=1] [passes 1..1000]\n");
    return 2;
  }
  omp_set_num_threads(threads);
  size_t bytes = mib << 20, n = bytes / sizeof(float);
  float* buf = aligned_alloc(64, bytes);
  if (!buf) { fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib); return 1; }
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = (float)(i & 1023) * 1e-3f;  /* first touch per thread */
  double* gbps = malloc(sizeof(double) * (size_t)passes);
  volatile float sink = 0;
  for (int p = 0; p < passes; ++p) {
    double t0 = omp_get_wtime();
    float total = 0;
#pragma omp parallel reduction(+ : total)
    {
      /* Each thread streams its contiguous share with 4 independent vector accumulators. */
      size_t chunks = n / 32, nt = (size_t)omp_get_num_threads(), me = (size_t)omp_get_thread_num();
      size_t lo = chunks * me / nt, hi = chunks * (me + 1) / nt;
      __m256 a = _mm256_setzero_ps(), b = a, d = a, e = a;
      for (size_t c = lo; c < hi; ++c) {
        const float* q = buf + c * 32;
        a = _mm256_add_ps(a, _mm256_load_ps(q));
        b = _mm256_add_ps(b, _mm256_load_ps(q + 8));
        d = _mm256_add_ps(d, _mm256_load_ps(q + 16));
        e = _mm256_add_ps(e, _mm256_load_ps(q + 24));
      }
      float lanes[8];
      _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(d, e)));
      for (int i = 0; i < 8; ++i) total += lanes[i];
    }
    double t = omp_get_wtime() - t0;
    sink += total;
    gbps[p] = (double)bytes / t / 1e9;
  }
  qsort(gbps, (size_t)passes, sizeof(double), cmp_double);
  printf("{\"mib\":%zu,\"threads\":%d,\"passes\":%d,\"best_gbps\":%.2f,\"median_gbps\":%.2f}\n", mib, threads, passes,
         gbps[passes - 1], gbps[passes / 2]);
  (void)sink;
  free(gbps);
  free(buf);
  return 0;
}
