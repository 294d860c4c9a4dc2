/*
 * c-agent: Ferrota's OTA agent from C on Linux, as a user of the C API writes it.
 *
 * A board emulated with files: the code flash's two banks and the work-flash areas (marker
 * log, resume area, trust store) are files in one directory. At every "reset" the boot
 * manager's decision (ferrota_dbm_decide, the same Dual Bank Manager that runs on the chip)
 * chooses the bank to run and the CM0+ stage (ferrota_cm0p_check) verifies its CM7 regions, as
 * the image's CM0+ application does on the chip (a refusal is recorded and the board "resets"
 * again); the agent (ferrota_agent_*) is then created on that bank and talks
 * to `ferrota serve` over MQTT with mutual TLS through Debian's libmosquitto. When the agent
 * asks for a reset (after activating a new image, or after a rejected self-test) the program
 * waits for the broker's PUBACKs, disconnects, and "reboots": the boot manager decides again and
 * a new agent starts on the bank it chose. The self-test of a new image verifies the bank it
 * runs from.
 *
 * Exit status: 0 once a job SUCCEEDED; 1 bad arguments or setup (files, keys, TLS, the agent's
 * configuration); 2 the time limit; 3 the job FAILED or went away; 4 the boot manager halted
 * (no bank may run).
 *
 * Build (see the Makefile, docs/C-API.md): cc -std=c11 -Wall -Wextra -Werror
 *   -I crates/agent-ffi/include c-agent.c target/debug/libferrota_agent_ffi.a
 *   $(pkg-config --cflags --libs libmosquitto) -lpthread -ldl -lm
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "ferrota.h"

enum {
    EXIT_SETUP = 1,
    EXIT_TIMEOUT = 2,
    EXIT_JOB_FAILED = 3,
    EXIT_HALT = 4,
};

/* ---------------------------------------------------------------------------------------------
 * Output: one line per thing that happened, prefixed, flushed (a script reads it live).
 */
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("c-agent: ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

static void die(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("c-agent: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

/* The library panicked (a bug). On this host build the call then returns FERROTA_ERR_PANIC and
 * the program ends through its error path; on an MCU this hook is the only notice, and resets
 * the chip (docs/C-API.md). It must not call the library. */
static void on_ferrota_panic(void) {
    fputs("c-agent: error: the Ferrota library panicked\n", stderr);
}

/* Microseconds from any epoch: the agent never reads a clock, time is an argument. */
static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---------------------------------------------------------------------------------------------
 * The flash: one file per area, erased = 0xFF. Programming can only clear bits (as NOR flash),
 * erasing sets them; a file that does not exist is created erased (a fresh board).
 */
enum { FLASH_LOWER, FLASH_UPPER, FLASH_LOG, FLASH_RESUME, FLASH_TRUST, FLASH_FILES };

static const struct {
    const char *name;
    uint32_t size;
} FLASH_LAYOUT[FLASH_FILES] = {
    [FLASH_LOWER] = {"lower.bin", FERROTA_BANK_SIZE},        /* code flash, lower bank */
    [FLASH_UPPER] = {"upper.bin", FERROTA_BANK_SIZE},        /* code flash, upper bank */
    [FLASH_LOG] = {"marker-log.bin", FERROTA_LOG_SIZE},      /* work flash: 2 sectors */
    [FLASH_RESUME] = {"resume.bin", FERROTA_WORK_ERASE_SIZE}, /* work flash: 1 sector */
    [FLASH_TRUST] = {"trust.bin", 2 * FERROTA_WORK_ERASE_SIZE},
};

struct board {
    int fd[FLASH_FILES];
    uint8_t running_bank; /* 0 lower, 1 upper: what the boot manager chose at the last reset */
};

static int flash_read(const struct board *b, int file, uint32_t off, uint8_t *buf, size_t len) {
    if (off > FLASH_LAYOUT[file].size || len > FLASH_LAYOUT[file].size - off) return -1;
    while (len > 0) {
        ssize_t n = pread(b->fd[file], buf, len, (off_t)off);
        if (n <= 0) return -1;
        buf += n, off += (uint32_t)n, len -= (size_t)n;
    }
    return 0;
}

static int flash_write_raw(const struct board *b, int file, uint32_t off, const uint8_t *buf,
                           size_t len) {
    while (len > 0) {
        ssize_t n = pwrite(b->fd[file], buf, len, (off_t)off);
        if (n <= 0) return -1;
        buf += n, off += (uint32_t)n, len -= (size_t)n;
    }
    return 0;
}

static int flash_program(const struct board *b, int file, uint32_t off, const uint8_t *data,
                         size_t len) {
    uint8_t cell[256];
    while (len > 0) {
        size_t n = len < sizeof cell ? len : sizeof cell;
        if (flash_read(b, file, off, cell, n) != 0) return -1;
        for (size_t i = 0; i < n; i++) cell[i] &= data[i]; /* NOR: 1 -> 0 only */
        if (flash_write_raw(b, file, off, cell, n) != 0) return -1;
        data += n, off += (uint32_t)n, len -= n;
    }
    return 0;
}

static int flash_erase(const struct board *b, int file, uint32_t from, uint32_t to) {
    uint8_t erased[256];
    memset(erased, 0xFF, sizeof erased);
    if (from > to || to > FLASH_LAYOUT[file].size) return -1;
    for (uint32_t at = from; at < to;) {
        uint32_t n = to - at < sizeof erased ? to - at : (uint32_t)sizeof erased;
        if (flash_write_raw(b, file, at, erased, n) != 0) return -1;
        at += n;
    }
    return 0;
}

/* Opens (or creates erased) every area file of the board in `dir`. */
static void board_open(struct board *b, const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) die(EXIT_SETUP, "%s: %s", dir, strerror(errno));
    for (int i = 0; i < FLASH_FILES; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, FLASH_LAYOUT[i].name);
        b->fd[i] = open(path, O_RDWR | O_CREAT, 0644);
        if (b->fd[i] < 0) die(EXIT_SETUP, "%s: %s", path, strerror(errno));
        struct stat st;
        if (fstat(b->fd[i], &st) != 0) die(EXIT_SETUP, "%s: %s", path, strerror(errno));
        if ((uint64_t)st.st_size > FLASH_LAYOUT[i].size)
            die(EXIT_SETUP, "%s: %lld bytes, more than the area's %" PRIu32, path,
                (long long)st.st_size, FLASH_LAYOUT[i].size);
        /* A shorter file (a new board, or an image programmed without its tail) reads erased
         * beyond its end. */
        if (flash_erase(b, i, (uint32_t)st.st_size, FLASH_LAYOUT[i].size) != 0)
            die(EXIT_SETUP, "%s: cannot extend it: %s", path, strerror(errno));
    }
}

/* ---------------------------------------------------------------------------------------------
 * The boot manager's callbacks: both banks by number, the marker log.
 */
static int32_t dbm_read_bank(void *user, uint8_t bank, uint32_t off, uint8_t *buf, size_t len) {
    return flash_read(user, bank == 0 ? FLASH_LOWER : FLASH_UPPER, off, buf, len);
}
static int32_t log_read(void *user, uint32_t off, uint8_t *buf, size_t len) {
    return flash_read(user, FLASH_LOG, off, buf, len);
}
static int32_t log_write(void *user, uint32_t off, const uint8_t *data, size_t len) {
    return flash_program(user, FLASH_LOG, off, data, len);
}
static int32_t log_erase(void *user, uint32_t from, uint32_t to) {
    return flash_erase(user, FLASH_LOG, from, to);
}

/* ---------------------------------------------------------------------------------------------
 * The agent's callbacks: the agent names areas relative to the running bank.
 */
static int area_file(const struct board *b, FerrotaArea area) {
    switch (area) {
    case FERROTA_AREA_INACTIVE_BANK: return b->running_bank == 0 ? FLASH_UPPER : FLASH_LOWER;
    case FERROTA_AREA_ACTIVE_BANK: return b->running_bank == 0 ? FLASH_LOWER : FLASH_UPPER;
    case FERROTA_AREA_RESUME: return FLASH_RESUME;
    case FERROTA_AREA_MARKER_LOG: return FLASH_LOG;
    case FERROTA_AREA_TRUST: return FLASH_TRUST;
    }
    return -1;
}
static int32_t agent_read(void *user, FerrotaArea area, uint32_t off, uint8_t *buf, size_t len) {
    int f = area_file(user, area);
    return f < 0 ? -1 : flash_read(user, f, off, buf, len);
}
static int32_t agent_write(void *user, FerrotaArea area, uint32_t off, const uint8_t *data,
                           size_t len) {
    /* The running bank is never written (on the chip it is the code being executed). */
    int f = area_file(user, area);
    return f < 0 || area == FERROTA_AREA_ACTIVE_BANK ? -1 : flash_program(user, f, off, data, len);
}
static int32_t agent_erase(void *user, FerrotaArea area, uint32_t from, uint32_t to) {
    int f = area_file(user, area);
    return f < 0 || area == FERROTA_AREA_ACTIVE_BANK ? -1 : flash_erase(user, f, from, to);
}
/* The running bank, for ferrota_verify_bank (the self-test). */
static int32_t running_bank_read(void *user, uint32_t off, uint8_t *buf, size_t len) {
    return agent_read(user, FERROTA_AREA_ACTIVE_BANK, off, buf, len);
}

/* ---------------------------------------------------------------------------------------------
 * Keys: the SFlash boot-key object (`ferrota key public boot.pem --format sflash`) and the
 * pinned code-signing key, from its SubjectPublicKeyInfo PEM (`ferrota key public signer.crt`).
 */
static size_t read_file(const char *path, uint8_t *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) die(EXIT_SETUP, "%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, cap, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    if (more) die(EXIT_SETUP, "%s: longer than %zu bytes", path, cap);
    return n;
}

static int b64(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* The 65-byte SEC1 point of a P-256 public key in SPKI PEM. */
static void load_code_signing_key(const char *path, uint8_t out[65]) {
    /* DER of SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 }, BIT STRING of 66 bytes. */
    static const uint8_t prefix[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                       0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                       0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
    char pem[2048];
    size_t n = read_file(path, (uint8_t *)pem, sizeof pem - 1);
    pem[n] = '\0';
    const char *begin = strstr(pem, "-----BEGIN PUBLIC KEY-----");
    const char *end = begin ? strstr(begin, "-----END PUBLIC KEY-----") : NULL;
    if (!end) die(EXIT_SETUP, "%s: no PUBLIC KEY PEM block", path);
    uint8_t der[128];
    size_t len = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = begin + strlen("-----BEGIN PUBLIC KEY-----"); p < end; p++) {
        int v = b64((unsigned char)*p);
        if (v < 0) continue; /* line breaks; '=' padding ends the data */
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len == sizeof der) die(EXIT_SETUP, "%s: key too long", path);
            der[len++] = (uint8_t)(acc >> bits);
        }
    }
    if (len != sizeof prefix + 65 || memcmp(der, prefix, sizeof prefix) != 0 ||
        der[sizeof prefix] != 0x04)
        die(EXIT_SETUP, "%s: not an uncompressed ECDSA P-256 public key", path);
    memcpy(out, der + sizeof prefix, 65);
}

/* ---------------------------------------------------------------------------------------------
 * Options.
 */
struct options {
    const char *flash_dir, *thing, *host, *ca, *cert, *key, *code_signing_key, *boot_key,
        *hardware;
    int port;
    unsigned timeout_s;
    bool boot_only;
};

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s --flash DIR --boot-key FILE [--hardware ID] [--boot-only]\n"
            "          --thing NAME --host HOST --port PORT --ca FILE --cert FILE --key FILE\n"
            "          --code-signing-key FILE [--timeout SECONDS]\n"
            "  --flash DIR              the board's flash files (created erased when missing)\n"
            "  --boot-key FILE          the SFlash boot-key object (ferrota key public --format "
            "sflash)\n"
            "  --hardware ID            this board's hardware id (images for others are "
            "refused)\n"
            "  --boot-only              run the boot manager once, print its decision, exit\n"
            "  --thing, --host, --port  MQTT client id and server (ferrota serve)\n"
            "  --ca, --cert, --key      mutual TLS: the fleet CA, this thing's certificate and "
            "key\n"
            "  --code-signing-key FILE  the pinned code-signing public key (SPKI PEM)\n"
            "  --timeout SECONDS        give up after this long (default 120)\n",
            argv0);
    exit(EXIT_SETUP);
}

static void parse_options(int argc, char **argv, struct options *o) {
    static const struct option longopts[] = {
        {"flash", required_argument, NULL, 'f'},  {"boot-key", required_argument, NULL, 'b'},
        {"hardware", required_argument, NULL, 'w'}, {"boot-only", no_argument, NULL, 'o'},
        {"thing", required_argument, NULL, 't'},  {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},   {"ca", required_argument, NULL, 'a'},
        {"cert", required_argument, NULL, 'c'},   {"key", required_argument, NULL, 'k'},
        {"code-signing-key", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0},
    };
    *o = (struct options){.port = 0, .timeout_s = 120};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o->flash_dir = optarg; break;
        case 'b': o->boot_key = optarg; break;
        case 'w': o->hardware = optarg; break;
        case 'o': o->boot_only = true; break;
        case 't': o->thing = optarg; break;
        case 'h': o->host = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'a': o->ca = optarg; break;
        case 'c': o->cert = optarg; break;
        case 'k': o->key = optarg; break;
        case 's': o->code_signing_key = optarg; break;
        case 'T': o->timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
        default: usage(argv[0]);
        }
    }
    if (optind != argc || !o->flash_dir || !o->boot_key) usage(argv[0]);
    if (!o->boot_only && (!o->thing || !o->host || o->port <= 0 || o->port > 65535 || !o->ca ||
                          !o->cert || !o->key || !o->code_signing_key || o->timeout_s == 0))
        usage(argv[0]);
}

/* ---------------------------------------------------------------------------------------------
 * The reset: the boot manager decides which bank runs.
 */
static const char *reason_name(FerrotaBootReason r) {
    switch (r) {
    case FERROTA_BOOT_CURRENT: return "current";
    case FERROTA_BOOT_TRIAL: return "trial";
    case FERROTA_BOOT_REVERTED: return "reverted";
    case FERROTA_BOOT_FELL_BACK: return "fell-back";
    case FERROTA_BOOT_USER1: return "user1";
    case FERROTA_BOOT_HALT: return "halt";
    }
    return "?";
}

static const char *bank_name(uint8_t bank) { return bank == 0 ? "lower" : "upper"; }

static void print_fault(uint8_t bank, const FerrotaBankFault *f) {
    static const char *const kinds[] = {"none", "image", "below-floor", "wrong-hardware",
                                         "marked-bad", "locked"};
    if (f->kind == FERROTA_FAULT_NONE) return;
    say("%s bank refused: %s (image fault %d, region %u, value 0x%08" PRIx32 ")",
        bank_name(bank), (unsigned)f->kind < 6 ? kinds[f->kind] : "?", (int)f->image_fault,
        f->region, f->value);
}

static const char *const REGION_NAMES[] = {"bank", "CM0+", "CM7_0", "CM7_1"};

/* A reset, as the chip goes through it: the boot manager (the DBM) chooses a bank; after the
 * switch to dual-bank mode the image's own CM0+ application verifies both CM7 regions of that
 * bank before it starts the CM7 cores (ferrota_cm0p_check). A refused region is recorded in the
 * marker log (the image marked bad, or its trial reverted) and the chip resets again, so the
 * boot manager falls back. Returns the decision of the boot that starts the cores, or exits
 * with EXIT_HALT. */
static FerrotaDbmDecision reset_board(struct board *b, const FerrotaBootKey *key,
                                      const char *hardware) {
    FerrotaDbmConfig cfg = {
        .boot_key = key,
        .hardware_id = (const uint8_t *)hardware,
        .hardware_id_len = hardware ? strlen(hardware) : 0,
        .efuse_floor = 0, /* a board without the eFuse counter */
        .user1 = 0,
    };
    FerrotaDbmPlatform pf = {
        .user = b,
        .read_bank = dbm_read_bank,
        .bank_size = FERROTA_BANK_SIZE,
        .read_log = log_read,
        .write_log = log_write,
        .erase_log = log_erase,
    };
    /* Each CM0+ refusal changes the log (a bad mark, a lock): the boot manager cannot choose
     * the same image again, so this ends; the bound only guards against a bug. */
    for (int resets = 0; resets < 4; resets++) {
        FerrotaDbmDecision d;
        FerrotaStatus st = ferrota_dbm_decide(&cfg, &pf, &d);
        if (st == FERROTA_ERR_HALT) { /* both banks refused: d.faults says why */
            for (uint8_t bank = 0; bank < 2; bank++) print_fault(bank, &d.faults[bank]);
            say("boot halt: no bank may run");
            exit(EXIT_HALT);
        }
        if (st != FERROTA_OK) die(EXIT_SETUP, "boot manager: %s", ferrota_strerror(st));
        for (uint8_t bank = 0; bank < 2; bank++) print_fault(bank, &d.faults[bank]);
        char trial[32] = "";
        if (d.trial) snprintf(trial, sizeof trial, " %u/%u", d.attempt, d.budget);
        say("boot bank=%s reason=%s%s version=%u.%u.%u counter=%" PRIu32 " floor=%" PRIu32
            " recorded=%s",
            bank_name(d.bank), reason_name(d.reason), trial, d.record.major, d.record.minor,
            d.record.build, d.record.security_counter, d.floor, d.recorded ? "yes" : "no");

        /* The CM0+ stage, from the bank just mapped. */
        FerrotaCm0pOutcome c;
        st = ferrota_cm0p_check(key, d.bank, &pf, &c);
        if (st != FERROTA_OK) die(EXIT_SETUP, "CM0+ stage: %s", ferrota_strerror(st));
        FerrotaLogSnapshot log;
        if (ferrota_marker_log_read(log_read, b, &log) == FERROTA_OK && log.present)
            say("marker log: newest record %" PRIu32 " at %" PRIu32 ".%" PRIu32, log.seq,
                log.sector, log.slot);
        if (c.start) {
            say("cm0p: CM7 regions verified; starting CM7_0%s", c.start_cm7_1 ? " and CM7_1" : "");
            b->running_bank = d.bank;
            return d;
        }
        say("cm0p: %s region of the %s bank refused (image fault %d at 0x%08" PRIx32 "): %s; reset",
            c.fault.region < 4 ? REGION_NAMES[c.fault.region] : "?", bank_name(d.bank),
            (int)c.fault.image_fault, c.fault.value,
            c.reverted ? "its trial is reverted" : "the image is marked bad");
    }
    die(EXIT_SETUP, "the CM0+ stage refused 4 boots in a row");
    return (FerrotaDbmDecision){0}; /* not reached */
}

/* ---------------------------------------------------------------------------------------------
 * The application: the agent, the MQTT client, and what the agent asks for.
 */
/* QoS 1 publishes the example waits for before a reset: the agent's job-status updates and
 * stream requests; more unacknowledged at once than this is a broker that stopped answering. */
#define MAX_INFLIGHT 1024

/* Every agent call but the polls: an error here is a bug in this program (a bad handle or
 * argument), never the network's or the server's doing, so it ends the run. */
#define CHECK(call)                                                                                \
    do {                                                                                           \
        FerrotaStatus check_st_ = (call);                                                          \
        if (check_st_ != FERROTA_OK) die(EXIT_SETUP, "%s: %s", #call, ferrota_strerror(check_st_)); \
    } while (0)

struct app {
    const struct options *opt;
    struct board *board;
    const FerrotaBootKey *boot_key;
    FerrotaDbmDecision boot;     /* this run's boot decision */
    FerrotaAgent *agent;
    struct mosquitto *mosq;
    bool connected;
    int inflight[MAX_INFLIGHT]; /* message ids of QoS 1 publishes not yet acknowledged */
    int n_inflight;
    bool reset_requested;
    bool self_test_due; /* answered once the events are drained: */
    bool app_job_due;   /* calls into the agent come after the drain */
    enum { JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED } job;
    uint64_t deadline_us;
    bool has_deadline;
};

/* Memory the agent lives in: FERROTA_AGENT_SIZE bytes, 8-byte aligned (FERROTA_AGENT_ALIGN). */
static uint64_t agent_mem[FERROTA_AGENT_SIZE / sizeof(uint64_t)];
static uint8_t tx[FERROTA_TRANSMIT_BUF_MIN]; /* every payload the agent writes fits */

/* 1. Every MQTT operation the agent queued, in order. */
static void drain_transmits(struct app *a) {
    FerrotaTransmit t;
    FerrotaStatus st;
    while ((st = ferrota_agent_poll_transmit(a->agent, tx, sizeof tx, &t)) == FERROTA_OK) {
        const char *topic = (const char *)t.topic; /* NUL-terminated */
        int rc = MOSQ_ERR_SUCCESS, mid = 0;
        switch (t.kind) {
        case FERROTA_SUBSCRIBE: rc = mosquitto_subscribe(a->mosq, NULL, topic, t.qos); break;
        case FERROTA_UNSUBSCRIBE: rc = mosquitto_unsubscribe(a->mosq, NULL, topic); break;
        case FERROTA_PUBLISH:
            rc = mosquitto_publish(a->mosq, &mid, topic, (int)t.payload_len, tx, t.qos, false);
            if (rc == MOSQ_ERR_SUCCESS && t.qos == 1) {
                if (a->n_inflight == MAX_INFLIGHT)
                    die(EXIT_SETUP, "mqtt: %d publishes not acknowledged", MAX_INFLIGHT);
                a->inflight[a->n_inflight++] = mid;
            }
            break;
        }
        /* A lost operation is not fatal: the agent asks again on its own timers (and while
         * disconnected it expects nothing to go out). */
        if (rc != MOSQ_ERR_SUCCESS && a->connected)
            say("mqtt: %s: %s", topic, mosquitto_strerror(rc));
    }
    if (st != FERROTA_NONE) die(EXIT_SETUP, "poll_transmit: %s", ferrota_strerror(st));
}

static const char *fail_kind(uint64_t k) {
    switch (k) {
    case FERROTA_FAIL_CODES: return "codes";
    case FERROTA_FAIL_REJECTED: return "rejected";
    case FERROTA_FAIL_ABORTED: return "aborted";
    default: return "other";
    }
}

/* 2. Every event; returns true when it called into the agent (then drain again). */
static bool drain_events(struct app *a) {
    bool again = false;
    FerrotaEvent e;
    while (ferrota_agent_poll_event(a->agent, &e) == FERROTA_OK) {
        switch (e.kind) {
        case FERROTA_EVENT_OTHER_FILE_JOB:
        case FERROTA_EVENT_CUSTOM_JOB:
            say("job for the application (kind %d)", (int)e.kind);
            a->app_job_due = true;
            break;
        case FERROTA_EVENT_FILE_CHOSEN:
            say("file chosen: %" PRIu64 " bytes, encoding %" PRIu32 " (0 image, 1 packed, 2 delta)",
                e.a, e.b);
            break;
        case FERROTA_EVENT_DOWNLOAD_STARTED:
            say("download started: %" PRIu64 " blocks (%" PRIu32 " kept from before a reset)", e.a,
                e.b);
            break;
        case FERROTA_EVENT_VERSION_ACCEPTED:
            say("version %" PRIu64 ".%" PRIu64 ".%" PRIu64 " accepted", e.a >> 24, (e.a >> 16) & 0xFF,
                e.a & 0xFFFF);
            break;
        case FERROTA_EVENT_PLAIN_SIGNATURE_ACCEPTED:
            say("warning: image accepted on the code-signing signature alone (no signed metadata)");
            break;
        case FERROTA_EVENT_ACTIVATED: say("image verified and activated (trial)"); break;
        case FERROTA_EVENT_RESET_REQUESTED:
            say("reset requested");
            a->reset_requested = true;
            break;
        case FERROTA_EVENT_START_SELF_TEST: a->self_test_due = true; break;
        case FERROTA_EVENT_CONFIRMED: say("image confirmed; floor %" PRIu64, e.a); break;
        case FERROTA_EVENT_REJECTED: say("image rejected: the next boot reverts"); break;
        case FERROTA_EVENT_JOB_SUCCEEDED:
            say("job SUCCEEDED");
            a->job = JOB_SUCCEEDED;
            break;
        case FERROTA_EVENT_JOB_FAILED:
            say("job FAILED (%s: 0x%08" PRIx32 " 0x%08" PRIx32 ")", fail_kind(e.a), e.b, e.c);
            a->job = JOB_FAILED;
            break;
        case FERROTA_EVENT_JOB_CANCELLED:
            say("job cancelled");
            a->job = JOB_FAILED;
            break;
        case FERROTA_EVENT_STREAM_REJECTED:
            say("stream request rejected (code %" PRIu64 ")", e.a);
            break;
        case FERROTA_EVENT_FLASH_FAULT: say("flash fault (operation %" PRIu64 ")", e.a); break;
        default: say("event %d (%" PRIu64 ", %" PRIu32 ", %" PRIu32 ")", (int)e.kind, e.a, e.b, e.c);
        }
    }
    if (a->app_job_due) {
        /* Not for this application: declined, the AWS agent's answer to an unclaimed job
         * (ferrota_agent_fail_app_job would report the application's own failure codes). */
        a->app_job_due = false;
        say("declined");
        CHECK(ferrota_agent_finish_app_job(a->agent, now_us(), FERROTA_APP_DECLINED));
        again = true;
    }
    if (a->self_test_due) {
        /* The self-test of this example: the running bank verifies completely (every region's
         * boot signature) and carries the version the boot manager chose. */
        a->self_test_due = false;
        FerrotaVersionRecord rec;
        FerrotaStatus st = ferrota_verify_bank(running_bank_read, a->board, FERROTA_BANK_SIZE,
                                               a->boot_key, &rec);
        bool pass = st == FERROTA_OK && rec.version == a->boot.record.version;
        say("self-test %s (bank %s: %s)", pass ? "pass" : "FAIL", bank_name(a->board->running_bank),
            ferrota_strerror(st));
        CHECK(ferrota_agent_self_test_result(a->agent, now_us(), pass));
        again = true;
    }
    return again;
}

/* After every ferrota_agent_handle_* call: transmits, events, then one timer (docs/C-API.md). */
static void service(struct app *a) {
    do drain_transmits(a);
    while (drain_events(a));
    uint64_t at;
    a->has_deadline = ferrota_agent_poll_timeout(a->agent, &at) == FERROTA_OK;
    a->deadline_us = at;
}

static void on_connect(struct mosquitto *m, void *obj, int rc) {
    struct app *a = obj;
    (void)m;
    if (rc != 0) die(EXIT_SETUP, "mqtt: connection refused: %s", mosquitto_connack_string(rc));
    a->connected = true;
    say("mqtt connected to %s:%d as %s (mutual TLS)", a->opt->host, a->opt->port, a->opt->thing);
    CHECK(ferrota_agent_handle_connected(a->agent, now_us()));
    service(a);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc) {
    struct app *a = obj;
    (void)m;
    if (!a->connected) return;
    a->connected = false;
    if (rc != 0) say("mqtt: connection lost (%s)", mosquitto_strerror(rc));
    CHECK(ferrota_agent_handle_disconnected(a->agent, now_us()));
    service(a);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg) {
    struct app *a = obj;
    (void)m;
    FerrotaStatus st = ferrota_agent_handle_message(a->agent, now_us(), (const uint8_t *)msg->topic,
                                                    strlen(msg->topic), msg->payload,
                                                    (size_t)msg->payloadlen);
    if (st != FERROTA_OK) say("message on %s: %s", msg->topic, ferrota_strerror(st));
    service(a);
}

static void on_publish(struct mosquitto *m, void *obj, int mid) {
    struct app *a = obj;
    (void)m;
    for (int i = 0; i < a->n_inflight; i++) {
        if (a->inflight[i] == mid) {
            a->inflight[i] = a->inflight[--a->n_inflight];
            break;
        }
    }
}

/* Runs mosquitto until `done(a)` or the deadline `end_us`; false on the deadline. */
static bool pump(struct app *a, uint64_t end_us, bool (*done)(const struct app *)) {
    while (!done(a)) {
        uint64_t now = now_us();
        if (now >= end_us) return false;
        if (a->agent && a->has_deadline && now >= a->deadline_us) {
            CHECK(ferrota_agent_handle_timeout(a->agent, now));
            service(a);
            continue;
        }
        uint64_t wait = 100000; /* at most 100 ms, so the deadlines above are kept */
        if (a->agent && a->has_deadline && a->deadline_us - now < wait) wait = a->deadline_us - now;
        int rc = mosquitto_loop(a->mosq, (int)(wait / 1000) + 1, 1);
        if (rc == MOSQ_ERR_SUCCESS) continue;
        /* A TLS failure (the server's certificate is not the CA's) is not retried. */
        if (rc != MOSQ_ERR_CONN_LOST && rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_ERRNO &&
            rc != MOSQ_ERR_PROTOCOL)
            die(EXIT_SETUP, "mqtt: %s", mosquitto_strerror(rc));
        /* The broker went away: try again in a second (the agent resumes on connect). */
        sleep(1);
        if (a->reset_requested || a->job != JOB_RUNNING) return true; /* nothing to send */
        rc = mosquitto_reconnect(a->mosq);
        if (rc != MOSQ_ERR_SUCCESS)
            say("mqtt: reconnect: %s",
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    }
    return true;
}

static bool acked(const struct app *a) { return a->n_inflight == 0 || !a->connected; }
static bool disconnected(const struct app *a) { return !a->connected; }
static bool something_to_do(const struct app *a) {
    return a->reset_requested || a->job != JOB_RUNNING;
}

/* One boot of the board: the agent on the chosen bank, until a reset or the job's end. */
static int run_once(struct app *a, uint64_t end_us) {
    static uint8_t code_key[65];
    load_code_signing_key(a->opt->code_signing_key, code_key);
    FerrotaConfig cfg = {
        .thing_name = (const uint8_t *)a->opt->thing,
        .thing_name_len = strlen(a->opt->thing),
        .boot_key = a->boot_key,
        .code_signing_key = code_key,
        .code_signing_key_len = sizeof code_key,
        .hardware_id = (const uint8_t *)a->opt->hardware,
        .hardware_id_len = a->opt->hardware ? strlen(a->opt->hardware) : 0,
        .trust_anchor = NULL,
        .require_signed_metadata = 0,
        .running_bank = a->board->running_bank, /* what the boot manager chose */
        .block_size = 0,
    };
    FerrotaPlatform pf = {
        .user = a->board,
        .read = agent_read,
        .write = agent_write,
        .erase = agent_erase,
        .area_size =
            {
                [FERROTA_AREA_INACTIVE_BANK] = FERROTA_BANK_SIZE,
                [FERROTA_AREA_ACTIVE_BANK] = FERROTA_BANK_SIZE,
                [FERROTA_AREA_RESUME] = FLASH_LAYOUT[FLASH_RESUME].size,
                [FERROTA_AREA_MARKER_LOG] = FLASH_LAYOUT[FLASH_LOG].size,
                [FERROTA_AREA_TRUST] = FLASH_LAYOUT[FLASH_TRUST].size,
            },
    };
    FerrotaStatus st = ferrota_agent_init(agent_mem, sizeof agent_mem, &cfg, &pf, now_us(),
                                          &a->agent);
    if (st != FERROTA_OK) die(EXIT_SETUP, "ferrota_agent_init: %s", ferrota_strerror(st));
    say("agent started on the %s bank%s", bank_name(a->board->running_bank),
        a->boot.trial ? " (image on trial: waiting for the job's self-test)" : "");

    /* MQTT 3.1.1 with a clean session (the agent subscribes again on every connect). */
    a->mosq = mosquitto_new(a->opt->thing, true, a);
    if (!a->mosq) die(EXIT_SETUP, "mosquitto_new failed");
    mosquitto_int_option(a->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(a->mosq, on_connect);
    mosquitto_disconnect_callback_set(a->mosq, on_disconnect);
    mosquitto_message_callback_set(a->mosq, on_message);
    mosquitto_publish_callback_set(a->mosq, on_publish);
    /* Mutual TLS, spelled out rather than left to libmosquitto's defaults: the server's
     * certificate is verified against the CA (and its name against the host), TLS 1.2 at
     * least, and the client presents its device certificate. */
    int rc = mosquitto_tls_set(a->mosq, a->opt->ca, NULL, a->opt->cert, a->opt->key, NULL);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_opts_set(a->mosq, 1 /* SSL_VERIFY_PEER */,
                                                            "tlsv1.2", NULL);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_insecure_set(a->mosq, false);
    if (rc != MOSQ_ERR_SUCCESS) die(EXIT_SETUP, "TLS setup: %s", mosquitto_strerror(rc));
    rc = mosquitto_connect(a->mosq, a->opt->host, a->opt->port, 60);
    if (rc != MOSQ_ERR_SUCCESS)
        die(EXIT_SETUP, "connect to %s:%d: %s", a->opt->host, a->opt->port,
            rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));

    bool in_time = pump(a, end_us, something_to_do), unacked = false;
    /* otaPal_ResetDevice's duty, and a clean exit's: the QoS 1 publishes (the job's status)
     * must have reached the server before the connection goes. */
    if (in_time) {
        uint64_t flush_end = now_us() + 10000000u;
        if (!pump(a, flush_end < end_us ? flush_end : end_us, acked)) {
            /* The job's last status may not have reached the server: not a clean end. */
            say("%d publish(es) not acknowledged in time", a->n_inflight);
            unacked = true;
        }
    }
    mosquitto_disconnect(a->mosq);
    pump(a, now_us() + 2000000u, disconnected);
    a->connected = false;
    mosquitto_destroy(a->mosq);
    a->mosq = NULL;
    CHECK(ferrota_agent_deinit(a->agent));
    a->agent = NULL;
    a->n_inflight = 0;
    if (!in_time) {
        say("time limit of %u s reached", a->opt->timeout_s);
        return EXIT_TIMEOUT;
    }
    if (unacked) return EXIT_TIMEOUT;
    return 0;
}

int main(int argc, char **argv) {
    struct options opt;
    parse_options(argc, argv, &opt);
    ferrota_set_panic_hook(on_ferrota_panic);

    static struct board board;
    board_open(&board, opt.flash_dir);

    /* The boot key, as the boot manager reads it from SFlash. It must outlive every agent. */
    static FerrotaBootKey boot_key;
    uint8_t obj[2048];
    size_t obj_len = read_file(opt.boot_key, obj, sizeof obj);
    FerrotaStatus st = ferrota_boot_key_parse(obj, obj_len, &boot_key);
    if (st != FERROTA_OK) die(EXIT_SETUP, "%s: %s", opt.boot_key, ferrota_strerror(st));

    struct app a = {.opt = &opt, .board = &board, .boot_key = &boot_key};
    a.boot = reset_board(&board, &boot_key, opt.hardware); /* power on */
    if (opt.boot_only) return EXIT_SUCCESS;

    mosquitto_lib_init();
    uint64_t end = now_us() + (uint64_t)opt.timeout_s * 1000000u;
    for (int boots = 1;; boots++) {
        int rc = run_once(&a, end);
        if (rc != 0) return rc;
        if (a.reset_requested) {
            /* NVIC_SystemReset() on the chip: the boot manager runs again. */
            if (boots == 8) die(EXIT_SETUP, "more than 8 resets: giving up");
            say("reset");
            a.reset_requested = false;
            a.boot = reset_board(&board, &boot_key, opt.hardware);
        }
        if (a.job != JOB_RUNNING) break;
    }
    mosquitto_lib_cleanup();
    return a.job == JOB_SUCCEEDED ? EXIT_SUCCESS : EXIT_JOB_FAILED;
}
