#!/usr/bin/env python3
"""Independent ESP reference implementation used by the xipsec test suite as truth.

Written from the RFCs only (not from the Rust dataplane): RFC 4303 (ESP, ESN in
Appendix A), RFC 4106 (AES-GCM in ESP), RFC 7634 (ChaCha20-Poly1305 in ESP),
RFC 3948 (UDP encapsulation).  Reads one JSON request on stdin, writes one JSON
response on stdout; all byte strings are hex.  Exit 0 if the request was
understood (even when single packets fail), 2 if the request itself is malformed.

  {"op": "encap", "sa": SA, "packets": [{"seq": u64, "inner": hex, "iv": hex|null}]}
    -> {"results": [{"wire": hex} | {"error": str}]}
  {"op": "decap", "sa": SA, "packets": [{"seq_hi": u32 (default 0), "wire": hex}]}
    -> {"results": [{"ok": true, "inner", "seq", "next_header", "pad_len", "iv",
                     "outer": {...}, "inner_ip_len" (tunnel only)} | {"ok": false, "error": str}]}
  SA = {"cipher", "keymat", "spi", "esn", "mode", "natt": null|{"sport","dport"}, "src", "dst"}

`python3 esp_crosscheck.py --self-test` runs round trips, tamper checks and
published vectors.
"""
import ipaddress
import json
import struct
import subprocess
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

# cipher name -> (AEAD class, key length); keymat is key || 4-byte salt
# (RFC 4106 section 8.1, RFC 7634 section 2).
CIPHERS = {"aes128gcm16": (AESGCM, 16), "aes256gcm16": (AESGCM, 32),
           "chacha20poly1305": (ChaCha20Poly1305, 32)}
IV_LEN, ICV_LEN, SALT_LEN = 8, 16, 4   # 8-byte explicit IV, 16-byte tag (RFC 4106 s3, RFC 7634 s2)
PROTO_IPIP, PROTO_UDP, PROTO_IPV6, PROTO_ESP, PROTO_NONE = 4, 17, 41, 50, 59
OUTER_TTL = 64


class RequestError(Exception):
    """The request itself is malformed -> exit 2."""


class PacketError(Exception):
    """One packet failed; reported in its result slot."""


# ---------------------------------------------------------------- checksums
def inet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement checksum; 0 when verifying a correct buffer."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp6_checksum(src, dst, segment: bytes) -> int:
    """UDP checksum over the IPv6 pseudo-header (RFC 8200 section 8.1)."""
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(segment), PROTO_UDP)
    return inet_checksum(pseudo + segment)


# ---------------------------------------------------------------- IP headers
def finish_ipv4(hdr: bytearray, payload_len: int) -> bytes:
    """Set total length and recompute the header checksum (RFC 791)."""
    struct.pack_into("!H", hdr, 2, len(hdr) + payload_len)
    struct.pack_into("!H", hdr, 10, 0)
    struct.pack_into("!H", hdr, 10, inet_checksum(bytes(hdr)))
    return bytes(hdr)


def ipv4_header(tos, ident, proto, src, dst, payload_len, ttl=OUTER_TTL, df=True) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, 0, ident & 0xFFFF,
                                0x4000 if df else 0, ttl, proto, 0, src.packed, dst.packed))
    return finish_ipv4(hdr, payload_len)


def ipv6_header(tclass, flow, nh, src, dst, payload_len, hlim=OUTER_TTL) -> bytes:
    return struct.pack("!IHBB16s16s", (6 << 28) | (tclass << 20) | flow, payload_len,
                       nh, hlim, src.packed, dst.packed)


def parse_inner(inner: bytes) -> dict:
    """Header facts of a whole inner IP packet (encap input must be self-consistent)."""
    if not inner or inner[0] >> 4 not in (4, 6):
        raise PacketError("inner packet is neither IPv4 nor IPv6")
    if inner[0] >> 4 == 4:
        ihl = (inner[0] & 0xF) * 4
        if len(inner) < 20 or ihl < 20 or ihl > len(inner):
            raise PacketError("inner IPv4 header truncated or bad IHL")
        if struct.unpack_from("!H", inner, 2)[0] != len(inner):
            raise PacketError("inner IPv4 total length does not match packet")
        return {"version": 4, "hdr_len": ihl, "proto": inner[9], "tos": inner[1], "flow": 0,
                "src": ipaddress.IPv4Address(inner[12:16]), "dst": ipaddress.IPv4Address(inner[16:20])}
    if len(inner) < 40 or struct.unpack_from("!H", inner, 4)[0] != len(inner) - 40:
        raise PacketError("inner IPv6 header truncated or payload length does not match packet")
    first = struct.unpack_from("!I", inner)[0]
    return {"version": 6, "hdr_len": 40, "proto": inner[6], "tos": (first >> 20) & 0xFF,
            "flow": first & 0xFFFFF, "src": ipaddress.IPv6Address(inner[8:24]),
            "dst": ipaddress.IPv6Address(inner[24:40])}


# ---------------------------------------------------------------- the SA
class SA:
    def __init__(self, d):
        if not isinstance(d, dict):
            raise RequestError("'sa' must be an object")
        cipher = need(d, "cipher", str, "sa")
        if cipher not in CIPHERS:
            raise RequestError(f"sa.cipher: unknown cipher {cipher!r}")
        aead_cls, key_len = CIPHERS[cipher]
        keymat = need_hex(d, "keymat", "sa")
        if len(keymat) != key_len + SALT_LEN:
            raise RequestError(f"sa.keymat: {cipher} needs {key_len + SALT_LEN} bytes, got {len(keymat)}")
        self.aead, self.salt = aead_cls(keymat[:key_len]), keymat[key_len:]
        # SPI 0 is reserved and MUST NOT be sent (RFC 4303 section 2.1).
        self.spi = need_int(d, "spi", "sa", 1, 0xFFFFFFFF)
        self.esn = need(d, "esn", bool, "sa")
        self.mode = need(d, "mode", str, "sa")
        if self.mode not in ("tunnel", "transport"):
            raise RequestError("sa.mode must be 'tunnel' or 'transport'")
        natt = d.get("natt")
        self.natt = None if natt is None else (need_int(natt, "sport", "sa.natt", 1, 65535),
                                                need_int(natt, "dport", "sa.natt", 1, 65535))
        try:
            self.src = ipaddress.ip_address(need(d, "src", str, "sa"))
            self.dst = ipaddress.ip_address(need(d, "dst", str, "sa"))
        except ValueError as e:
            raise RequestError(f"sa: bad address: {e}") from None
        if self.src.version != self.dst.version:
            raise RequestError("sa.src and sa.dst are of different address families")


# ---------------------------------------------------------------- ESP proper
def esp_aad(spi: int, seq: int, esn: bool) -> bytes:
    """AAD = SPI || seq32, or SPI || seq_hi || seq_lo with ESN (RFC 4106 s5, RFC 7634 s2.1)."""
    if esn:
        return struct.pack("!III", spi, seq >> 32, seq & 0xFFFFFFFF)
    return struct.pack("!II", spi, seq)


def esp_trailer(payload_len: int, next_header: int) -> bytes:
    """Padding 1,2,3,... so that payload+pad+2 is a multiple of 4 (RFC 4303 s2.4)."""
    pad_len = -(payload_len + 2) % 4
    return bytes(range(1, pad_len + 1)) + bytes([pad_len, next_header])


def esp_seal(sa: SA, seq: int, iv: bytes, plaintext: bytes) -> bytes:
    """SPI || seq_lo || IV || AEAD(plaintext); nonce = salt || IV (RFC 4106 s4, RFC 7634 s2).
    Only the low 32 bits of an ESN go on the wire (RFC 4303 s2.2.1)."""
    sealed = sa.aead.encrypt(sa.salt + iv, plaintext, esp_aad(sa.spi, seq, sa.esn))
    return struct.pack("!II", sa.spi, seq & 0xFFFFFFFF) + iv + sealed


def esp_open(sa: SA, esp: bytes, seq_hi: int):
    """Verify and decrypt; returns (seq64, iv, payload, pad_len, next_header)."""
    if len(esp) < 8 + IV_LEN + ICV_LEN + 2:
        raise PacketError(f"ESP packet too short ({len(esp)} bytes)")
    spi, seq_lo = struct.unpack_from("!II", esp)
    if spi != sa.spi:
        raise PacketError(f"SPI mismatch: got {spi:#010x}, SA has {sa.spi:#010x}")
    # ESN: the high half is not transmitted; the receiver supplies it (RFC 4303 App. A).
    seq = (seq_hi << 32) | seq_lo if sa.esn else seq_lo
    if seq == 0:
        raise PacketError("sequence number 0 is never sent (RFC 4303 s3.3.3)")
    iv, sealed = esp[8:8 + IV_LEN], esp[8 + IV_LEN:]
    try:
        plain = sa.aead.decrypt(sa.salt + iv, sealed, esp_aad(sa.spi, seq, sa.esn))
    except InvalidTag:
        raise PacketError("AEAD authentication failed") from None
    if len(plain) % 4:
        raise PacketError(f"ciphertext length {len(plain)} not a multiple of 4 (RFC 4303 s2.4)")
    pad_len, next_header = plain[-2], plain[-1]
    if pad_len + 2 > len(plain):
        raise PacketError(f"pad length {pad_len} exceeds decrypted payload")
    if plain[-2 - pad_len:-2] != bytes(range(1, pad_len + 1)):
        raise PacketError("padding bytes are not 1,2,3,... (RFC 4303 s2.4)")
    if next_header == PROTO_NONE:
        raise PacketError("dummy packet (next header 59) must be discarded (RFC 4303 s2.6)")
    return seq, iv, plain[:-2 - pad_len], pad_len, next_header


# ---------------------------------------------------------------- encap
def udp_wrap(sa: SA, esp: bytes, src, dst) -> bytes:
    """RFC 3948 s2.1: UDP checksum 0 over IPv4; IPv6 needs a real one (RFC 8200 s8.1)."""
    seg = struct.pack("!HHHH", sa.natt[0], sa.natt[1], 8 + len(esp), 0) + esp
    if src.version == 6:
        seg = seg[:6] + struct.pack("!H", udp6_checksum(src, dst, seg) or 0xFFFF) + seg[8:]
    return seg


def encap_packet(sa: SA, seq: int, inner: bytes, iv) -> bytes:
    info = parse_inner(inner)
    if seq == 0:
        raise PacketError("sequence number 0 is never sent (RFC 4303 s3.3.3)")
    if not sa.esn and seq > 0xFFFFFFFF:
        raise PacketError("seq above 2^32-1 on a non-ESN SA: counter must not cycle (RFC 4303 s3.3.3)")
    if iv is None:   # a counter is the recommended IV (RFC 4106 s3.1, RFC 7634 s2)
        iv = seq.to_bytes(8, "big")
    proto = PROTO_UDP if sa.natt else PROTO_ESP
    if sa.mode == "tunnel":   # whole inner packet is the payload (RFC 4303 s3.1.2)
        esp = esp_seal(sa, seq, iv, inner + esp_trailer(len(inner), PROTO_IPIP if info["version"] == 4 else PROTO_IPV6))
        body = udp_wrap(sa, esp, sa.src, sa.dst) if sa.natt else esp
        if sa.src.version == 4:   # TOS byte (DSCP+ECN) copied from inner (RFC 4301 s5.1.2)
            return ipv4_header(info["tos"], seq, proto, sa.src, sa.dst, len(body)) + body
        return ipv6_header(info["tos"], info["flow"], proto, sa.src, sa.dst, len(body)) + body
    # Transport: ESP goes between the original IP header and its payload (RFC 4303 s3.1.1).
    if info["version"] != sa.src.version:
        raise PacketError("transport-mode inner packet family differs from SA family")
    hdr, payload = bytearray(inner[:info["hdr_len"]]), inner[info["hdr_len"]:]
    esp = esp_seal(sa, seq, iv, payload + esp_trailer(len(payload), info["proto"]))
    body = udp_wrap(sa, esp, info["src"], info["dst"]) if sa.natt else esp
    if info["version"] == 4:
        hdr[9] = proto
        return finish_ipv4(hdr, len(body)) + body
    hdr[6] = proto
    struct.pack_into("!H", hdr, 4, len(body))
    return bytes(hdr) + body


# ---------------------------------------------------------------- decap
def parse_outer(sa: SA, wire: bytes):
    """Strict checks of the outer IP (+UDP) headers; returns (ip_hdr, esp, outer_info)."""
    if not wire or wire[0] >> 4 not in (4, 6):
        raise PacketError(f"unsupported IP version {wire[0] >> 4 if wire else 'none'}")
    if wire[0] >> 4 == 4:
        ihl = (wire[0] & 0xF) * 4
        if len(wire) < 20 or ihl < 20 or ihl > len(wire):
            raise PacketError("IPv4 header truncated or bad IHL")
        if inet_checksum(wire[:ihl]) != 0:
            raise PacketError("IPv4 header checksum invalid")
        total, ident, frag = struct.unpack_from("!HHH", wire, 2)
        if total != len(wire):
            raise PacketError(f"IPv4 total length {total} != actual length {len(wire)}")
        if frag & 0x3FFF:   # ESP is applied to whole datagrams only (RFC 4303 s3.4.1)
            raise PacketError("IPv4 fragment: reassemble before ESP processing")
        hdr, proto, ttl, tos = wire[:ihl], wire[9], wire[8], wire[1]
        src, dst = ipaddress.IPv4Address(wire[12:16]), ipaddress.IPv4Address(wire[16:20])
        outer = {"ttl_or_hop_limit": ttl, "tos_or_tclass": tos, "df": bool(frag & 0x4000), "ip_id": ident}
    else:
        if len(wire) < 40:
            raise PacketError("IPv6 header truncated")
        plen = struct.unpack_from("!H", wire, 4)[0]
        if plen != len(wire) - 40:
            raise PacketError(f"IPv6 payload length {plen} != actual {len(wire) - 40}")
        hdr, proto = wire[:40], wire[6]
        src, dst = ipaddress.IPv6Address(wire[8:24]), ipaddress.IPv6Address(wire[24:40])
        outer = {"ttl_or_hop_limit": wire[7], "tos_or_tclass": (struct.unpack_from("!I", wire)[0] >> 20) & 0xFF,
                 "df": None, "ip_id": None}
    if src != sa.src or dst != sa.dst:
        raise PacketError(f"outer addresses {src} -> {dst} do not match SA {sa.src} -> {sa.dst}")
    want = PROTO_UDP if sa.natt else PROTO_ESP
    if proto != want:
        raise PacketError(f"IP protocol/next header {proto}, expected {want}")
    body = wire[len(hdr):]
    if sa.natt:
        if len(body) < 8:
            raise PacketError("UDP header truncated")
        sport, dport, ulen, csum = struct.unpack_from("!HHHH", body)
        if ulen != len(body):
            raise PacketError(f"UDP length {ulen} != actual {len(body)}")
        if (sport, dport) != sa.natt:
            raise PacketError(f"UDP ports {sport}->{dport}, SA expects {sa.natt[0]}->{sa.natt[1]}")
        if src.version == 4 and csum != 0:
            raise PacketError("UDP checksum over IPv4 must be 0 (RFC 3948 s2.1)")
        if src.version == 6 and (csum == 0 or udp6_checksum(src, dst, body) != 0):
            raise PacketError("UDP checksum over IPv6 missing or invalid (RFC 8200 s8.1)")
        body = body[8:]
        if body == b"\xff":
            raise PacketError("NAT-keepalive, not ESP (RFC 3948 s2.3)")
        if body[:4] == b"\0\0\0\0":
            raise PacketError("non-ESP marker: IKE packet, not ESP (RFC 3948 s2.2)")
    return hdr, body, outer


def decap_packet(sa: SA, wire: bytes, seq_hi: int) -> dict:
    hdr, esp, outer = parse_outer(sa, wire)
    seq, iv, payload, pad_len, nh = esp_open(sa, esp, seq_hi)
    result = {"ok": True, "seq": seq, "next_header": nh, "pad_len": pad_len, "iv": iv.hex(), "outer": outer}
    if sa.mode == "tunnel":
        # Tunnel payload is a whole IP packet, possibly followed by TFC padding (RFC 4303 s2.7).
        if nh not in (PROTO_IPIP, PROTO_IPV6):
            raise PacketError(f"tunnel mode next header {nh}, expected 4 or 41")
        version = 4 if nh == PROTO_IPIP else 6
        if not payload or payload[0] >> 4 != version or len(payload) < (20 if version == 4 else 40):
            raise PacketError(f"inner packet is not a complete IPv{version} header")
        ip_len = struct.unpack_from("!H", payload, 2)[0] if version == 4 else 40 + struct.unpack_from("!H", payload, 4)[0]
        if ip_len > len(payload):
            raise PacketError(f"inner IP length {ip_len} exceeds decrypted payload {len(payload)}")
        result.update(inner=payload.hex(), inner_ip_len=ip_len)
        return result
    # Transport: restore the original packet (RFC 4303 s3.4.4; RFC 3948 s3.1.2 removes UDP too).
    hdr = bytearray(hdr)
    if hdr[0] >> 4 == 4:
        hdr[9] = nh
        rebuilt = finish_ipv4(hdr, len(payload)) + payload
    else:
        hdr[6] = nh
        struct.pack_into("!H", hdr, 4, len(payload))
        rebuilt = bytes(hdr) + payload
    result["inner"] = rebuilt.hex()
    return result


# ---------------------------------------------------------------- request handling
def need(obj, key, kind, where):
    if not isinstance(obj, dict) or key not in obj:
        raise RequestError(f"{where}: missing '{key}'")
    value = obj[key]
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise RequestError(f"{where}.{key}: expected {kind.__name__}")
    return value


def need_int(obj, key, where, lo, hi):
    value = need(obj, key, int, where)
    if not lo <= value <= hi:
        raise RequestError(f"{where}.{key}: {value} outside [{lo}, {hi}]")
    return value


def need_hex(obj, key, where):
    try:
        return bytes.fromhex(need(obj, key, str, where))
    except ValueError:
        raise RequestError(f"{where}.{key}: not valid hex") from None


def handle_request(req) -> dict:
    if not isinstance(req, dict):
        raise RequestError("request must be a JSON object")
    op = need(req, "op", str, "request")
    if op not in ("encap", "decap"):
        raise RequestError(f"unknown op {op!r}")
    sa = SA(need(req, "sa", dict, "request"))
    packets = need(req, "packets", list, "request")
    results = []
    for i, pkt in enumerate(packets):
        where = f"packets[{i}]"
        if not isinstance(pkt, dict):
            raise RequestError(f"{where}: must be an object")
        if op == "encap":
            seq = need_int(pkt, "seq", where, 0, 2**64 - 1)
            inner = need_hex(pkt, "inner", where)
            iv = None if pkt.get("iv") is None else need_hex(pkt, "iv", where)
            if iv is not None and len(iv) != IV_LEN:
                raise RequestError(f"{where}.iv: must be {IV_LEN} bytes")
            try:
                results.append({"wire": encap_packet(sa, seq, inner, iv).hex()})
            except PacketError as e:
                results.append({"error": str(e)})
        else:
            seq_hi = need_int(pkt, "seq_hi", where, 0, 2**32 - 1) if "seq_hi" in pkt else 0
            wire = need_hex(pkt, "wire", where)
            try:
                results.append(decap_packet(sa, wire, seq_hi))
            except PacketError as e:
                results.append({"ok": False, "error": str(e)})
    return {"results": results}


# ---------------------------------------------------------------- self-test
def self_test() -> int:
    passed, failures = 0, []

    def check(name, cond):
        nonlocal passed
        if cond:
            passed += 1
        else:
            failures.append(name)

    def mk_sa(cipher, mode="tunnel", src="192.0.2.1", dst="198.51.100.2", natt=None, esn=False, spi=0x1000, keymat=None):
        klen = CIPHERS[cipher][1] + SALT_LEN
        return SA({"cipher": cipher, "keymat": keymat or bytes(range(7, 7 + klen)).hex(), "spi": spi,
                   "esn": esn, "mode": mode, "natt": natt, "src": src, "dst": dst})

    def inner_udp(src, dst, n):
        src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        seg = struct.pack("!HHHH", 1234, 5678, 8 + n, 0) + bytes((i * 7) & 0xFF for i in range(n))
        if src.version == 4:   # DSCP EF + ECT(1) so TOS copying is visible
            return ipv4_header(0xB9, 0x4242, PROTO_UDP, src, dst, len(seg), ttl=33, df=False) + seg
        return ipv6_header(0xB9, 0x12345, PROTO_UDP, src, dst, len(seg), hlim=33) + seg

    addrs = {4: ("192.0.2.1", "198.51.100.2"), 6: ("2001:db8::1", "2001:db8:ffff::2")}
    inner_addrs = {4: ("10.1.0.1", "10.2.0.9"), 6: ("fd00:1::1", "fd00:2::9")}
    for cipher in CIPHERS:
        for mode in ("tunnel", "transport"):
            for fin in (4, 6):
                for fout in ((4, 6) if mode == "tunnel" else (fin,)):
                    for natt in (None, {"sport": 4500, "dport": 4500}):
                        for esn in (False, True):
                            name = f"{cipher}/{mode}/in{fin}/out{fout}/natt={bool(natt)}/esn={esn}"
                            sa = mk_sa(cipher, mode, *addrs[fout], natt=natt, esn=esn)
                            ia = addrs[fin] if mode == "transport" else inner_addrs[fin]
                            seqs = (1, 0x1_0000_0005) if esn else (1, 0xFFFFFFFE)
                            for seq in seqs:
                                for n in (0, 1, 2, 3, 37):   # covers pad lengths 0..3
                                    inner = inner_udp(*ia, n)
                                    wire = encap_packet(sa, seq, inner, None)
                                    r = decap_packet_safe(sa, wire, seq >> 32)
                                    ok = roundtrip_matches(r, inner, wire, seq, mode, fin, fout)
                                    check(f"roundtrip {name} seq={seq:#x} n={n} {r.get('error', '')}", ok)
                                    if esn and n == 1:   # wrong high half must fail authentication
                                        bad = decap_packet_safe(sa, wire, (seq >> 32) + 1)
                                        check(f"esn wrong seq_hi {name}", "authentication" in bad.get("error", ""))
                            # Tamper: every single bit flip in the ESP part must be rejected.
                            wire = encap_packet(sa, seqs[1], inner_udp(*ia, 5), None)
                            esp_start = len(wire) - len(parse_outer(sa, wire)[1])
                            accepted = [i for i in range(esp_start * 8, len(wire) * 8)
                                        if decap_packet_safe(sa, flip(wire, i), seqs[1] >> 32)["ok"]]
                            check(f"bitflips {name} (accepted bits {accepted[:5]})", not accepted)

    # Negative cases for the strict receiver checks.
    sa4 = mk_sa("aes128gcm16")
    good = encap_packet(sa4, 7, inner_udp("10.0.0.1", "10.0.0.2", 10), None)
    esp = good[20:]
    def outer_v4(sa, body, proto=PROTO_ESP):
        return ipv4_header(0, 7, proto, sa.src, sa.dst, len(body)) + body
    def sealed(plain, seq=7, sa=sa4):
        return outer_v4(sa, esp_seal(sa, seq, seq.to_bytes(8, "big"), plain))
    inner = inner_udp("10.0.0.1", "10.0.0.2", 10)
    natt_sa = mk_sa("aes128gcm16", natt={"sport": 4500, "dport": 4500})
    natt_wire = encap_packet(natt_sa, 7, inner, None)
    cases = {
        "checksum invalid": flip(good, 8 * 10),
        "total length": good + b"\0",
        "SPI mismatch": outer_v4(sa4, struct.pack("!I", 0x2000) + esp[4:]),
        "fragment": finish_ipv4(bytearray(good[:6]) + b"\x20\x00" + good[8:20], len(esp)) + esp,
        "protocol/next header": outer_v4(sa4, esp, proto=PROTO_UDP),
        "do not match SA": ipv4_header(0, 7, PROTO_ESP, ipaddress.ip_address("192.0.2.99"), sa4.dst, len(esp)) + esp,
        "padding bytes": sealed(inner + b"\x00\x00\x00\x00\x04\x04"),
        "multiple of 4": sealed(inner + b"\x01\x02\x03\x03\x04"),
        "exceeds": sealed(b"\x01\x02\x09\x04"),
        "dummy packet": sealed(inner + esp_trailer(len(inner), PROTO_NONE)),
        "tunnel mode next header": sealed(inner + esp_trailer(len(inner), 6)),
        "sequence number 0": sealed(inner + esp_trailer(len(inner), PROTO_IPIP), seq=0),
    }
    for expect, wire in cases.items():
        check(f"reject '{expect}'", expect in decap_packet_safe(sa4, wire, 0).get("error", ""))
    bad_port = mk_sa("aes128gcm16", natt={"sport": 4500, "dport": 4501})
    check("reject natt port", "UDP ports" in decap_packet_safe(bad_port, natt_wire, 0).get("error", ""))
    udp_csum = bytearray(natt_wire)
    udp_csum[26:28] = b"\x12\x34"
    check("reject v4 udp checksum", "must be 0" in decap_packet_safe(natt_sa, bytes(udp_csum), 0).get("error", ""))
    check("encap non-ESN seq > 2^32", "non-ESN" in handle_request(
        {"op": "encap", "sa": sa_json("aes128gcm16", 20), "packets": [{"seq": 2**32, "inner": inner.hex(), "iv": None}]})["results"][0]["error"])

    # RFC 7634 Appendix A ESP example (bytes as published in draft-ietf-ipsecme-chacha20-poly1305-06
    # App. A, reproduced in strongSwan src/libipsec/tests/suites/test_chapoly.c): tunnel, seq 5.
    icmp = bytes.fromhex("45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10000736270809"
                         "0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
                         "3031323334353637")
    expect_esp = bytes.fromhex(
        "0102030400000005101112131415161724039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6"
        "14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3cbec163fac469b502773f6fb94e664da"
        "9165b82829f641e076aaa8266b7fb0f7b11b369907e1ad43")
    sa7634 = mk_sa("chacha20poly1305", src="203.0.113.153", dst="203.0.113.5", spi=0x01020304,
                   keymat=bytes(range(0x80, 0xA4)).hex())
    wire = encap_packet(sa7634, 5, icmp, bytes(range(0x10, 0x18)))
    check("RFC 7634 App. A encap", wire[20:] == expect_esp)
    check("RFC 7634 App. A decap", decap_packet_safe(sa7634, wire, 0).get("inner") == icmp.hex())

    # draft-mcgrew-gcm-test-01 (AES-GCM ESP vectors): plaintext already holds the ESP trailer.
    gcm_vectors = [  # (cipher, keymat, spi, seq64, esn, iv, plaintext, ciphertext||tag)
        ("aes128gcm16", "4c80cdefbb5d10da906ac73c3613a6342e443b68", 0x4321, 0x8765432100000000, True, "4956ed7e3b244cfe",
         "45000048699a000080114db7c0a80102c0a801010a9bf15638d301000001000000000000045f736970045f756470037369700963796265726369747902646b000021000101020201",
         "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce61bc17d768fd9732459018148f6cbe722fd04796562dfdb4"),
        ("aes256gcm16", "abbccddef00112233445566778899aababbccddef00112233445566778899aab11223344", 0x4A2CBFE3, 2, False, "0102030405060708",
         "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000020405b40101040201020201",
         "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f0545659f14e99def842d8eb335f4eecfdbf831824b4c4915956c96"),
    ]
    for cipher, keymat, spi, seq, esn, iv, pt, ct in gcm_vectors:
        sa = mk_sa(cipher, mode="transport", spi=spi, esn=esn, keymat=keymat)
        esp = esp_seal(sa, seq, bytes.fromhex(iv), bytes.fromhex(pt))
        check(f"mcgrew {cipher} seal", esp == struct.pack("!II", spi, seq & 0xFFFFFFFF) + bytes.fromhex(iv + ct))
        r = decap_packet_safe(sa, outer_v4(sa, esp), seq >> 32)
        check(f"mcgrew {cipher} decap", r.get("seq") == seq and r.get("next_header") == 1 and r.get("pad_len") == 2
              and r["inner"][40:] == pt[:-8])

    # The JSON/CLI layer: exit codes and one request through stdin/stdout.
    def run_cli(text):
        return subprocess.run([sys.executable, __file__], input=text, capture_output=True, text=True)
    p = run_cli(json.dumps({"op": "encap", "sa": sa_json("chacha20poly1305", 36),
                            "packets": [{"seq": 9, "inner": inner.hex(), "iv": None}]}))
    wire_hex = json.loads(p.stdout)["results"][0]["wire"] if p.returncode == 0 else ""
    p2 = run_cli(json.dumps({"op": "decap", "sa": sa_json("chacha20poly1305", 36), "packets": [{"seq_hi": 0, "wire": wire_hex}]}))
    check("cli roundtrip", p2.returncode == 0 and json.loads(p2.stdout)["results"][0].get("inner") == inner.hex())
    for bad in ("not json", json.dumps({"op": "frob", "sa": sa_json("aes128gcm16", 20), "packets": [{}]}),
                json.dumps({"op": "decap", "sa": sa_json("aes128gcm16", 19), "packets": []}),
                json.dumps({"op": "decap", "sa": sa_json("aes128gcm16", 20), "packets": [{"wire": "zz"}]})):
        p = run_cli(bad)
        check(f"cli exit 2 for {bad[:40]}", p.returncode == 2 and p.stderr and not p.stdout)

    for f in failures:
        print("FAIL:", f)
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


def roundtrip_matches(r, inner, wire, seq, mode, fin, fout) -> bool:
    """What decap must report for a packet our encap built (RFC 4303 s2.4 padding, tunnel outer rules)."""
    if not r["ok"] or r["inner"] != inner.hex() or r["seq"] != seq or r["iv"] != seq.to_bytes(8, "big").hex():
        return False
    payload_len = len(inner) if mode == "tunnel" else len(inner) - (20 if fin == 4 else 40)
    if r["pad_len"] != -(payload_len + 2) % 4:
        return False
    if mode == "transport":
        return r["next_header"] == PROTO_UDP
    o = r["outer"]
    if r["next_header"] != (PROTO_IPIP if fin == 4 else PROTO_IPV6) or r["inner_ip_len"] != len(inner):
        return False
    if o["tos_or_tclass"] != 0xB9 or o["ttl_or_hop_limit"] != OUTER_TTL:
        return False
    if fout == 4:
        return o["df"] is True and o["ip_id"] == seq & 0xFFFF
    # IPv6 outer: flow label copied from an IPv6 inner, else 0.
    return o["df"] is None and struct.unpack_from("!I", wire)[0] & 0xFFFFF == (0x12345 if fin == 6 else 0)


def sa_json(cipher, keymat_len):
    return {"cipher": cipher, "keymat": "ab" * keymat_len, "spi": 0x1000, "esn": False, "mode": "tunnel",
            "natt": None, "src": "192.0.2.1", "dst": "198.51.100.2"}


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def decap_packet_safe(sa, wire, seq_hi) -> dict:
    try:
        return decap_packet(sa, wire, seq_hi)
    except PacketError as e:
        return {"ok": False, "error": str(e)}


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    try:
        response = handle_request(json.loads(sys.stdin.read()))
    except (RequestError, json.JSONDecodeError) as e:
        print(f"esp_crosscheck: malformed request: {e}", file=sys.stderr)
        return 2
    json.dump(response, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
