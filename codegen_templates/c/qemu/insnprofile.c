/* QEMU TCG plugin (plugin API v1, QEMU 7.2): executed instructions per guest address inside windows.
 *
 * Built by archdsl with the host C compiler; QEMU ships no plugin header, so the few API functions used
 * are declared here. Arguments (addresses as numbers, Thumb bit ignored):
 *   begin=A   executing A opens window 0 (the model's invoke function)
 *   step=A    executing A closes the current window and opens the next (archdsl_trace: one per step)
 *   end=A     executing A closes the current window (the return site of invoke)
 *   skip=L:H  instructions in [L, H) are not counted (the tracing code itself); repeatable
 *   out=PATH  where the counts are written: "w IMAGE WINDOW" lines, each followed by "ADDR COUNT" lines
 * Only addresses below 4 MiB (the code region of the MPS2 boards) are counted per address; any other
 * executed instruction inside a window is reported at address 0xffffffff. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
struct qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb)(unsigned int vcpu_index, void *userdata);
typedef void (*udata_cb)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, vcpu_udata_cb cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define CODE_SLOTS (4u << 20 >> 1) /* one counter per halfword of the 4 MiB code region */
#define OTHER CODE_SLOTS           /* the slot of every other address */
#define MAX_SKIP 16

static uint64_t *count, *last;     /* executions so far; at the last window boundary */
static uint32_t *seen;             /* slots that were translated, in order */
static uint8_t *is_seen;
static size_t n_seen;
static uint64_t begin_addr = ~0ull, step_addr = ~0ull, end_addr = ~0ull;
static uint64_t skip_lo[MAX_SKIP], skip_hi[MAX_SKIP];
static int n_skip, in_window;
static unsigned long image, window;
static FILE *out;

static uint32_t slot_of(uint64_t va) { return va < (4u << 20) ? (uint32_t)(va >> 1) : OTHER; }

/* Writes (when `emit`) the executions since the last boundary, then makes now the last boundary. */
static void boundary(int emit)
{
    size_t i;
    if (emit) fprintf(out, "w %lu %lu\n", image, window);
    for (i = 0; i < n_seen; i++) {
        uint32_t s = seen[i];
        uint64_t d = count[s] - last[s];
        if (emit && d) fprintf(out, "%lx %llu\n", s == OTHER ? 0xfffffffful : (unsigned long)s << 1,
                               (unsigned long long)d);
        last[s] = count[s];
    }
}

static void on_begin(unsigned int v, void *u) { (void)v; (void)u; boundary(0); in_window = 1; window = 0; }
static void on_step(unsigned int v, void *u)
{
    (void)v; (void)u;
    if (in_window) { boundary(1); window++; }
}
static void on_end(unsigned int v, void *u)
{
    (void)v; (void)u;
    if (in_window) { boundary(1); in_window = 0; image++; }
}

static int skipped(uint64_t va)
{
    int i;
    for (i = 0; i < n_skip; i++) if (va >= skip_lo[i] && va < skip_hi[i]) return 1;
    return 0;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t va = qemu_plugin_insn_vaddr(insn);
        uint32_t s = slot_of(va);
        if (va == begin_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (va == step_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_step, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (va == end_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (skipped(va)) continue;
        if (!is_seen[s]) { is_seen[s] = 1; seen[n_seen++] = s; }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &count[s], 1);
    }
}

static void at_exit(qemu_plugin_id_t id, void *u)
{
    (void)id; (void)u;
    fclose(out);
}

static uint64_t number(const char *s) { return strtoull(s, NULL, 0) & ~1ull; }

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv)
{
    int i;
    const char *path = NULL;
    (void)info;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "begin=", 6)) begin_addr = number(a + 6);
        else if (!strncmp(a, "step=", 5)) step_addr = number(a + 5);
        else if (!strncmp(a, "end=", 4)) end_addr = number(a + 4);
        else if (!strncmp(a, "out=", 4)) path = a + 4;
        else if (!strncmp(a, "skip=", 5) && n_skip < MAX_SKIP) {
            char *colon = strchr(a + 5, ':');
            if (!colon) return -1;
            skip_lo[n_skip] = number(a + 5);
            skip_hi[n_skip++] = strtoull(colon + 1, NULL, 0);
        } else {
            return -1;
        }
    }
    count = calloc(CODE_SLOTS + 1, sizeof *count);
    last = calloc(CODE_SLOTS + 1, sizeof *last);
    seen = calloc(CODE_SLOTS + 1, sizeof *seen);
    is_seen = calloc(CODE_SLOTS + 1, 1);
    out = path ? fopen(path, "w") : NULL;
    if (!count || !last || !seen || !is_seen || !out) return -1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
