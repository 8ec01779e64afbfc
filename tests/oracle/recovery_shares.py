"""An independent implementation of CCF's recovery-share scheme (ccf-reference §4.5,
src/crypto/sharing.cpp, src/node/share_manager.h), written from the description, not from coco's
Rust: per-limb Shamir over GF(2^31 - 1), 10 limbs, 44-byte shares (x then limbs, u32 LE), the
wrapping key HKDF-SHA256(ikm = limb bytes, salt = empty, info = limb bytes), the ledger secret
sealed with AES-256-GCM under it with a zero IV and serialised tag || iv || ciphertext.

Prints the golden vector of coco's `sharing::tests::golden` (threshold 3, 5 shares, the k-th
coefficient drawn is 1000 + 7k, ledger secret 32 bytes of 0x11); the Rust test compares. With
`--combine HEXSHARE...` it instead recovers the secret from the given shares and prints it.
"""
import struct, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

P = 2**31 - 1
LIMBS = 10


def share_bytes(x, ys):
    return struct.pack("<I", x) + b"".join(struct.pack("<I", y) for y in ys)


def wrapping_key(secret_limbs):
    limbs = b"".join(struct.pack("<I", y) for y in secret_limbs)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=limbs).derive(limbs)


def wrap(secret_limbs, ledger_secret):
    sealed = AESGCM(wrapping_key(secret_limbs)).encrypt(bytes(12), ledger_secret, None)
    ct, tag = sealed[:-16], sealed[-16:]
    return tag + bytes(12) + ct


def combine(shares):
    secret = []
    for limb in range(LIMBS):
        total = 0
        for i, (xi, ysi) in enumerate(shares):
            num, den = 1, 1
            for j, (xj, _) in enumerate(shares):
                if i != j:
                    num = num * xj % P
                    den = den * (xj - xi) % P
            total = (total + ysi[limb] * num * pow(den, P - 2, P)) % P
        secret.append(total)
    return secret


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--combine":
        shares = []
        for h in sys.argv[2:]:
            b = bytes.fromhex(h)
            x, *ys = struct.unpack("<11I", b)
            shares.append((x, ys))
        print(share_bytes(0, combine(shares)).hex())
        return
    threshold, n = 3, 5
    draws = iter(1000 + 7 * k for k in range(10_000))
    polys = [[next(draws) for _ in range(threshold)] for _ in range(LIMBS)]
    secret = [p[0] for p in polys]
    shares = [(x, [sum(c * x**i for i, c in enumerate(p)) % P for p in polys]) for x in range(1, n + 1)]
    assert combine(shares[1:4]) == secret
    print(f"secret {share_bytes(0, secret).hex()}")
    print(f"share3 {share_bytes(*shares[2]).hex()}")
    print(f"key {wrapping_key(secret).hex()}")
    print(f"wrapped {wrap(secret, bytes([0x11] * 32)).hex()}")


main()
