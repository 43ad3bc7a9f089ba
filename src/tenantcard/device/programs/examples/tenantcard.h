/* The host API of tenantcard programs (module "tenantcard", host API version 1; docs/programs.md "Host API").
 *
 * Freestanding: no libc. Every parameter and result is an i32; pointers are offsets into the program's
 * linear memory. Negative results are the conditions of enum tc_error, for the program to handle. */
#ifndef TENANTCARD_H
#define TENANTCARD_H

#include <stdint.h>

#define TC_HOST(name) __attribute__((import_module("tenantcard"), import_name(name)))
#define TC_EXPORT(name) __attribute__((export_name(name)))

enum tc_error {
    TC_NOT_FOUND = -1,
    TC_QUOTA = -2,
    TC_ARGUMENT = -3,
    TC_KEY_TYPE = -4,
    TC_BUFFER = -5,
};

/* Copies the command data (up to cap bytes) to dst; returns its full length. */
TC_HOST("input") int32_t tc_input(uint8_t *dst, int32_t cap);
/* Sets the response data (at most 4096 bytes): 0 or TC_BUFFER. */
TC_HOST("output") int32_t tc_output(const uint8_t *src, int32_t len);
/* Reads the program's object name (1-64 bytes), copies up to cap bytes; its full length, TC_NOT_FOUND or
 * TC_ARGUMENT. */
TC_HOST("obj_get") int32_t tc_obj_get(const uint8_t *name, int32_t name_len, uint8_t *dst, int32_t cap);
/* Writes an object (value up to 8192 bytes): 0, TC_QUOTA or TC_ARGUMENT. */
TC_HOST("obj_put") int32_t tc_obj_put(const uint8_t *name, int32_t name_len, const uint8_t *src, int32_t len);
/* Deletes an object: 1 if it existed, 0 if not, or TC_ARGUMENT. */
TC_HOST("obj_delete") int32_t tc_obj_delete(const uint8_t *name, int32_t name_len);
/* HMAC-SHA256 with program key key_id: 32, TC_NOT_FOUND, TC_KEY_TYPE or TC_BUFFER. */
TC_HOST("mac") int32_t tc_mac(int32_t key_id, const uint8_t *msg, int32_t msg_len, uint8_t *dst, int32_t cap);
/* Ed25519 (64 bytes) or ECDSA P-256/SHA-256 (DER) with program key key_id: the signature's length,
 * TC_NOT_FOUND, TC_KEY_TYPE or TC_BUFFER. */
TC_HOST("sign") int32_t tc_sign(int32_t key_id, const uint8_t *msg, int32_t msg_len, uint8_t *dst, int32_t cap);
/* len (up to 1024) random bytes: 0 or TC_ARGUMENT. */
TC_HOST("random") int32_t tc_random(uint8_t *dst, int32_t len);
/* Bit 0: the provider's secure channel is open; bit 1: the holder PIN is verified. */
TC_HOST("rights") int32_t tc_rights(void);

#endif
