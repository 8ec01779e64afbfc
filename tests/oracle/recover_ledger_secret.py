"""Recovers a coco service's ledger secret the way a CCF consortium would, as an oracle for
coco's recovery shares: reads the latest `public:ccf.internal.recovery_shares` from the ledger
with CCF's own `ccf.ledger` reader, decrypts each given member's encrypted share with the
member's RSA key (OAEP, SHA-256, as CCF's submit_recovery_share.sh does with openssl), combines
the shares (tests/oracle/recovery_shares.py's independent Shamir code) and unwraps the ledger
secret. Prints it as hex.

Usage: recover_ledger_secret.py LEDGER_DIR ENC_PRIVKEY_PEM ENCRYPTED_SHARE_B64 [...]
"""
import base64, json, os, struct, sys
import ccf.ledger
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.argv, args = sys.argv[:1], sys.argv[1:]
here = os.path.dirname(os.path.abspath(__file__))
ns = {}
exec(open(os.path.join(here, "recovery_shares.py")).read().replace("\nmain()\n", "\n"), ns)

ledger_dir, pairs = args[0], args[1:]
info = None
for chunk in ccf.ledger.Ledger([ledger_dir], committed_only=False):
    for tx in chunk:
        v = tx.get_public_domain().get_tables().get("public:ccf.internal.recovery_shares")
        if v:
            info = json.loads(v[bytes(8)])
assert info is not None, "no recovery shares in the ledger"

shares = []
for key_path, encrypted in zip(pairs[::2], pairs[1::2]):
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
    raw = key.decrypt(
        base64.b64decode(encrypted),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    assert len(raw) == 44, len(raw)
    x, *ys = struct.unpack("<11I", raw)
    shares.append((x, ys))
secret = shares[0][1] if shares[0][0] == 0 else ns["combine"](shares)
wrapped = base64.b64decode(info["wrapped_latest_ledger_secret"])
tag, iv, ct = wrapped[:16], wrapped[16:28], wrapped[28:]
print(AESGCM(ns["wrapping_key"](secret)).decrypt(iv, ct + tag, None).hex())
