/* Arm semihosting (bkpt 0xAB): console, files and exit through the debugger or QEMU. No libc. */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stdint.h>

#define SH_MODE_RB 1 /* fopen "rb" */
#define SH_MODE_WB 5 /* fopen "wb" */

void sh_puts(const char *s);
void sh_put_u32(uint32_t v);     /* decimal */
void sh_put_hex(uint32_t v);     /* 0x%08x */
int32_t sh_open(const char *path, uint32_t mode); /* a handle, or -1 */
int32_t sh_flen(int32_t handle);
uint32_t sh_read(int32_t handle, void *buf, uint32_t len);        /* bytes NOT read */
uint32_t sh_write(int32_t handle, const void *buf, uint32_t len); /* bytes NOT written */
void sh_close(int32_t handle);
void sh_exit(int code); /* QEMU exits with `code` */

#endif /* SEMIHOST_H */
