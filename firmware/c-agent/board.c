/* The board services of the C replay: semihosting output and exit, the SysTick instruction
 * counter and stack painting. Each mirrors firmware/board (Rust) so the two replays' figures
 * are measured the same way.
 */
#include "board.h"

/* --- semihosting: `bkpt 0xAB` with the operation in r0 and its argument in r1 --- */

#define SYS_OPEN 0x01u
#define SYS_WRITE 0x05u
#define SYS_EXIT 0x18u
/* ADP_Stopped_ApplicationExit / ADP_Stopped_RunTimeErrorUnknown: QEMU exits 0 / 1. */
#define ADP_APPLICATION_EXIT 0x20026u
#define ADP_RUNTIME_ERROR 0x20023u
/* SYS_OPEN mode 4 ("w"): with the name ":tt", the host's stdout. */
#define OPEN_W 4u

static int32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

/* The stdout handle, opened once (-1: not yet, or the host refused). */
static int32_t stdout_handle = -1;

static void write_all(const char *p, size_t len) {
    while (len > 0) {
        uint32_t args[3] = {(uint32_t)stdout_handle, (uint32_t)(uintptr_t)p, (uint32_t)len};
        /* Returns the bytes NOT written; a negative or larger value is an error. */
        int32_t left = semihost(SYS_WRITE, args);
        if (left < 0 || (size_t)left >= len) {
            return;
        }
        p += len - (size_t)left;
        len = (size_t)left;
    }
}

void board_report(const char *line, size_t len) {
    if (stdout_handle < 0) {
        static const char tt[] = ":tt";
        uint32_t args[3] = {(uint32_t)(uintptr_t)tt, OPEN_W, sizeof tt - 1};
        stdout_handle = semihost(SYS_OPEN, args);
        if (stdout_handle < 0) {
            return;
        }
    }
    write_all(line, len);
    write_all("\n", 1);
}

void board_exit(bool ok) {
    /* On AArch32 SYS_EXIT takes the reason itself in r1, not a pointer to it. */
    (void)semihost(SYS_EXIT, (const void *)(uintptr_t)(ok ? ADP_APPLICATION_EXIT : ADP_RUNTIME_ERROR));
    for (;;) {
        __asm__ volatile("nop");
    }
}

/* --- SysTick: under -icount shift=0 one tick of the 25 MHz core clock is 40 instructions --- */

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_CLKSOURCE_CORE (1u << 2)

void counter_start(void) {
    SYST_CSR = 0;
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_CLKSOURCE_CORE | SYST_CSR_ENABLE;
}

uint32_t counter_now(void) { return SYST_CVR; }

uint32_t counter_since(uint32_t then) { return (then - counter_now()) & 0x00FFFFFFu; }

__attribute__((noinline)) uint32_t counter_calibrate(uint32_t n) {
    uint32_t t = counter_now();
    /* The same two instructions per iteration as the Rust calibration loop. */
    __asm__ volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return counter_since(t);
}

/* --- stack painting --- */

#define PAINT 0xC0DE5A5Au

/* The linker script's symbols: the end of .bss and the top of RAM (the initial stack). */
extern uint32_t _ebss;
extern uint32_t _stack_top;

__attribute__((noinline)) void stack_paint(void) {
    uintptr_t sp;
    __asm__ volatile("mrs %0, msp" : "=r"(sp));
    sp -= 256;
    for (volatile uint32_t *a = &_ebss; (uintptr_t)a < sp; a++) {
        *a = PAINT;
    }
}

uint32_t stack_high_water(void) {
    const volatile uint32_t *a = &_ebss;
    while ((uintptr_t)a < (uintptr_t)&_stack_top && *a == PAINT) {
        a++;
    }
    return (uint32_t)((uintptr_t)&_stack_top - (uintptr_t)a);
}
