/* Counter, in C: the same program as counter.wat (docs/programs.md "From C").
 *   INVOKE P2=00: increment, answer the new value (4 bytes, big-endian) and 9000
 *   INVOKE P2=01: answer the current value without changing it
 *   6A84 the container's quota is full, 6A86 any other P2 */
#include "tenantcard.h"

static const uint8_t NAME[] = {'c', 'o', 'u', 'n', 't'};
static uint8_t buf[4];

static uint32_t load_be(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

TC_EXPORT("invoke") int32_t invoke(int32_t p2, int32_t len) {
    (void)len;
    uint32_t n = 0;
    if (tc_obj_get(NAME, sizeof NAME, buf, sizeof buf) == 4)
        n = load_be(buf);
    if (p2 == 0) {
        n += 1;
        store_be(buf, n);
        if (tc_obj_put(NAME, sizeof NAME, buf, sizeof buf) != 0)
            return 0x6A84;
    } else if (p2 != 1) {
        return 0x6A86;
    }
    store_be(buf, n);
    tc_output(buf, sizeof buf);
    return 0x9000;
}
