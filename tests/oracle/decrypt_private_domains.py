"""Independent check of coco's private-domain encryption, written against CCF's documented rules
(ccf-reference §1.6) with the `cryptography` package — no coco code involved.

For every transaction of the ledger directory: the IV must be seqno (u64 LE) || view (u32 LE,
top bit clear for transactions); AES-256-GCM under the ledger secret, with the public domain as
AAD, must authenticate (every entry carries a tag, even with an empty private domain); and the
decrypted private domain must parse as CCF map records.

Usage: python decrypt_private_domains.py LEDGER_DIR LEDGER_SECRET_HEX EXPECTED_PRIVATE_MAP
[FROM_SEQNO [TO_SEQNO]] (only entries in that range: a secret applies to a range of seqnos once
the ledger has been rekeyed). Prints one JSON line: {"transactions": N, "private_domains": P, "expected_map_writes": W}.
"""
import json
import struct
import sys

from ccf.ledger import Ledger
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def parse_records(buf):
    """CCF map records: name, read version, read count, writes, removes (all LE u64 sized)."""
    pos, maps = 0, {}

    def u64():
        nonlocal pos
        (v,) = struct.unpack_from("<Q", buf, pos)
        pos += 8
        return v

    def sized():
        nonlocal pos
        n = u64()
        b = bytes(buf[pos:pos + n])
        if len(b) != n:
            raise ValueError("record runs past the end")
        pos += n
        return b

    while pos < len(buf):
        name = sized().decode()
        u64()  # read version
        if u64() != 0:
            raise ValueError("read count must be 0")
        writes = {sized(): sized() for _ in range(u64())}
        removes = [sized() for _ in range(u64())]
        maps[name] = (writes, removes)
    return maps


def main():
    ledger_dir, secret_hex, expected_map = sys.argv[1], sys.argv[2], sys.argv[3]
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    last = int(sys.argv[5]) if len(sys.argv) > 5 else 2**64
    aead = AESGCM(bytes.fromhex(secret_hex))
    n_tx = n_private = n_expected = 0
    for chunk in Ledger([ledger_dir], committed_only=False):
        for tx in chunk:
            if not first <= tx.get_public_domain().get_seqno() <= last:
                continue
            raw = tx.get_raw_tx()
            n_tx += 1
            # entry header (8) | tag (16) | iv (12) | public len (8) | public | private
            tag, iv = raw[8:24], raw[24:36]
            (public_len,) = struct.unpack_from("<Q", raw, 36)
            public = raw[44:44 + public_len]
            private = raw[44 + public_len:]
            seqno, view_word = struct.unpack("<QI", iv)
            pd = tx.get_public_domain()
            assert seqno == pd.get_seqno(), f"IV seqno {seqno} != entry seqno {pd.get_seqno()}"
            assert view_word & 0x80000000 == 0, "transaction IVs never carry the snapshot bit"
            view = int(str(tx.get_txid()).split(".")[0])
            assert view_word == view, f"IV view {view_word} != txid view {view}"
            plain = aead.decrypt(iv, private + tag, public)  # raises InvalidTag on any mismatch
            if plain:
                n_private += 1
                maps = parse_records(plain)
                for name in maps:
                    assert not name.startswith("public:"), f"public map {name} inside the private domain"
                if expected_map in maps:
                    n_expected += len(maps[expected_map][0])
    print(json.dumps({"transactions": n_tx, "private_domains": n_private, "expected_map_writes": n_expected}))


if __name__ == "__main__":
    main()
