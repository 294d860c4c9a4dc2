/* The recorded update's layout (script.h). Every offset and length read from the script is
 * checked against its total before use: the script is input from outside the program. */
#include "script.h"

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bool script_parse(const uint8_t *mem, uint32_t mem_len, Script *out) {
    if (mem_len < SCRIPT_HEADER || le32(mem) != SCRIPT_MAGIC) {
        return false;
    }
    uint32_t total = le32(mem + SCRIPT_AT_TOTAL);
    if (total < SCRIPT_HEADER || total > mem_len) {
        return false;
    }
    out->bytes = mem;
    out->total = total;
    out->entries = le32(mem + SCRIPT_AT_ENTRIES);
    return true;
}

uint32_t script_word(const Script *s, uint32_t at) {
    return at <= SCRIPT_HEADER - 4 ? le32(s->bytes + at) : 0;
}

size_t script_zstr_len(const Script *s, uint32_t at, size_t cap) {
    size_t n = 0;
    while (n < cap && at + n < SCRIPT_HEADER && s->bytes[at + n] != 0) {
        n++;
    }
    return n;
}

ScriptCursor script_entries(const Script *s) {
    ScriptCursor c = {s, SCRIPT_HEADER, s->entries};
    return c;
}

int script_next(ScriptCursor *c, ScriptEntry *out) {
    if (c->left == 0) {
        return 0;
    }
    const Script *s = c->script;
    uint32_t p = c->pos;
    /* The five words, then topic and payload, all inside `total` (no overflow: p <= total). */
    if (s->total - p < 20) {
        return -1;
    }
    const uint8_t *b = s->bytes + p;
    uint32_t kind = le32(b);
    if (kind < SCRIPT_CONNECTED || kind > SCRIPT_TIMEOUT) {
        return -1;
    }
    uint32_t tl = le32(b + 12);
    uint32_t pl = le32(b + 16);
    uint32_t room = s->total - p - 20;
    if (tl > room || pl > room - tl) {
        return -1;
    }
    out->kind = (enum ScriptKind)kind;
    out->at = (uint64_t)le32(b + 4) | (uint64_t)le32(b + 8) << 32;
    out->topic = b + 20;
    out->topic_len = tl;
    out->payload = b + 20 + tl;
    out->payload_len = pl;
    /* The next entry starts at the next multiple of 4 (it may be the end). */
    uint32_t end = p + 20 + tl + pl;
    c->pos = end + ((4 - (end & 3)) & 3);
    if (c->pos > s->total) {
        c->pos = s->total;
    }
    c->left--;
    return 1;
}
