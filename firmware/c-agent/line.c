/* The report lines (line.h). */
#include "line.h"

#include "board.h"

static const char HEX[16] = "0123456789abcdef";

void line_init(Line *l) {
    l->len = 0;
    l->cut = false;
}

static void byte(Line *l, char b) {
    if (l->len < LINE_CAP - 1) {
        l->buf[l->len++] = b;
    } else {
        l->cut = true;
    }
}

void line_push(Line *l, const char *s) {
    while (*s) {
        byte(l, *s++);
    }
}

void line_push_bytes(Line *l, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        byte(l, (char)p[i]);
    }
}

void line_num(Line *l, uint32_t v) {
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        byte(l, digits[--n]);
    }
}

void line_hex32(Line *l, uint32_t v) {
    line_push(l, "0x");
    for (int i = 7; i >= 0; i--) {
        byte(l, HEX[(v >> (i * 4)) & 0xF]);
    }
}

void line_hex_bytes(Line *l, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        byte(l, HEX[p[i] >> 4]);
        byte(l, HEX[p[i] & 0xF]);
    }
}

void line_finish(Line *l) {
    if (l->cut) {
        l->buf[l->len++] = '~';
        l->cut = false;
    }
}

void line_report(const Line *l) { board_report(l->buf, l->len); }

bool utf8_valid(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t more;
        uint8_t lo = 0x80, hi = 0xBF; /* the range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0) {
                lo = 0xA0; /* no overlong forms */
            } else if (c == 0xED) {
                hi = 0x9F; /* no surrogates */
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0) {
                lo = 0x90; /* no overlong forms */
            } else if (c == 0xF4) {
                hi = 0x8F; /* nothing above U+10FFFF */
            }
        } else {
            return false;
        }
        if (n - i <= more) {
            return false;
        }
        if (p[i + 1] < lo || p[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= more; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += more + 1;
    }
    return true;
}

void line_transmit(Line *l, const FerrotaTransmit *t, const uint8_t *payload) {
    switch (t->kind) {
    case FERROTA_SUBSCRIBE:
        line_push(l, "sub q");
        line_num(l, t->qos);
        line_push(l, " ");
        line_push_bytes(l, t->topic, t->topic_len);
        break;
    case FERROTA_UNSUBSCRIBE:
        line_push(l, "unsub ");
        line_push_bytes(l, t->topic, t->topic_len);
        break;
    case FERROTA_PUBLISH:
    default:
        line_push(l, "pub q");
        line_num(l, t->qos);
        line_push(l, " ");
        line_push_bytes(l, t->topic, t->topic_len);
        line_push(l, " ");
        if (t->payload_len > 0 && payload[0] == '{' && utf8_valid(payload, t->payload_len)) {
            line_push_bytes(l, payload, t->payload_len);
        } else {
            line_push(l, "hex:");
            line_hex_bytes(l, payload, t->payload_len);
        }
        break;
    }
    line_finish(l);
}

void line_event(Line *l, const FerrotaEvent *e) {
    line_push(l, "event ");
    /* The values the lines print are 32-bit in the agent (widened to 64 in FerrotaEvent.a). */
    uint32_t a = (uint32_t)e->a;
    switch (e->kind) {
    case FERROTA_EVENT_OTHER_FILE_JOB:
        line_push(l, "other-file-job ");
        line_num(l, a);
        break;
    case FERROTA_EVENT_CUSTOM_JOB:
        line_push(l, "custom-job");
        break;
    case FERROTA_EVENT_DOWNLOAD_STARTED:
        line_push(l, "download-started ");
        line_num(l, a);
        line_push(l, "/");
        line_num(l, e->b);
        break;
    case FERROTA_EVENT_VERSION_ACCEPTED:
        line_push(l, "version-accepted ");
        line_hex32(l, a);
        break;
    case FERROTA_EVENT_JOB_FAILED:
        line_push(l, "job-failed");
        break;
    case FERROTA_EVENT_JOB_SUCCEEDED:
        line_push(l, "job-succeeded");
        break;
    case FERROTA_EVENT_JOB_CANCELLED:
        line_push(l, "job-cancelled");
        break;
    case FERROTA_EVENT_ACTIVATED:
        line_push(l, "activated");
        break;
    case FERROTA_EVENT_RESET_REQUESTED:
        line_push(l, "reset-requested");
        break;
    case FERROTA_EVENT_START_SELF_TEST:
        line_push(l, "start-self-test");
        break;
    case FERROTA_EVENT_CONFIRMED:
        line_push(l, "confirmed ");
        line_num(l, a);
        break;
    case FERROTA_EVENT_REJECTED:
        line_push(l, "rejected");
        break;
    case FERROTA_EVENT_STREAM_REJECTED:
        line_push(l, "stream-rejected");
        break;
    case FERROTA_EVENT_FLASH_FAULT:
        line_push(l, "flash-fault ");
        line_num(l, a);
        break;
    default:
        /* The events agent_script::event_line does not name either (file chosen, the signed
         * metadata's events, ...). */
        line_push(l, "other");
        break;
    }
}

void line_log(Line *l, const FerrotaLogSnapshot *snap) {
    line_push(l, " log=");
    if (!snap->present) {
        line_push(l, "-");
        return;
    }
    line_num(l, snap->seq);
    line_push(l, "@");
    line_num(l, snap->sector);
    line_push(l, ".");
    line_num(l, snap->slot);
    line_push(l, ":");
    line_hex_bytes(l, snap->record, sizeof snap->record);
}
