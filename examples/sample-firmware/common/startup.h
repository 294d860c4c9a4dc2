/*
 * What both sample programs share: the version macros, the C run-time start (copy .data from
 * flash, zero .bss, call main) and an idle main. Each core's main.c brings what differs: its
 * CySAF header (appId encoding, core0Id), its version string and its vector table (the M0+ and
 * the M7 have different exception sets).
 */
#ifndef FERROTA_SAMPLE_STARTUP_H
#define FERROTA_SAMPLE_STARTUP_H

typedef __UINT32_TYPE__ u32;

#ifndef FW_VERSION_MAJOR
#define FW_VERSION_MAJOR 1
#define FW_VERSION_MINOR 0
#define FW_VERSION_BUILD 0
#endif
#define STR2(x) #x
#define STR(x) STR2(x)
#define FW_VERSION_STRING STR(FW_VERSION_MAJOR) "." STR(FW_VERSION_MINOR) "." STR(FW_VERSION_BUILD)

extern u32 __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern u32 __stack_top[];

/* A variable with an initial value: its bytes live in flash (the ELF's physical address) and
 * are copied to RAM at reset. */
volatile u32 boot_count = 1;
volatile u32 ticks;

void Reset_Handler(void);
void Default_Handler(void);

__attribute__((noreturn)) int main(void)
{
    for (;;) {
        ticks++;
        __asm__ volatile("wfi");
    }
}

void Reset_Handler(void)
{
    u32 *src = __data_load, *dst = __data_start;
    while (dst < __data_end)
        *dst++ = *src++;
    for (dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;
    main();
}

void Default_Handler(void)
{
    for (;;) {
    }
}

#endif
