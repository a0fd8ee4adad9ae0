/* One core's fp32 FMA peak: independent chains of vector FMAs, as wide as the build's -march allows.
 *
 *     cc -O2 -march=native bench/fma_peak.c -o fma_peak && ./fma_peak
 *     prints: isa=avx512 lanes=16 gflops_fma=... (fp32 mult-adds per second, in billions)
 *
 * CHAINS accumulators hide the FMA latency on every core we know (latency 4-5 cycles x 2 units
 * needs 8-10 chains; 12 leave headroom and fit in 16 registers). The result is the upper bound a
 * kernel's mult-adds per second is read against (bench_c_latency.py's "of peak" column).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define ISA "avx512"
#define LANES 16
typedef __m512 vec;
#define SET1(x) _mm512_set1_ps(x)
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SUM(v) _mm512_reduce_add_ps(v)
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ISA "avx2"
#define LANES 8
typedef __m256 vec;
#define SET1(x) _mm256_set1_ps(x)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float SUM(__m256 v)
{
    float t[8];
    int i;
    float s = 0.0f;
    _mm256_storeu_ps(t, v);
    for (i = 0; i < 8; i++) s += t[i];
    return s;
}
#else
#define ISA "scalar"
#define LANES 1
typedef float vec;
#define SET1(x) (x)
#define FMA(a, b, c) ((a) * (b) + (c))
#define SUM(v) (v)
#endif

#define CHAINS 12

/* CPU time (C99 has no wall clock finer than a second): time spent descheduled is not counted. */
static double now(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* n rounds of CHAINS FMAs; returns seconds (the sum keeps the work alive). The chains are named
 * variables, not an array: compilers keep an array of vectors in memory, which measures the stores. */
static double run(long n, float *sink)
{
    const vec a = SET1(0.999999f), b = SET1(1e-7f);
    vec c0 = SET1(0.0f), c1 = SET1(1.0f), c2 = SET1(2.0f), c3 = SET1(3.0f), c4 = SET1(4.0f), c5 = SET1(5.0f);
    vec c6 = SET1(6.0f), c7 = SET1(7.0f), c8 = SET1(8.0f), c9 = SET1(9.0f), c10 = SET1(10.0f), c11 = SET1(11.0f);
    double t0 = now();
    long i;
    for (i = 0; i < n; i++) {
        c0 = FMA(c0, a, b);
        c1 = FMA(c1, a, b);
        c2 = FMA(c2, a, b);
        c3 = FMA(c3, a, b);
        c4 = FMA(c4, a, b);
        c5 = FMA(c5, a, b);
        c6 = FMA(c6, a, b);
        c7 = FMA(c7, a, b);
        c8 = FMA(c8, a, b);
        c9 = FMA(c9, a, b);
        c10 = FMA(c10, a, b);
        c11 = FMA(c11, a, b);
    }
    t0 = now() - t0;
    *sink += SUM(c0) + SUM(c1) + SUM(c2) + SUM(c3) + SUM(c4) + SUM(c5) + SUM(c6) + SUM(c7) + SUM(c8) + SUM(c9)
           + SUM(c10) + SUM(c11);
    return t0;
}

int main(int argc, char **argv)
{
    const long n = argc > 1 ? atol(argv[1]) : 20000000L;
    float sink = 0.0f;
    double best = 1e30;
    int rep;
    for (rep = 0; rep < 7; rep++) { /* the fastest of 7: other jobs only ever slow a run down */
        const double t = run(n, &sink);
        if (t < best) best = t;
    }
    printf("isa=%s lanes=%d gflops_fma=%.2f sink=%g\n", ISA, LANES, (double)n * CHAINS * LANES / best / 1e9,
           (double)sink);
    return 0;
}
