"""The published OATH test vectors, as data: RFC 4226 Appendix D (HOTP), RFC 6238 Appendix B (TOTP) and
RFC 6287 Appendix C (OCRA). Shared by the pure-crypto tests and the tests that have the device compute them.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 4226 Appendix D: secret = ASCII "12345678901234567890", 6 digits, HMAC-SHA-1, counts 0..9.
HOTP_SECRET = b"12345678901234567890"
HOTP_RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]

# RFC 6238 Appendix B: 8 digits, X = 30, T0 = 0; the seed length matches the hash (the reference code's seeds).
TOTP_SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
TOTP_RFC6238: list[tuple[int, str, str]] = [
    (59, "SHA1", "94287082"),
    (59, "SHA256", "46119246"),
    (59, "SHA512", "90693936"),
    (1111111109, "SHA1", "07081804"),
    (1111111109, "SHA256", "68084774"),
    (1111111109, "SHA512", "25091201"),
    (1111111111, "SHA1", "14050471"),
    (1111111111, "SHA256", "67062674"),
    (1111111111, "SHA512", "99943326"),
    (1234567890, "SHA1", "89005924"),
    (1234567890, "SHA256", "91819424"),
    (1234567890, "SHA512", "93441116"),
    (2000000000, "SHA1", "69279037"),
    (2000000000, "SHA256", "90698825"),
    (2000000000, "SHA512", "38618901"),
    (20000000000, "SHA1", "65353130"),
    (20000000000, "SHA256", "77737706"),
    (20000000000, "SHA512", "47863826"),
]

# RFC 6287 Appendix C: keys, PIN "1234" (hashed with SHA-1 for the PSHA1 suites), T = 0x132d0b6 time steps.
OCRA_KEY20 = bytes.fromhex("3132333435363738393031323334353637383930")
OCRA_KEY32 = bytes.fromhex("3132333435363738393031323334353637383930313233343536373839303132")
OCRA_KEY64 = bytes.fromhex(
    "31323334353637383930313233343536373839303132333435363738393031323334353637383930"
    "313233343536373839303132333435363738393031323334"
)
OCRA_PIN = "1234"
OCRA_PIN_SHA1 = bytes.fromhex("7110eda4d09e062aa5e4a390b0a572ac0d2c0220")
OCRA_TIMESTAMP = 0x132D0B6  # RFC 6287 Appendix C: "Mar 25 2008, 12:06:30 GMT" in 1-minute steps


@dataclass(frozen=True)
class OcraVector:
    section: str
    suite: str
    key: bytes
    question: str
    response: str
    counter: int | None = None
    pin: bool = False
    timestamp: int | None = None


def _ocra_vectors() -> list[OcraVector]:
    v: list[OcraVector] = []
    # C.1 One-way challenge-response
    for i, r in enumerate(
        ["237653", "243178", "653583", "740991", "608993", "388898", "816933", "224598", "750600", "294470"]
    ):
        v.append(OcraVector("C.1", "OCRA-1:HOTP-SHA1-6:QN08", OCRA_KEY20, str(i) * 8, r))
    for i, r in enumerate(
        [
            "65347737",
            "86775851",
            "78192410",
            "71565254",
            "10104329",
            "65983500",
            "70069104",
            "91771096",
            "75011558",
            "08522129",
        ]
    ):
        v.append(OcraVector("C.1", "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1", OCRA_KEY32, "12345678", r, counter=i, pin=True))
    for i, r in enumerate(["83238735", "01501458", "17957585", "86776967", "86807031"]):
        v.append(OcraVector("C.1", "OCRA-1:HOTP-SHA256-8:QN08-PSHA1", OCRA_KEY32, str(i) * 8, r, pin=True))
    for i, r in enumerate(
        [
            "07016083",
            "63947962",
            "70123924",
            "25341727",
            "33203315",
            "34205738",
            "44343969",
            "51946085",
            "20403879",
            "31409299",
        ]
    ):
        v.append(OcraVector("C.1", "OCRA-1:HOTP-SHA512-8:C-QN08", OCRA_KEY64, str(i) * 8, r, counter=i))
    for i, r in enumerate(["95209754", "55907591", "22048402", "24218844", "36209546"]):
        v.append(
            OcraVector("C.1", "OCRA-1:HOTP-SHA512-8:QN08-T1M", OCRA_KEY64, str(i) * 8, r, timestamp=OCRA_TIMESTAMP)
        )
    # C.2 Mutual challenge-response (server and client computations)
    for i, r in enumerate(["28247970", "01984843", "65387857", "03351211", "83412541"]):
        v.append(OcraVector("C.2", "OCRA-1:HOTP-SHA256-8:QA08", OCRA_KEY32, f"CLI2222{i}SRV1111{i}", r))
    for i, r in enumerate(["15510767", "90175646", "33777207", "95285278", "28934924"]):
        v.append(OcraVector("C.2", "OCRA-1:HOTP-SHA256-8:QA08", OCRA_KEY32, f"SRV1111{i}CLI2222{i}", r))
    for i, r in enumerate(["79496648", "76831980", "12250499", "90856481", "12761449"]):
        v.append(OcraVector("C.2", "OCRA-1:HOTP-SHA512-8:QA08", OCRA_KEY64, f"CLI2222{i}SRV1111{i}", r))
    for i, r in enumerate(["18806276", "70020315", "01600026", "18951020", "32528969"]):
        v.append(OcraVector("C.2", "OCRA-1:HOTP-SHA512-8:QA08-PSHA1", OCRA_KEY64, f"SRV1111{i}CLI2222{i}", r, pin=True))
    # C.3 Plain signature
    for i, r in enumerate(["53095496", "04110475", "31331128", "76028668", "46554205"]):
        v.append(OcraVector("C.3", "OCRA-1:HOTP-SHA256-8:QA08", OCRA_KEY32, f"SIG1{i}000", r))
    for i, r in enumerate(["77537423", "31970405", "10235557", "95213541", "65360607"]):
        v.append(
            OcraVector("C.3", "OCRA-1:HOTP-SHA512-8:QA10-T1M", OCRA_KEY64, f"SIG1{i}00000", r, timestamp=OCRA_TIMESTAMP)
        )
    return v


OCRA_RFC6287 = _ocra_vectors()
