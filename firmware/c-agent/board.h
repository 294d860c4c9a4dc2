/* The emulated board under the C replay: QEMU mps2-an500 (Cortex-M7), the same memory map as
 * the Rust replay (firmware/cm7-agent). Every address here is a copy of a Rust constant; the
 * host test crates/qemu-harness/tests/c_agent_board.rs fails when one drifts from its source.
 */
#ifndef FERROTA_C_AGENT_BOARD_H
#define FERROTA_C_AGENT_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- where the host loads things (crates/qemu-harness/src/map.rs, agent_script.rs) --- */

/* agent_script::SCRIPT: the recorded update, in the PSRAM. */
#define BOARD_SCRIPT 0x60900000u
/* agent_script::SCRIPT_MAX: to the end of the PSRAM. */
#define BOARD_SCRIPT_MAX 0x00700000u
/* agent_script::INACTIVE_BANK: the upper bank's single-bank place, RAM with code-flash rules. */
#define BOARD_INACTIVE_BANK 0x603F8000u
/* agent_script::RESUME: the resume area (T2G 0x14013000), RAM with work-flash rules. */
#define BOARD_RESUME 0x60820000u
/* map::MPS2_AN500.sflash: the SFlash copy (T2G 0x17000000). */
#define BOARD_SFLASH 0x60800000u
/* map::MPS2_AN500.log: the marker log (T2G 0x14012000), RAM with work-flash rules. */
#define BOARD_LOG 0x60830000u

/* --- sizes (ferrota-image, ferrota-agent, ferrota-boot) --- */

/* ferrota_image::BANK_SIZE: one bank. */
#define BOARD_BANK_SIZE 0x003F8000u
/* ferrota_agent::RESUME_AREA_LEN: one work-flash sector. */
#define BOARD_RESUME_SIZE 0x00000800u
/* map::LOG_SIZE: two work-flash sectors. */
#define BOARD_LOG_SIZE 0x00001000u
/* ferrota_image::sflash_key::SFLASH_KEY_ADDRESS - map::T2G_SFLASH: the key object in SFlash. */
#define BOARD_SFLASH_KEY_OFFSET 0x00006400u
/* ferrota_image::sflash_key::SFLASH_KEY_AREA: bytes of the key object's area. */
#define BOARD_SFLASH_KEY_AREA 0x00000C00u
/* ferrota_image::version::RECORD_OFFSET: the version record's bank offset. */
#define BOARD_RECORD_OFFSET 0x00000018u

/* --- semihosting (what the host reads) --- */

/* Writes `len` bytes and a newline to the host's stdout. */
void board_report(const char *line, size_t len);
/* Ends the QEMU run: exit status 0 when `ok`, 1 otherwise. */
void board_exit(bool ok) __attribute__((noreturn));

/* --- SysTick instruction counter (as firmware/board's `counter`) --- */

/* Starts SysTick free-running from 0xFFFFFF on the core clock. */
void counter_start(void);
/* The current SysTick value (counts down). */
uint32_t counter_now(void);
/* Ticks since `then` (at most one wrap of 2^24 ticks). */
uint32_t counter_since(uint32_t then);
/* Ticks taken by a loop of exactly 2 * n + 2 instructions. */
uint32_t counter_calibrate(uint32_t n);

/* --- stack painting (as firmware/board's `stack`) --- */

/* Paints from the end of .bss up to 256 bytes below the current stack pointer. */
void stack_paint(void);
/* Bytes of stack used at most since stack_paint (from the top of RAM). */
uint32_t stack_high_water(void);

#endif
