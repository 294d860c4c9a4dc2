/* Cortex-M7 start-up of the C replay: the vector table, the reset handler (FPU on, .data copied,
 * .bss zeroed, then main) and one handler for every fault. No C library: the program uses none
 * (the cross toolchain has newlib's headers but not its libraries; memcpy and memset come from
 * the Rust library's compiler_builtins).
 */
#include "board.h"

/* The linker script's symbols. */
extern uint32_t _sidata; /* .data's load address in flash */
extern uint32_t _sdata, _edata, _sbss, _ebss;
extern uint32_t _stack_top;

int main(void);

/* SCB.CPACR: CP10 and CP11 (the FPU) full access. The library is built for
 * thumbv7em-none-eabihf (hard-float ABI): it may use FPU registers, which fault while the FPU
 * is off. */
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

__attribute__((noreturn)) void Reset_Handler(void) {
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    /* Word loops through volatile pointers: no memcpy before .data exists. */
    const volatile uint32_t *src = &_sidata;
    for (volatile uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (volatile uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    board_exit(main() == 0);
}

/* Every fault ends the run with a line the host shows (as firmware/board's HardFault). */
__attribute__((noreturn)) void Fault_Handler(void) {
    static const char msg[] = "HARDFAULT";
    board_report(msg, sizeof msg - 1);
    board_exit(false);
}

/* The system exceptions only: the program enables no interrupt. */
__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&_stack_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0,
    0,
    0,
    0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick: never enabled (the counter runs without its interrupt) */
};
