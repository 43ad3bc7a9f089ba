;; Counter: a 32-bit counter kept in the program's data object "count" (docs/programs.md).
;;   INVOKE P2=00: increment, answer the new value (4 bytes, big-endian) and 9000
;;   INVOKE P2=01: answer the current value without changing it
(module
  (import "tenantcard" "obj_get" (func $obj_get (param i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "obj_put" (func $obj_put (param i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "count")

  ;; big-endian <-> little-endian (WebAssembly memory is little-endian, core spec §4.4.7)
  (func $bswap (param $x i32) (result i32)
    (i32.or
      (i32.or (i32.shl (local.get $x) (i32.const 24))
              (i32.and (i32.shl (local.get $x) (i32.const 8)) (i32.const 0x00FF0000)))
      (i32.or (i32.and (i32.shr_u (local.get $x) (i32.const 8)) (i32.const 0x0000FF00))
              (i32.shr_u (local.get $x) (i32.const 24)))))

  (func (export "invoke") (param $p2 i32) (param $len i32) (result i32)
    (local $n i32)
    (if (i32.eq (call $obj_get (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 4)) (i32.const 4))
      (then (local.set $n (call $bswap (i32.load (i32.const 16))))))
    (if (i32.eqz (local.get $p2))
      (then
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (i32.store (i32.const 16) (call $bswap (local.get $n)))
        (if (i32.ne (call $obj_put (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 4)) (i32.const 0))
          (then (return (i32.const 0x6A84)))))
      (else
        (if (i32.ne (local.get $p2) (i32.const 1))
          (then (return (i32.const 0x6A86))))))
    (i32.store (i32.const 16) (call $bswap (local.get $n)))
    (drop (call $output (i32.const 16) (i32.const 4)))
    (i32.const 0x9000)))
