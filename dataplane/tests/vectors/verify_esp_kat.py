#!/usr/bin/env python3
"""Independently verify dataplane/tests/vectors/esp_kat.json.

For every vector this recomputes the AEAD with Python's `cryptography`
package (nonce = salt || iv) and checks that encrypt(plaintext, aad) gives
ciphertext || icv, that decrypt inverts it, and that the derived/structural
fields agree with each other:

  * nonce == salt || iv, field lengths (salt 4, iv 8, spi 4, seq 4 or 8)
  * ESP (RFC 4106 / RFC 7634): aad == spi || seq (seq is 8 octets with ESN,
    high half first); the IV is NOT part of the AAD
  * ESP GMAC (RFC 4543): aad == spi || seq || iv || gmac_payload, plaintext empty
  * plaintext == payload || padding || pad_len || next_header
  * esp_packet == spi || low 32 bits of seq || iv || ciphertext || icv
  * RFC 7634 extras: ip_packet[20:] == esp_packet, Poly1305 one-time key
  * IKEv2 (RFC 7634 App. B): ike_message == aad || iv || ciphertext || icv

Exits non-zero on any mismatch and prints "N vectors verified" otherwise.
Usage: python3 verify_esp_kat.py [path/to/esp_kat.json]
"""
import json
import os
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "esp_kat.json")

ICV_LEN = {
    "chacha20poly1305": 16,
    "aes128gcm16": 16, "aes192gcm16": 16, "aes256gcm16": 16,
    "aes128gcm12": 12, "aes192gcm12": 12, "aes256gcm12": 12,
    "aes128gcm8": 8, "aes192gcm8": 8, "aes256gcm8": 8,
    "aes128gmac": 16, "aes192gmac": 16, "aes256gmac": 16,
}


def h(s):
    return bytes.fromhex(s) if s else b""


def check_vector(v):
    """Return a list of error strings (empty when the vector verifies)."""
    errs = []

    def expect(cond, msg):
        if not cond:
            errs.append(msg)

    name = v["name"]
    cipher = v["cipher"]
    kind = v["kind"]
    if cipher not in ICV_LEN:
        return ["unknown cipher %r" % cipher]

    key, salt, iv = h(v["key"]), h(v["salt"]), h(v["iv"])
    aad, pt = h(v["aad"]), h(v["plaintext"])
    ct, icv = h(v["ciphertext"]), h(v["icv"])
    icv_len = ICV_LEN[cipher]

    expect(len(salt) == 4, "salt must be 4 octets")
    expect(len(iv) == 8, "iv must be 8 octets")
    expect(len(icv) == icv_len == v["icv_len"], "icv length mismatch")
    expect(h(v["nonce"]) == salt + iv, "nonce != salt || iv")
    if "key_bits" in v:
        expect(len(key) * 8 == v["key_bits"], "key_bits mismatch")

    nonce = salt + iv
    # --- the AEAD itself ---------------------------------------------------
    try:
        if cipher == "chacha20poly1305":
            expect(len(key) == 32, "chacha20poly1305 key must be 32 octets")
            aead = ChaCha20Poly1305(key)
        else:
            expect(len(key) in (16, 24, 32), "AES key must be 16/24/32 octets")
            aead = AESGCM(key)
        out = aead.encrypt(nonce, pt, aad)
        got_ct, got_tag = out[:-16], out[-16:]
        expect(got_ct == ct, "ciphertext mismatch: got %s" % got_ct.hex())
        expect(got_tag[:icv_len] == icv, "icv mismatch: got %s" % got_tag[:icv_len].hex())
        if icv_len == 16:
            expect(aead.decrypt(nonce, ct + icv, aad) == pt, "decrypt did not return plaintext")
    except Exception as e:  # InvalidTag, ValueError, ...
        errs.append("AEAD operation failed: %r" % (e,))

    # --- trailer / payload consistency --------------------------------------
    payload, padding = h(v.get("payload")), h(v.get("padding"))
    if kind == "esp":
        trailer_src = h(v["gmac_payload"]) if cipher.endswith("gmac") else pt
        expect(trailer_src == payload + padding + bytes([v["pad_len"], v["next_header"]]),
               "plaintext != payload || padding || pad_len || next_header")
        expect(len(padding) == v["pad_len"], "pad_len != len(padding)")
    elif kind == "ikev2":
        expect(pt == payload + padding + bytes([v["pad_len"]]),
               "IKEv2 plaintext != payload || padding || pad_len")

    # --- ESP framing --------------------------------------------------------
    if kind == "esp":
        spi, seq = h(v["spi"]), h(v["seq"])
        expect(len(spi) == 4, "spi must be 4 octets")
        expect(len(seq) in (4, 8), "seq must be 4 or 8 octets")
        expect(v["esn"] == (len(seq) == 8), "esn flag inconsistent with seq length")
        if cipher.endswith("gmac"):
            expect(pt == b"" and ct == b"", "GMAC vectors must have empty plaintext/ciphertext")
            expect(aad == spi + seq + iv + h(v["gmac_payload"]),
                   "GMAC aad != spi || seq || iv || gmac_payload")
            body = h(v["gmac_payload"])
        else:
            expect(aad == spi + seq, "aad != spi || seq (RFC 4106 / RFC 7634 AAD)")
            body = ct
        want_pkt = spi + seq[-4:] + iv + body + icv
        expect(h(v["esp_packet"]) == want_pkt,
               "esp_packet != spi || seq_low32 || iv || ciphertext || icv")
        if v.get("ip_packet"):
            ipp = h(v["ip_packet"])
            ihl = (ipp[0] & 0x0F) * 4
            expect(ipp[ihl:] == h(v["esp_packet"]), "ip_packet payload != esp_packet")
            expect(ipp[9] == 50, "outer IP protocol is not ESP (50)")
            expect(int.from_bytes(ipp[2:4], "big") == len(ipp), "outer IP total length mismatch")
    elif kind == "ikev2":
        expect(h(v["ike_message"]) == aad + iv + ct + icv,
               "ike_message != aad || iv || ciphertext || icv")
        expect(h(v["encrypted_payload"]) == aad[-4:] + iv + ct + icv,
               "encrypted_payload != sk_header || iv || ciphertext || icv")
        expect(aad[:8] == h(v["ike_spi_i"]) and aad[8:16] == h(v["ike_spi_r"]), "IKE SPIs mismatch")
        expect(int.from_bytes(aad[20:24], "big") == v["message_id"], "message id mismatch")
        expect(int.from_bytes(aad[24:28], "big") == len(h(v["ike_message"])), "IKE length mismatch")
    else:
        errs.append("unknown kind %r" % kind)

    # --- RFC 7634 Poly1305 one-time key (ChaCha20 block 0) --------------------
    if v.get("poly1305_key"):
        c = Cipher(algorithms.ChaCha20(key, (0).to_bytes(4, "little") + nonce), mode=None)
        otk = c.encryptor().update(b"\x00" * 32)
        expect(otk == h(v["poly1305_key"]), "poly1305 one-time key mismatch: got %s" % otk.hex())

    return ["%s: %s" % (name, e) for e in errs]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    with open(path) as f:
        data = json.load(f)
    vectors = data["vectors"]
    failures = []
    names = set()
    for v in vectors:
        if v["name"] in names:
            failures.append("%s: duplicate name" % v["name"])
        names.add(v["name"])
        failures.extend(check_vector(v))
    if failures or not vectors:
        for e in failures:
            print("FAIL " + e, file=sys.stderr)
        print("%d of %d vectors failed verification" % (
            len({e.split(':')[0] for e in failures}), len(vectors)))
        return 1
    print("%d vectors verified" % len(vectors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
