"""Verifies coco's COSE receipts with CCF's `ccf.receipt.verify_cose` (ccf-reference §2.3): the
receipt's kid must be the service key's, vds must be CCF_LEDGER_SHA256, the inclusion proof must
carry the expected claims digest, and the COSE signature must verify over the root the proof
leads to. No coco code involved.

Usage: python verify_cose_receipts.py RECEIPTS_JSON
RECEIPTS_JSON: {"service_cert": PEM, "receipts": [{"cose": base64, "claims_digest": hex}, ...]}.
Prints {"verified": N, "txids": [...]} and exits 0, or prints the first failure and exits 1.
"""
import base64
import json
import sys

import ccf.receipt
from cryptography.x509 import load_pem_x509_certificate


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        bundle = json.load(f)
    service_key = load_pem_x509_certificate(bundle["service_cert"].encode()).public_key()
    txids = []
    for i, r in enumerate(bundle["receipts"]):
        try:
            phdr = ccf.receipt.verify_cose(
                base64.b64decode(r["cose"]), service_key, bytes.fromhex(r["claims_digest"])
            )
            txids.append(phdr["ccf.v1"]["txid"])
        except Exception as e:  # noqa: BLE001 - any failure is a verification failure
            print(f"COSE receipt {i} does not verify: {type(e).__name__}: {e}")
            sys.exit(1)
    print(json.dumps({"verified": len(bundle["receipts"]), "txids": txids}))


if __name__ == "__main__":
    main()
