"""Verifies coco's JSON receipts with CCF's own `ccf.receipt` module (ccf-reference §2.2):
recompute the leaf from its components (or take `leaf` for signature transactions), fold the
proof with `ccf.receipt.root`, check the node's signature over the root with
`ccf.receipt.verify`, and the node certificate's endorsement by the service certificate with
`ccf.receipt.check_endorsements` (through the receipt's `service_endorsements` when an earlier
service identity endorsed the node, after a disaster recovery). No coco code involved.

Usage: python verify_receipts.py RECEIPTS_JSON
RECEIPTS_JSON: {"service_cert": PEM, "receipts": [receipt, ...]}.
Prints one JSON line {"verified": N} and exits 0 if every receipt verifies; otherwise prints the
first failure and exits 1.
"""
import json
import sys
from hashlib import sha256

import ccf.receipt
from cryptography.x509 import load_pem_x509_certificate


def leaf_of(receipt):
    components = receipt.get("leaf_components")
    if components is None:
        return receipt["leaf"]
    return sha256(
        bytes.fromhex(components["write_set_digest"])
        + sha256(components["commit_evidence"].encode()).digest()
        + bytes.fromhex(components["claims_digest"])
    ).hexdigest()


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        bundle = json.load(f)
    service_cert = load_pem_x509_certificate(bundle["service_cert"].encode())
    for i, receipt in enumerate(bundle["receipts"]):
        try:
            node_cert = load_pem_x509_certificate(receipt["cert"].encode())
            root = ccf.receipt.root(leaf_of(receipt), receipt["proof"])
            ccf.receipt.verify(root, receipt["signature"], node_cert)
            endorsements = [
                load_pem_x509_certificate(e.encode())
                for e in receipt.get("service_endorsements", [])
            ]
            ccf.receipt.check_endorsements(node_cert, service_cert, endorsements)
        except Exception as e:  # noqa: BLE001 - any failure is a verification failure
            print(f"receipt {i} does not verify: {type(e).__name__}: {e}")
            sys.exit(1)
    print(json.dumps({"verified": len(bundle["receipts"])}))


if __name__ == "__main__":
    main()
