"""Verifies coco's COSE receipts with CCF's `ccf.receipt.verify_cose` (ccf-reference §2.3): the
receipt's kid must be the service key's, vds must be CCF_LEDGER_SHA256, the inclusion proof must
carry the expected claims digest, and the COSE signature must verify over the root the proof
leads to. No coco code involved.

A receipt from before a disaster recovery was signed by an earlier service key: it comes with
the COSE endorsements from `/app/log/public/cose_endorsements` (newest first). Each is checked
with `ccf.cose.verify_cose_sign1_with_key` against the key before it (starting from the service
certificate's), and its payload is the next key, as CCF's own recovery test walks them.

Usage: python verify_cose_receipts.py RECEIPTS_JSON
RECEIPTS_JSON: {"service_cert": PEM, "receipts": [{"cose": base64, "claims_digest": hex,
"endorsements"?: [base64, ...]}, ...]}.
Prints {"verified": N, "txids": [...], "epochs": [[{"ccf.v1" header of each endorsement}]]} and
exits 0, or prints the first failure and exits 1.
"""
import base64
import json
import sys

import ccf.cose
import ccf.receipt
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import load_pem_x509_certificate


def pem(key):
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def endorsed_key(service_key, endorsements):
    """Walks the endorsements down from the service key; returns the last key and the epochs."""
    key, epochs = service_key, []
    for e in endorsements:
        phdr, _, payload = ccf.cose.verify_cose_sign1_with_key(pem(key), base64.b64decode(e))
        ccf_header = dict(phdr["ccf.v1"])
        if "epoch.end.merkle.root" in ccf_header:
            ccf_header["epoch.end.merkle.root"] = ccf_header["epoch.end.merkle.root"].hex()
        assert 6 in phdr[15], "the endorsement has an iat"
        epochs.append(ccf_header)
        key = serialization.load_der_public_key(payload)
    return key, epochs


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        bundle = json.load(f)
    service_key = load_pem_x509_certificate(bundle["service_cert"].encode()).public_key()
    txids, all_epochs = [], []
    for i, r in enumerate(bundle["receipts"]):
        try:
            key, epochs = endorsed_key(service_key, r.get("endorsements", []))
            phdr = ccf.receipt.verify_cose(
                base64.b64decode(r["cose"]), key, bytes.fromhex(r["claims_digest"])
            )
            txids.append(phdr["ccf.v1"]["txid"])
            all_epochs.append(epochs)
        except Exception as e:  # noqa: BLE001 - any failure is a verification failure
            print(f"COSE receipt {i} does not verify: {type(e).__name__}: {e}")
            sys.exit(1)
    print(json.dumps({"verified": len(bundle["receipts"]), "txids": txids, "epochs": all_epochs}))


if __name__ == "__main__":
    main()
