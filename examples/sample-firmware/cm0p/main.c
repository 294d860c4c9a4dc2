/*
 * Sample CM0+ program for a TRAVEO T2G CYT4BF bank image (ferrota image pack --cm0p).
 *
 * Laid out as a ModusToolbox build of the seed's CM0+ project lays it out (cm0p.ld): the CySAF
 * application header at the region start 0x10000000, the version-record area 0x10000018..0x100
 * left zero, the vector table at 0x10000100 (region + 0x100: core0Vt = 0xF0), then code,
 * read-only data and the initial values of .data. `ferrota image pack` rewrites the header,
 * writes the version record and signs the region.
 *
 * What it does: initialises RAM and idles. A real CM0+ application starts the CM7 cores here
 * (the PDL's Cy_SysEnableCM7(CORE_CM7_0, CY_CORTEX_M7_0_APPL_ADDR), with the CM7_0 vector table
 * at 0x10010100) and then runs its own work. On the simulated board of `ferrota device run`
 * these bytes are the image's content (signed, verified by the Dual Bank Manager at every
 * boot); the board models the OTA agent itself.
 */

#include "../common/startup.h"

/* Region and signature slot (crates/image/src/layout.rs: the CM0+ region is 64 KB, its last
 * 256 bytes are the signature slot). */
#define REGION_SIZE 0x10000u
#define SIGNATURE_SLOT 256u

/* The CySAF header, as cymcuelftool expects it (shared spec t2g-cyt4bf.md §1.7): objSize,
 * appId ((major << 24) | (minor << 16) | build for the CM0+), attributes, number of cores,
 * core0Vt (vector table offset - 16), core0Id (CM0+: 0xC6000000). */
__attribute__((section(".cy_app_header"), used))
const u32 cy_app_header[6] = {
    REGION_SIZE - SIGNATURE_SLOT,
    ((u32)FW_VERSION_MAJOR << 24) | ((u32)FW_VERSION_MINOR << 16) | (u32)FW_VERSION_BUILD,
    0,
    1,
    0x100 - 16,
    0xC6000000u,
};

/* Seen with `strings cm0p.elf`: which build this is. */
__attribute__((used)) const char fw_version[] = "ferrota sample firmware cm0p " FW_VERSION_STRING;

/* Cortex-M0+ vector table: initial stack pointer, reset, NMI, HardFault, reserved, SVCall,
 * reserved, PendSV, SysTick (device interrupts would follow). */
__attribute__((section(".vectors"), used))
void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top,
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    0, 0, 0, 0, 0, 0, 0,
    Default_Handler, /* SVCall */
    0, 0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};
