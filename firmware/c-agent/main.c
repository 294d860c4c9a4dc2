/* The OTA agent from C on the CM7 (QEMU mps2-an500, run with -icount shift=0): issue #22 item 4.
 *
 * The same replay as firmware/cm7-agent, written as a C user of the C API would write it: the
 * host (`ferrota-qemu agent`) recorded a whole update on its own agent (job document, 32 stream
 * blocks, status updates, timers) and loaded the inputs as a script at BOARD_SCRIPT; this
 * program parses the script, creates the agent with ferrota_agent_init over flash callbacks on
 * the same RAM windows as the Rust replay (inactive bank with the code-flash rules at
 * 0x603F8000, resume area and marker log with the work-flash rules), feeds every input at its
 * recorded instant (ferrota_agent_handle_connected / _message / _timeout), drains
 * ferrota_agent_poll_transmit then ferrota_agent_poll_event after each, and prints one line per
 * output and the marker log's newest record (ferrota_marker_log_read). The host compares the
 * lines with its own agent's, exactly as for the Rust replay.
 *
 * Figures (`name=value` lines, not compared): SysTick ticks in the agent's calls (all, and the
 * longest: the last block, which hashes the file from flash and checks both signatures), the
 * calibration loop, the stack high-water (of ferrota_agent_init, of the update after it, and of
 * the whole run).
 *
 * Checks: every ferrota_* status (an error prints `error <call>: <ferrota_strerror>` and fails
 * the run); the script's layout (script.c); the callbacks refuse what leaves their window,
 * misaligned writes and erases, and programming a word that is not erased.
 */
#include "board.h"
#include "ferrota.h"
#include "line.h"
#include "script.h"

/* The C API's enum types are fixed-width typedefs (uint8_t; FerrotaStatus int32_t), so the
 * structs' layout does not depend on -fshort-enums: the header's test asserts it under both. */
_Static_assert(sizeof(FerrotaTransmitKind) == 1 && sizeof(FerrotaStatus) == 4, "fixed-width enums");

#define CALIBRATION_LOOPS 1000000u

/* The agent's memory, the boot key it borrows and the transmit buffer: static, as a C firmware
 * holds them (the Rust replay keeps its Agent on the stack instead). */
static uint64_t agent_mem[FERROTA_AGENT_SIZE / 8];
static FerrotaBootKey boot_key;
static uint8_t tx[512];

/* The stack high-water right after ferrota_agent_init (0 until then). */
static uint32_t stack_init;

/* --- flash: plain RAM with the T2G NOR rules (erase to 0xFF, program erased words only) --- */

/* One RAM window standing for a flash area. */
typedef struct Window {
    uintptr_t base;
    uint32_t size;
    uint32_t write; /* program granule */
    uint32_t erase; /* erase granule */
} Window;

/* What the callbacks reach (FerrotaPlatform.user). */
typedef struct Flash {
    Window inactive, resume, log;
    /* The running bank's version record (bank offsets 0x18..0x100) from the script: the only
     * part of the running bank this replay has. The script is one download up to the
     * activation: no confirm reads the running bank's CM0+ region. */
    const uint8_t *record;
} Flash;

static const Window *window(const Flash *f, FerrotaArea area) {
    switch (area) {
    case FERROTA_AREA_INACTIVE_BANK:
        return &f->inactive;
    case FERROTA_AREA_RESUME:
        return &f->resume;
    case FERROTA_AREA_MARKER_LOG:
        return &f->log;
    default:
        /* The running bank (read only, below) and the trust store: the recorded update runs
         * the AwsPlain policy without an anchor, so the agent never opens the trust store; none
         * is mapped and any access fails, as in the Rust replay. */
        return 0;
    }
}

static bool in_window(const Window *w, uint32_t offset, size_t len) {
    return offset <= w->size && len <= w->size - offset;
}

static int32_t flash_read(void *user, FerrotaArea area, uint32_t offset, uint8_t *buf, size_t len) {
    const Flash *f = user;
    if (area == FERROTA_AREA_ACTIVE_BANK) {
        if (offset < BOARD_RECORD_OFFSET || offset - BOARD_RECORD_OFFSET > SCRIPT_RECORD_LEN ||
            len > SCRIPT_RECORD_LEN - (offset - BOARD_RECORD_OFFSET)) {
            return -1;
        }
        __builtin_memcpy(buf, f->record + (offset - BOARD_RECORD_OFFSET), len);
        return 0;
    }
    const Window *w = window(f, area);
    if (!w || !in_window(w, offset, len)) {
        return -1;
    }
    __builtin_memcpy(buf, (const uint8_t *)(w->base + offset), len);
    return 0;
}

static int32_t flash_write(void *user, FerrotaArea area, uint32_t offset, const uint8_t *data,
                           size_t len) {
    const Window *w = window(user, area);
    if (!w || !in_window(w, offset, len) || offset % w->write != 0 || len % w->write != 0) {
        return -1;
    }
    volatile uint32_t *dst = (volatile uint32_t *)(w->base + offset);
    for (size_t i = 0; i < len; i += 4) {
        if (dst[i / 4] != 0xFFFFFFFFu) {
            return -1; /* NOR: a word is programmed once per erase */
        }
        dst[i / 4] = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 |
                     (uint32_t)data[i + 3] << 24;
    }
    return 0;
}

static int32_t flash_erase(void *user, FerrotaArea area, uint32_t from, uint32_t to) {
    const Window *w = window(user, area);
    if (!w || from > to || to > w->size || from % w->erase != 0 || to % w->erase != 0) {
        return -1;
    }
    volatile uint32_t *p = (volatile uint32_t *)(w->base + from);
    for (uint32_t i = 0; i < (to - from) / 4; i++) {
        p[i] = 0xFFFFFFFFu;
    }
    return 0;
}

/* The marker log for ferrota_marker_log_read (offset 0 = the log's start). */
static int32_t log_read(void *user, uint32_t offset, uint8_t *buf, size_t len) {
    const Window *w = user;
    if (!in_window(w, offset, len)) {
        return -1;
    }
    __builtin_memcpy(buf, (const uint8_t *)(w->base + offset), len);
    return 0;
}

/* --- output --- */

static void report_text(const char *s) { board_report(s, __builtin_strlen(s)); }

static void report_num(const char *label, uint32_t v) {
    Line l;
    line_init(&l);
    line_push(&l, label);
    line_num(&l, v);
    line_report(&l);
}

/* `error <what>: <status code> <message>`: the host shows it (and its refusal check matches
 * the code, which is the ABI, not the message); the run then fails. */
static bool fail(const char *what, FerrotaStatus st) {
    Line l;
    line_init(&l);
    line_push(&l, "error ");
    line_push(&l, what);
    line_push(&l, ": ");
    if ((int32_t)st < 0) {
        line_push(&l, "-");
    }
    line_num(&l, (int32_t)st < 0 ? (uint32_t)-(int32_t)st : (uint32_t)st);
    line_push(&l, " ");
    line_push(&l, ferrota_strerror(st));
    line_report(&l);
    return false;
}

/* Ticks of all agent calls, and of the longest. */
typedef struct Clock {
    uint32_t total;
    uint32_t longest;
    uint32_t started;
} Clock;

static void clock_start(Clock *c) { c->started = counter_now(); }

static void clock_stop(Clock *c) {
    uint32_t d = counter_since(c->started);
    c->total = c->total + d < c->total ? UINT32_MAX : c->total + d;
    if (d > c->longest) {
        c->longest = d;
    }
}

/* Prints the agent's outputs in the host's order: every MQTT operation, then every event. */
static bool drain(FerrotaAgent *agent) {
    FerrotaStatus st;
    FerrotaTransmit t;
    while ((st = ferrota_agent_poll_transmit(agent, tx, sizeof tx, &t)) == FERROTA_OK) {
        Line l;
        line_init(&l);
        line_transmit(&l, &t, tx);
        line_report(&l);
    }
    if (st != FERROTA_NONE) {
        return fail("poll-transmit", st);
    }
    FerrotaEvent e;
    while ((st = ferrota_agent_poll_event(agent, &e)) == FERROTA_OK) {
        Line l;
        line_init(&l);
        line_event(&l, &e);
        line_report(&l);
    }
    if (st != FERROTA_NONE) {
        return fail("poll-event", st);
    }
    return true;
}

/* The library panicked (a bug; its state is unknown): say so and end the run now, instead of
 * the core parking until the host's time limit. Calls nothing of the library, never returns. */
static void on_panic(void) {
    report_text("error panic (in the library)");
    board_exit(false);
}

static bool run(void) {
    (void)ferrota_set_panic_hook(on_panic);
    FerrotaStatus st = ferrota_boot_key_parse((const uint8_t *)(BOARD_SFLASH + BOARD_SFLASH_KEY_OFFSET),
                                              BOARD_SFLASH_KEY_AREA, &boot_key);
    if (st != FERROTA_OK) {
        return fail("key-object", st);
    }
    Script s;
    if (!script_parse((const uint8_t *)BOARD_SCRIPT, BOARD_SCRIPT_MAX, &s)) {
        report_text("error script");
        return false;
    }
    /* The stream tuning the host recorded with goes to the C API as it is. Zero is the one
     * value that cannot be passed: the recording's agent refuses it, while FerrotaConfig reads
     * it as "the default" and would replay another tuning. Any other out-of-range value is the
     * C API's to refuse (FERROTA_ERR_CONFIG from ferrota_agent_init). */
    uint32_t block_size = script_word(&s, SCRIPT_AT_BLOCK_SIZE);
    uint32_t per_request = script_word(&s, SCRIPT_AT_BLOCKS_PER_REQUEST);
    uint32_t in_flight = script_word(&s, SCRIPT_AT_IN_FLIGHT);
    if (block_size == 0 || per_request == 0 || in_flight == 0) {
        report_text("error script-tuning (zero: the recording cannot have it)");
        return false;
    }
    /* FerrotaConfig.running_bank is a byte: a larger word must not wrap to a valid bank. */
    uint32_t bank = script_word(&s, SCRIPT_AT_BANK);
    if (bank > 1) {
        report_text("error script-bank");
        return false;
    }
    size_t hw_len = script_zstr_len(&s, SCRIPT_AT_HARDWARE, SCRIPT_HARDWARE_LEN);
    FerrotaConfig cfg = {
        .thing_name = s.bytes + SCRIPT_AT_THING,
        .thing_name_len = script_zstr_len(&s, SCRIPT_AT_THING, SCRIPT_THING_LEN),
        .boot_key = &boot_key,
        .code_signing_key = s.bytes + SCRIPT_AT_CODE_KEY,
        .code_signing_key_len = SCRIPT_CODE_KEY_LEN,
        .hardware_id = hw_len ? s.bytes + SCRIPT_AT_HARDWARE : 0,
        .hardware_id_len = hw_len,
        .running_bank = (uint8_t)bank,
        .block_size = block_size,
        .blocks_per_request = per_request,
        .requests_in_flight = in_flight,
    };
    static Flash flash;
    flash = (Flash){
        .inactive = {BOARD_INACTIVE_BANK, BOARD_BANK_SIZE, FERROTA_CODE_WRITE_SIZE, FERROTA_CODE_ERASE_SIZE},
        .resume = {BOARD_RESUME, BOARD_RESUME_SIZE, FERROTA_WORK_WRITE_SIZE, FERROTA_WORK_ERASE_SIZE},
        .log = {BOARD_LOG, BOARD_LOG_SIZE, FERROTA_WORK_WRITE_SIZE, FERROTA_WORK_ERASE_SIZE},
        .record = s.bytes + SCRIPT_AT_RECORD,
    };
    FerrotaPlatform pf = {
        .user = &flash,
        .read = flash_read,
        .write = flash_write,
        .erase = flash_erase,
        .area_size = {BOARD_BANK_SIZE, BOARD_BANK_SIZE, BOARD_RESUME_SIZE, BOARD_LOG_SIZE,
                      2 * FERROTA_WORK_ERASE_SIZE /* the trust store: unmapped, see window() */},
    };
    Clock clock = {0, 0, 0};
    uint64_t start = (uint64_t)script_word(&s, SCRIPT_AT_START) |
                     (uint64_t)script_word(&s, SCRIPT_AT_START + 4) << 32;
    FerrotaAgent *agent;
    clock_start(&clock);
    st = ferrota_agent_init(agent_mem, sizeof agent_mem, &cfg, &pf, start, &agent);
    clock_stop(&clock);
    if (st != FERROTA_OK) {
        return fail("agent-init", st);
    }
    report_text("new ok");
    /* ferrota_agent_init builds the agent on its own stack before moving it into agent_mem:
     * its frame is the program's deepest. Measured apart, then the rest of the run alone. */
    stack_init = stack_high_water();
    report_num("stack-init=", stack_init);
    stack_paint();

    uint32_t calls = 0;
    ScriptCursor cur = script_entries(&s);
    ScriptEntry e;
    int more;
    while ((more = script_next(&cur, &e)) == 1) {
        clock_start(&clock);
        switch (e.kind) {
        case SCRIPT_CONNECTED:
            st = ferrota_agent_handle_connected(agent, e.at);
            break;
        case SCRIPT_MESSAGE:
            st = ferrota_agent_handle_message(agent, e.at, e.topic, e.topic_len, e.payload, e.payload_len);
            break;
        case SCRIPT_TIMEOUT:
        default:
            st = ferrota_agent_handle_timeout(agent, e.at);
            break;
        }
        clock_stop(&clock);
        if (st != FERROTA_OK) {
            return fail("handle", st);
        }
        calls++;
        if (!drain(agent)) {
            return false;
        }
    }
    if (more < 0) {
        report_text("error script-entry");
        return false;
    }
    FerrotaStats stats;
    st = ferrota_agent_stats(agent, &stats);
    if (st != FERROTA_OK) {
        return fail("stats", st);
    }
    st = ferrota_agent_deinit(agent);
    if (st != FERROTA_OK) {
        return fail("deinit", st);
    }
    FerrotaLogSnapshot snap;
    st = ferrota_marker_log_read(log_read, &flash.log, &snap);
    if (st != FERROTA_OK) {
        return fail("log", st);
    }
    Line l;
    line_init(&l);
    line_push(&l, "final");
    line_log(&l, &snap);
    line_report(&l);
    report_num("calls=", calls);
    report_num("blocks=", stats.blocks_accepted);
    report_num("agent-ticks=", clock.total);
    report_num("longest-call-ticks=", clock.longest);
    report_num("agent-mem=", (uint32_t)sizeof agent_mem);
    /* The deepest point since the second painting (the update itself). */
    report_num("stack-run=", stack_high_water());
    return true;
}

int main(void) {
    stack_paint();
    counter_start();
    report_num("calibrate-instructions=", 2 * CALIBRATION_LOOPS + 2);
    report_num("calibrate-ticks=", counter_calibrate(CALIBRATION_LOOPS));
    bool ok = run();
    /* The whole run's high-water: the deeper of the init's and the rest's (the second painting
     * erased the init's marks). */
    uint32_t rest = stack_high_water();
    report_num("stack=", rest > stack_init ? rest : stack_init);
    return ok ? 0 : 1;
}
