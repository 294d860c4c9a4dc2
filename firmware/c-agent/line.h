/* The report lines, byte for byte as the Rust replay writes them
 * (crates/qemu-harness/src/report.rs `Line`, agent_script.rs `transmit_line` / `event_line`,
 * report.rs `log`): the host compares them with its own agent's lines. */
#ifndef FERROTA_C_AGENT_LINE_H
#define FERROTA_C_AGENT_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferrota.h"

/* Bytes of a line's buffer, as report::Line: text past LINE_CAP - 1 bytes is dropped and a
 * finished line then ends in '~'. */
#define LINE_CAP 320u

typedef struct Line {
    char buf[LINE_CAP];
    uint32_t len;
    bool cut;
} Line;

void line_init(Line *l);
void line_push(Line *l, const char *s);
void line_push_bytes(Line *l, const uint8_t *p, size_t n);
/* A decimal number. */
void line_num(Line *l, uint32_t v);
/* "0x" and eight lowercase hex digits. */
void line_hex32(Line *l, uint32_t v);
/* Bytes as lowercase hex. */
void line_hex_bytes(Line *l, const uint8_t *p, size_t n);
/* A cut line gets its final '~'. */
void line_finish(Line *l);
/* Sends the line over semihosting. */
void line_report(const Line *l);

/* `sub q<qos> <topic>`, `unsub <topic>`, `pub q<qos> <topic> <payload>` (the payload as text
 * when it is UTF-8 and starts with '{', else `hex:` and its bytes). */
void line_transmit(Line *l, const FerrotaTransmit *t, const uint8_t *payload);
/* `event <name> [numbers]`. */
void line_event(Line *l, const FerrotaEvent *e);
/* ` log=<seq>@<sector>.<slot>:<record hex>`, or ` log=-` for an empty log. */
void line_log(Line *l, const FerrotaLogSnapshot *snap);

/* Whether `p` is valid UTF-8 (as Rust's core::str::from_utf8: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
bool utf8_valid(const uint8_t *p, size_t n);

#endif
