/* Cortex-M startup for the QEMU harness: vector table, .data/.bss set-up, FPU on, main, exit. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

__attribute__((section(".isr_vector"), used))
const uint32_t vector_table[16] = {
    (uint32_t)&_estack, (uint32_t)Reset_Handler,
    (uint32_t)Fault_Handler, (uint32_t)Fault_Handler,   /* NMI, HardFault */
    (uint32_t)Fault_Handler, (uint32_t)Fault_Handler,   /* MemManage, BusFault */
    (uint32_t)Fault_Handler, 0, 0, 0, 0,                /* UsageFault, reserved */
    (uint32_t)Fault_Handler, (uint32_t)Fault_Handler,   /* SVC, DebugMon */
    0, (uint32_t)Fault_Handler, (uint32_t)Fault_Handler /* reserved, PendSV, SysTick */
};

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20); /* CPACR: full access to CP10/CP11 (the FPU) */
    __asm__ volatile ("dsb\n\tisb" ::: "memory");
#endif
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    sh_exit(main());
    for (;;) {
    }
}

/* Any fault ends the run with exit status 99. */
void Fault_Handler(void)
{
    sh_puts("fault\n");
    sh_exit(99);
    for (;;) {
    }
}
