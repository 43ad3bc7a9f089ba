;; HMAC challenge-response: answers HMAC-SHA256(key, challenge) with the container's program key 01
;; (or the key id given in P2 when P2 is not 00). The key never enters this program's memory.
;;   INVOKE P2=key id, data = challenge (1..128 bytes) -> 32-byte MAC, 9000
;;   6700 bad challenge length, 6A88 no such key, 6985 the key is not an HMAC key
(module
  (import "tenantcard" "input" (func $input (param i32 i32) (result i32)))
  (import "tenantcard" "mac" (func $mac (param i32 i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)

  (func (export "invoke") (param $p2 i32) (param $len i32) (result i32)
    (local $key i32) (local $r i32)
    (if (i32.or (i32.eqz (local.get $len)) (i32.gt_u (local.get $len) (i32.const 128)))
      (then (return (i32.const 0x6700))))
    (drop (call $input (i32.const 1024) (i32.const 128)))
    (local.set $key (select (local.get $p2) (i32.const 1) (local.get $p2)))
    (local.set $r (call $mac (local.get $key) (i32.const 1024) (local.get $len) (i32.const 2048) (i32.const 32)))
    (if (i32.eq (local.get $r) (i32.const -1)) (then (return (i32.const 0x6A88))))
    (if (i32.lt_s (local.get $r) (i32.const 0)) (then (return (i32.const 0x6985))))
    (drop (call $output (i32.const 2048) (local.get $r)))
    (i32.const 0x9000)))
