#!/usr/bin/env python3
"""Checks every hand-transcribed vector in this directory against Python's own hmac and the
`cryptography` package (a transcription error would show up as a mismatch), and regenerates the
Python-derived vectors (python_*.json), written from the RFC text independently of the Rust code.

    python3 control/tests/vectors/verify_vectors.py          # check, and rewrite python_*.json
"""
import hashlib, hmac, json, os, re, struct, sys
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

HERE = os.path.dirname(os.path.abspath(__file__))
H = bytes.fromhex
HASH = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512,
        "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
fails = 0

def check(name, got, want):
    global fails
    if got != want:
        fails += 1
        print("MISMATCH", name, got.hex() if isinstance(got, bytes) else got)

def prf(h, k, d): return hmac.new(k, d, HASH[h]).digest()
def prf_plus(h, k, s, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(h, k, t + s + bytes([i])); out += t; i += 1
    return out[:n]

# --- RFC 4868 / RFC 2202 ---
v = json.load(open(os.path.join(HERE, "rfc4868.json")))
for c in v["prf"]:
    for h in ("sha256", "sha384", "sha512"):
        check(c["name"] + h, prf(h, H(c["key"]), H(c["data"])), H(c[h]))
for c in v["auth"] + [dict(x, hash="sha1") for x in v["sha1_96"]]:
    full = prf(c["hash"], H(c["key"]), H(c["data"]))
    if c["prf"]: check(c["name"], full, H(c["prf"]))
    check(c["name"] + " icv", full[:len(H(c["icv"]))], H(c["icv"]))

# --- RFC 5903 ---
curves = {19: ec.SECP256R1(), 20: ec.SECP384R1(), 21: ec.SECP521R1()}
for c in json.load(open(os.path.join(HERE, "rfc5903.json"))):
    cv = curves[c["group"]]; n = len(H(c["gix"]))
    ki = ec.derive_private_key(int(c["i"], 16), cv); kr = ec.derive_private_key(int(c["r"], 16), cv)
    for k, x, y in ((ki, "gix", "giy"), (kr, "grx", "gry")):
        p = k.public_key().public_numbers()
        check("5903 pub", p.x.to_bytes(n, "big") + p.y.to_bytes(n, "big"), H(c[x]) + H(c[y]))
    check("5903 gir", ki.exchange(ec.ECDH(), kr.public_key()), H(c["girx"]))

# --- IKEv2 KDF: OpenSSL/ACVP and NIST CAVP ---
blocks = open(os.path.join(HERE, "ikev2_kdf_openssl.txt")).read().split("\n\n")
count = 0
for b in blocks:
    kv = dict(re.findall(r"^(?:Ctrl\.(\w+)|(Output)) = (?:\w+:)?(\S+)$", b, re.M) and
              [(m[0] or m[1], m[2]) for m in re.findall(r"^(?:Ctrl\.(\w+)|(Output)) = (?:\w+:)?(\S+)$", b, re.M)])
    if "Output" not in kv: continue
    kv = {k.replace("hex", ""): val for k, val in kv.items()}
    h, ni, nr, out, mode = kv["digest"], H(kv["ni"]), H(kv["nr"]), H(kv["Output"]), kv["mode"]
    if mode == "0": got = prf(h, ni + nr, H(kv["secret"]))
    elif mode == "2": got = prf(h, H(kv["key"]), H(kv["secret"]) + ni + nr)
    elif "seed" in kv: got = prf_plus(h, H(kv["seed"]), ni + nr + H(kv["spii"]) + H(kv["spir"]), len(out))
    else: got = prf_plus(h, H(kv["key"]), H(kv.get("secret", "")) + ni + nr, len(out))
    check("openssl kdf", got, out); count += 1
assert count == 10, count
c = json.load(open(os.path.join(HERE, "cavp_ikev2_sha1.json")))
ni, nr = H(c["ni"]), H(c["nr"])
sk = prf("sha1", ni + nr, H(c["gir"])); check("cavp skeyseed", sk, H(c["skeyseed"]))
dkm = prf_plus("sha1", sk, ni + nr + H(c["spii"]) + H(c["spir"]), len(H(c["dkm"]))); check("cavp dkm", dkm, H(c["dkm"]))
skd = dkm[:20]
check("cavp child", prf_plus("sha1", skd, ni + nr, len(H(c["dkm_child"]))), H(c["dkm_child"]))
check("cavp child dh", prf_plus("sha1", skd, H(c["gir_new"]) + ni + nr, len(H(c["dkm_child_dh"]))), H(c["dkm_child_dh"]))
check("cavp rekey", prf("sha1", skd, H(c["gir_new"]) + ni + nr), H(c["skeyseed_rekey"]))

# --- Python-derived vectors (RFC 3526 MODP with pow(); RFC 7296 key split; SK payloads) ---
P = {14: int(open(os.path.join(HERE, "modp2048.hex")).read(), 16), 15: int(open(os.path.join(HERE, "modp3072.hex")).read(), 16)}
modp = []
for g, xbits in ((14, 256), (15, 384)):
    p = P[g]; L = p.bit_length() // 8
    x = int.from_bytes(hashlib.sha512(b"xipsec modp x %d" % g).digest() * 2, "big") >> (1024 - xbits)
    y = int.from_bytes(hashlib.sha512(b"xipsec modp y %d" % g).digest() * 2, "big") >> (1024 - xbits)
    gx, gy, gxy = pow(2, x, p), pow(2, y, p), pow(pow(2, y, p), x, p)
    modp.append(dict(group=g, x=x.to_bytes(xbits // 8, "big").hex(), y=y.to_bytes(xbits // 8, "big").hex(),
                     gx=gx.to_bytes(L, "big").hex(), gy=gy.to_bytes(L, "big").hex(), gxy=gxy.to_bytes(L, "big").hex()))

def ike_keys(h, prf_len, integ_len, encr_len, skeyseed, ni, nr, spii, spir):
    lens = [prf_len, integ_len, integ_len, encr_len, encr_len, prf_len, prf_len]
    s = prf_plus(h, skeyseed, ni + nr + spii + spir, sum(lens)); out = []
    for n in lens: out.append(s[:n].hex()); s = s[n:]
    return dict(zip(["sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr"], out))

ni, nr = bytes(range(32)), bytes(range(100, 148))
spii, spir = H("0102030405060708"), H("a1a2a3a4a5a6a7a8")
gir, gir_new = hashlib.sha512(b"g^ir").digest() * 4, hashlib.sha512(b"g^ir new").digest() * 4
keys = []
for name, h, plen, ilen, elen, child_e, child_i in (
        ("aes-gcm-256/prf-sha384", "sha384", 48, 0, 36, 20, 0),          # ESP AES-GCM-128
        ("aes-cbc-128/sha2-256-128/prf-sha256", "sha256", 32, 32, 16, 36, 0),  # ESP ChaCha20
        ("chacha20/prf-sha512", "sha512", 64, 0, 36, 16, 48),             # ESP AES-CBC-128 + SHA-384
        ("aes-cbc-256/sha1-96/prf-sha1", "sha1", 20, 20, 32, 32, 64)):
    skeyseed = prf(h, ni + nr, gir)
    k = ike_keys(h, plen, ilen, elen, skeyseed, ni, nr, spii, spir)
    skd = H(k["sk_d"])
    def child(seed):
        s = prf_plus(h, skd, seed, 2 * (child_e + child_i))
        return dict(encr_i=s[:child_e].hex(), integ_i=s[child_e:child_e + child_i].hex(),
                    encr_r=s[child_e + child_i:2 * child_e + child_i].hex(), integ_r=s[2 * child_e + child_i:].hex())
    keys.append(dict(suite=name, skeyseed=skeyseed.hex(), ike=k, child_encr_len=child_e, child_integ_len=child_i,
                     child=child(ni + nr), child_pfs=child(gir_new + ni + nr),
                     rekey_skeyseed=prf(h, skd, gir_new + ni + nr).hex()))
common = dict(ni=ni.hex(), nr=nr.hex(), spii=spii.hex(), spir=spir.hex(), gir=gir.hex(), gir_new=gir_new.hex())

# SK payloads: an INFORMATIONAL request carrying a Delete payload (IKE SA), RFC 7296 §3.12.
inner = H("0000000801000000")          # Delete: next 0, len 8, protocol IKE, SPI size 0, 0 SPIs
def header(total):                     # SPIi SPIr, next=SK(46), 2.0, INFORMATIONAL(37), flags I, msgid 7
    return spii + spir + bytes([46, 0x20, 37, 0x08]) + struct.pack(">II", 7, total)
sk = []
def add(name, suite, ek, ak, iv, body, icv_fn, seal_fn):
    sealed_len = len(iv) + len(body) + icv_fn()
    aad = header(28 + 4 + sealed_len) + bytes([42, 0]) + struct.pack(">H", 4 + sealed_len)
    ct, tag = seal_fn(aad, body)
    sk.append(dict(name=name, suite=suite, encr_key=ek.hex(), integ_key=ak.hex(), iv=iv.hex(), plaintext=inner.hex(),
                   message=(aad + iv + ct + tag).hex()))
# AES-CBC-256 + HMAC-SHA2-256-128: pad to 16: 8 + 7 pad + 1
ek, ak, iv = bytes(range(0x40, 0x60)), bytes(range(0x80, 0xa0)), bytes(range(0xc0, 0xd0))
body = inner + bytes(7) + bytes([7])
def seal_cbc(aad, body):
    e = Cipher(algorithms.AES(ek), modes.CBC(iv)).encryptor(); ct = e.update(body) + e.finalize()
    return ct, hmac.new(ak, aad + iv + ct, hashlib.sha256).digest()[:16]
add("aes-cbc-256/hmac-sha2-256-128", "cbc256-sha256", ek, ak, iv, body, lambda: 16, seal_cbc)
# AES-GCM-128 (16-octet ICV): key | salt, IV = counter 5, no padding
gk, salt, giv = bytes(range(0x10, 0x20)), H("cafebabe"), struct.pack(">Q", 5)
gbody = inner + bytes([0])
def seal_gcm(aad, body):
    out = AESGCM(gk).encrypt(salt + giv, body, aad); return out[:-16], out[-16:]
add("aes-gcm-16-128", "gcm128", gk + salt, b"", giv, gbody, lambda: 16, seal_gcm)
ck, csalt, civ = bytes(range(0x20, 0x40)), H("01020304"), struct.pack(">Q", 0)
def seal_chacha(aad, body):
    out = ChaCha20Poly1305(ck).encrypt(csalt + civ, body, aad); return out[:-16], out[-16:]
add("chacha20-poly1305", "chacha", ck + csalt, b"", civ, gbody, lambda: 16, seal_chacha)

json.dump(dict(generated_by="verify_vectors.py", modp=modp, keys=dict(common, suites=keys), sk=sk),
          open(os.path.join(HERE, "python_derived.json"), "w"), indent=1)
print("all transcribed vectors check out" if fails == 0 else f"{fails} mismatches")
sys.exit(1 if fails else 0)
