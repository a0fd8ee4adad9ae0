/* Arm semihosting calls, as QEMU implements them (-semihosting-config enable=on,target=native). */
#include "semihost.h"

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_FLEN 0x0C
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uint32_t sh_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile ("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static uint32_t addr(const void *p) { return (uint32_t)(uintptr_t)p; }

void sh_puts(const char *s) { sh_call(SYS_WRITE0, s); }

void sh_put_u32(uint32_t v)
{
    char b[11];
    int i = 10;
    b[10] = 0;
    do {
        b[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    sh_puts(b + i);
}

void sh_put_hex(uint32_t v)
{
    char b[11];
    int i;
    b[0] = '0';
    b[1] = 'x';
    b[10] = 0;
    for (i = 0; i < 8; i++) b[9 - i] = "0123456789abcdef"[(v >> (4 * i)) & 0xFu];
    sh_puts(b);
}

int32_t sh_open(const char *path, uint32_t mode)
{
    uint32_t blk[3], n = 0;
    while (path[n]) n++;
    blk[0] = addr(path);
    blk[1] = mode;
    blk[2] = n;
    return (int32_t)sh_call(SYS_OPEN, blk);
}

int32_t sh_flen(int32_t handle)
{
    uint32_t blk[1];
    blk[0] = (uint32_t)handle;
    return (int32_t)sh_call(SYS_FLEN, blk);
}

uint32_t sh_read(int32_t handle, void *buf, uint32_t len)
{
    uint32_t blk[3];
    blk[0] = (uint32_t)handle;
    blk[1] = addr(buf);
    blk[2] = len;
    return sh_call(SYS_READ, blk);
}

uint32_t sh_write(int32_t handle, const void *buf, uint32_t len)
{
    uint32_t blk[3];
    blk[0] = (uint32_t)handle;
    blk[1] = addr(buf);
    blk[2] = len;
    return sh_call(SYS_WRITE, blk);
}

void sh_close(int32_t handle)
{
    uint32_t blk[1];
    blk[0] = (uint32_t)handle;
    sh_call(SYS_CLOSE, blk);
}

void sh_exit(int code)
{
    uint32_t blk[2];
    blk[0] = ADP_STOPPED_APPLICATION_EXIT;
    blk[1] = (uint32_t)code;
    sh_call(SYS_EXIT_EXTENDED, blk);                                /* QEMU exit status = code */
    sh_call(SYS_EXIT, (const void *)(uintptr_t)ADP_STOPPED_APPLICATION_EXIT); /* older hosts: status 0 */
}
