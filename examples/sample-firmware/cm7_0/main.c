/*
 * Sample CM7_0 program for a TRAVEO T2G CYT4BF bank image (ferrota image pack --cm7-0).
 *
 * Laid out as a ModusToolbox build of the seed's CM7_0 project lays it out (cm7_0.ld): the CySAF
 * application header at the region start 0x10010000, zeros up to the vector table at
 * 0x10010100 (region + 0x100: core0Vt = 0xF0), then code, read-only data and the initial
 * values of .data. `ferrota image pack` rewrites the header and signs the region.
 *
 * What it does: initialises RAM and idles. In the seed this core runs the application and the
 * OTA agent (FreeRTOS, the network stack, the AWS OTA library); on the simulated board of
 * `ferrota device run` these bytes are the image's content (signed, verified by the Dual Bank
 * Manager at every boot) and the board models the agent itself.
 */

#include "../common/startup.h"

/* Region and signature slot (crates/image/src/layout.rs: CM7_0 spans bank offsets
 * 0x10000..0x3E8000, its last 256 bytes are the signature slot). */
#define REGION_SIZE (0x3E8000u - 0x10000u)
#define SIGNATURE_SLOT 256u

/* The CySAF header (shared spec t2g-cyt4bf.md §1.7): objSize, appId ((major << 24) |
 * (minor << 20) | (build << 16) | 0x8002 for the CM7 cores, 0x8002 = "secure image"),
 * attributes, number of cores, core0Vt (vector table offset - 16), core0Id (CM7_0:
 * 0xC2400000). */
__attribute__((section(".cy_app_header"), used))
const u32 cy_app_header[6] = {
    REGION_SIZE - SIGNATURE_SLOT,
    ((u32)FW_VERSION_MAJOR << 24) | ((u32)(FW_VERSION_MINOR & 0xF) << 20) |
        ((u32)(FW_VERSION_BUILD & 0xF) << 16) | 0x8002u,
    0,
    1,
    0x100 - 16,
    0xC2400000u,
};

/* Seen with `strings cm7_0.elf`: which build this is. */
__attribute__((used)) const char fw_version[] = "ferrota sample firmware cm7_0 " FW_VERSION_STRING;

/* Cortex-M7 vector table: initial stack pointer, reset, NMI, HardFault, MemManage, BusFault,
 * UsageFault, reserved, SVCall, DebugMonitor, reserved, PendSV, SysTick (device interrupts
 * would follow). */
__attribute__((section(".vectors"), used))
void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top,
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};
