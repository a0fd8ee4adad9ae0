/* Per-step timing harness for bench_c_layers.py: replaces the generated main.c of a model named "net"
 * built with -DARCHDSL_TRACE. The model calls archdsl_trace() after every step; this one records the
 * time instead of the tensor.
 *
 *     ./net_layers N     runs N times (after one warm-up run) and prints, per step in call order,
 *                        "step=<name> median_us=... min_us=..."
 *
 * Steps are timed in wall time (CLOCK_MONOTONIC: CPU time has too coarse a tick for a 10 us step);
 * the medians over many runs are what to read on a shared machine.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net.h"

#define MAX_STEPS 4096

static const char *names[MAX_STEPS];
static double *times; /* runs x MAX_STEPS, microseconds */
static int step, run_index, n_steps;
static double last;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

void archdsl_trace(const char *name, const float *t, int c, int h, int w);
void archdsl_trace(const char *name, const float *t, int c, int h, int w)
{
    const double t1 = now_us();
    (void)t, (void)c, (void)h, (void)w;
    if (step < MAX_STEPS) {
        names[step] = name;
        if (times) times[(size_t)run_index * MAX_STEPS + (size_t)step] = t1 - last;
    }
    step++;
    last = now_us();
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float input[NET_INPUT_SIZE], output[NET_OUTPUT_SIZE];

int main(int argc, char **argv)
{
    const int runs = argc == 2 && atoi(argv[1]) > 0 ? atoi(argv[1]) : 50;
    double *col = malloc(sizeof(double) * (size_t)runs);
    int i, s;
    times = malloc(sizeof(double) * (size_t)runs * MAX_STEPS);
    if (!times || !col) return 1;
    for (i = 0; i < NET_INPUT_SIZE; i++) input[i] = (float)((i * 7919) % 2001) / 1000.0f - 1.0f;
    {
        double *keep = times;
        times = NULL; /* warm-up: not recorded */
        step = 0;
        last = now_us();
        net_run(input, output);
        times = keep;
    }
    for (run_index = 0; run_index < runs; run_index++) {
        step = 0;
        last = now_us();
        net_run(input, output);
        n_steps = step < MAX_STEPS ? step : MAX_STEPS;
    }
    for (s = 0; s < n_steps; s++) {
        for (i = 0; i < runs; i++) col[i] = times[(size_t)i * MAX_STEPS + (size_t)s];
        qsort(col, (size_t)runs, sizeof(double), cmp_double);
        printf("step=%s median_us=%.2f min_us=%.2f\n", names[s], col[runs / 2], col[0]);
    }
    free(col);
    free(times);
    return 0;
}
