/* The recorded update the host loads at BOARD_SCRIPT: its binary layout, as
 * crates/qemu-harness/src/agent_script.rs writes it (little-endian):
 *
 *   offset  size  field
 *   0       4     magic "FQAS"
 *   4       4     entries
 *   8       4     total bytes
 *   12      8     instant of the agent's creation (µs)
 *   20      4     running bank (0 lower, 1 upper)
 *   24      4     block size
 *   28      4     blocks per request
 *   32      4     requests in flight
 *   36      65    code-signing key (SEC1 uncompressed)
 *   101     64    thing name (zero padded)
 *   165     32    hardware id (zero padded; all zero: none)
 *   256     232   running version record (bank offsets 0x18..0x100)
 *   512     ...   entries: kind, time low, time high, topic bytes, payload bytes (5 words),
 *                 topic, payload, zero padding to 4
 */
#ifndef FERROTA_C_AGENT_SCRIPT_H
#define FERROTA_C_AGENT_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRIPT_MAGIC 0x53415146u /* "FQAS" little-endian */
#define SCRIPT_HEADER 512u
#define SCRIPT_AT_ENTRIES 4u
#define SCRIPT_AT_TOTAL 8u
#define SCRIPT_AT_START 12u
#define SCRIPT_AT_BANK 20u
#define SCRIPT_AT_BLOCK_SIZE 24u
#define SCRIPT_AT_BLOCKS_PER_REQUEST 28u
#define SCRIPT_AT_IN_FLIGHT 32u
#define SCRIPT_AT_CODE_KEY 36u
#define SCRIPT_CODE_KEY_LEN 65u
#define SCRIPT_AT_THING 101u
#define SCRIPT_THING_LEN 64u
#define SCRIPT_AT_HARDWARE 165u
#define SCRIPT_HARDWARE_LEN 32u
#define SCRIPT_AT_RECORD 256u
#define SCRIPT_RECORD_LEN 232u

/* What an entry gives the agent. */
enum ScriptKind {
    SCRIPT_CONNECTED = 1, /* ferrota_agent_handle_connected */
    SCRIPT_MESSAGE = 2,   /* ferrota_agent_handle_message(topic, payload) */
    SCRIPT_TIMEOUT = 3,   /* ferrota_agent_handle_timeout */
};

/* A script checked for its magic and length: `total` bytes at `bytes`. */
typedef struct Script {
    const uint8_t *bytes;
    uint32_t total;
    uint32_t entries;
} Script;

/* One input. */
typedef struct ScriptEntry {
    enum ScriptKind kind;
    uint64_t at; /* µs */
    const uint8_t *topic;
    uint32_t topic_len;
    const uint8_t *payload;
    uint32_t payload_len;
} ScriptEntry;

/* The walk over a script's entries. */
typedef struct ScriptCursor {
    const Script *script;
    uint32_t pos;
    uint32_t left;
} ScriptCursor;

/* Checks the magic and the total length (at least the header, at most `mem_len`). */
bool script_parse(const uint8_t *mem, uint32_t mem_len, Script *out);
/* A header word (the header is inside the script: script_parse checked it). */
uint32_t script_word(const Script *s, uint32_t at);
/* The length of the zero-padded string of at most `cap` bytes at `at`. */
size_t script_zstr_len(const Script *s, uint32_t at, size_t cap);
/* The cursor at the first entry. */
ScriptCursor script_entries(const Script *s);
/* The next entry: 1 and `*out`, 0 at the end, -1 for a malformed entry (a kind other than
 * 1..3, or lengths that leave the script). */
int script_next(ScriptCursor *c, ScriptEntry *out);

#endif
