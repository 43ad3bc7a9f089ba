/* HMAC challenge-response, in C: the same program as hmac.wat (docs/programs.md "From C"). Answers
 * HMAC-SHA256(key, challenge) with the container's program key 01, or the key id in P2 when P2 is not 00;
 * the key never enters this program's memory.
 *   INVOKE P2=key id, data = challenge (1..128 bytes) -> 32-byte MAC, 9000
 *   6700 bad challenge length, 6A88 no such key, 6985 the key is not an HMAC key */
#include "tenantcard.h"

#define MAX_CHALLENGE 128

static uint8_t challenge[MAX_CHALLENGE];
static uint8_t tag[32];

TC_EXPORT("invoke") int32_t invoke(int32_t p2, int32_t len) {
    if (len < 1 || len > MAX_CHALLENGE)
        return 0x6700;
    tc_input(challenge, sizeof challenge);
    int32_t r = tc_mac(p2 ? p2 : 1, challenge, len, tag, sizeof tag);
    if (r == TC_NOT_FOUND)
        return 0x6A88;
    if (r < 0)
        return 0x6985;
    tc_output(tag, r);
    return 0x9000;
}
