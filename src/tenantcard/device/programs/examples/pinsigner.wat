;; PIN-guarded signer: signs with the container's program key 01 (Ed25519 or P-256) after checking a PIN
;; that the program keeps in its own data objects, with a retry counter that survives power loss.
;;   INVOKE P2=01, data = new PIN (4..16 bytes): set the PIN and reset the tries (provider channel only)
;;   INVOKE P2=02, data = PIN length (1 byte) || PIN || message: sign the message -> signature, 9000
;;   INVOKE P2=03: answer the tries left (1 byte)
;; Status words: 63Cx wrong PIN (x tries left), 6983 blocked, 6985 no PIN set or no key, 6982 not the
;; provider, 6700 bad lengths, 6A86 unknown P2.
(module
  (import "tenantcard" "input" (func $input (param i32 i32) (result i32)))
  (import "tenantcard" "output" (func $output (param i32 i32) (result i32)))
  (import "tenantcard" "obj_get" (func $obj_get (param i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "obj_put" (func $obj_put (param i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "sign" (func $sign (param i32 i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "rights" (func $rights (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "pin")
  (data (i32.const 8) "tries")
  ;; 1024: command data (up to 2048 bytes); 4096: stored PIN; 4200: tries byte; 8192: signature
  (global $max_tries i32 (i32.const 3))

  (func $put_tries (param $n i32) (result i32)
    (i32.store8 (i32.const 4200) (local.get $n))
    (call $obj_put (i32.const 8) (i32.const 5) (i32.const 4200) (i32.const 1)))

  (func $set_pin (param $len i32) (result i32)
    (if (i32.eqz (i32.and (call $rights) (i32.const 1))) (then (return (i32.const 0x6982))))
    (if (i32.or (i32.lt_u (local.get $len) (i32.const 4)) (i32.gt_u (local.get $len) (i32.const 16)))
      (then (return (i32.const 0x6700))))
    (drop (call $input (i32.const 1024) (i32.const 16)))
    (if (call $obj_put (i32.const 0) (i32.const 3) (i32.const 1024) (local.get $len))
      (then (return (i32.const 0x6A84))))
    (if (call $put_tries (global.get $max_tries)) (then (return (i32.const 0x6A84))))
    (i32.const 0x9000))

  ;; constant-time over the presented length: OR of the XORs, and the lengths must agree
  (func $pin_ok (param $given i32) (param $given_len i32) (param $stored_len i32) (result i32)
    (local $i i32) (local $diff i32)
    (local.set $diff (i32.xor (local.get $given_len) (local.get $stored_len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $given_len)))
        (local.set $diff (i32.or (local.get $diff)
          (i32.xor (i32.load8_u (i32.add (local.get $given) (local.get $i)))
                   (i32.load8_u (i32.add (i32.const 4096) (i32.and (local.get $i) (i32.const 15)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.eqz (local.get $diff)))

  (func $sign_msg (param $len i32) (result i32)
    (local $pin_len i32) (local $stored_len i32) (local $tries i32) (local $msg i32) (local $r i32)
    (if (i32.or (i32.lt_u (local.get $len) (i32.const 2)) (i32.gt_u (local.get $len) (i32.const 2048)))
      (then (return (i32.const 0x6700))))
    (drop (call $input (i32.const 1024) (i32.const 2048)))
    (local.set $pin_len (i32.load8_u (i32.const 1024)))
    (if (i32.gt_u (i32.add (local.get $pin_len) (i32.const 1)) (local.get $len))
      (then (return (i32.const 0x6700))))
    (local.set $stored_len (call $obj_get (i32.const 0) (i32.const 3) (i32.const 4096) (i32.const 16)))
    (if (i32.lt_s (local.get $stored_len) (i32.const 0)) (then (return (i32.const 0x6985))))
    (if (i32.ne (call $obj_get (i32.const 8) (i32.const 5) (i32.const 4200) (i32.const 1)) (i32.const 1))
      (then (return (i32.const 0x6985))))
    (local.set $tries (i32.load8_u (i32.const 4200)))
    (if (i32.eqz (local.get $tries)) (then (return (i32.const 0x6983))))
    (if (i32.eqz (call $pin_ok (i32.const 1025) (local.get $pin_len) (local.get $stored_len)))
      (then
        (local.set $tries (i32.sub (local.get $tries) (i32.const 1)))
        (drop (call $put_tries (local.get $tries)))
        (return (i32.or (i32.const 0x63C0) (local.get $tries)))))
    (if (i32.ne (local.get $tries) (global.get $max_tries))
      (then (drop (call $put_tries (global.get $max_tries)))))
    (local.set $msg (i32.add (i32.const 1025) (local.get $pin_len)))
    (local.set $r (call $sign (i32.const 1) (local.get $msg)
      (i32.sub (local.get $len) (i32.add (local.get $pin_len) (i32.const 1))) (i32.const 8192) (i32.const 128)))
    (if (i32.lt_s (local.get $r) (i32.const 0)) (then (return (i32.const 0x6985))))
    (drop (call $output (i32.const 8192) (local.get $r)))
    (i32.const 0x9000))

  (func (export "invoke") (param $p2 i32) (param $len i32) (result i32)
    (if (i32.eq (local.get $p2) (i32.const 1)) (then (return (call $set_pin (local.get $len)))))
    (if (i32.eq (local.get $p2) (i32.const 2)) (then (return (call $sign_msg (local.get $len)))))
    (if (i32.eq (local.get $p2) (i32.const 3))
      (then
        (if (i32.ne (call $obj_get (i32.const 8) (i32.const 5) (i32.const 4200) (i32.const 1)) (i32.const 1))
          (then (return (i32.const 0x6985))))
        (drop (call $output (i32.const 4200) (i32.const 1)))
        (return (i32.const 0x9000))))
    (i32.const 0x6A86)))
