//! The keys and certificates a node holds. Created by the host (key generation needs the OS
//! random generator) and handed to the core.

use coco_crypto::{EcKeyPair, RsaKeyPair};

/// A node's identity and the service identity it signs with.
pub struct NodeIdentity {
    /// Node identity key: signs Merkle roots in `public:ccf.internal.signatures`.
    pub node_key: EcKeyPair,
    /// Hex SHA-256 of the node public key (SPKI DER): CCF's node id.
    pub node_id: String,
    /// Node certificate endorsed by the service identity.
    pub node_cert_pem: String,
    /// The node's self-signed certificate (`GET /node/self_signed_certificate`).
    pub node_self_signed_cert_pem: String,
    /// Service identity key: signs COSE root signatures. A future primary needs it too, which is
    /// why CCF ships it to joiners in `NetworkInfo`.
    pub service_key: EcKeyPair,
    pub service_cert_pem: String,
    /// RSA key for ledger-secret distribution (`encryption_pub_key` in `nodes.info`).
    pub encryption_key: RsaKeyPair,
}

impl NodeIdentity {
    /// The COSE `kid` of the service key: the ASCII hex SHA-256 of its SPKI DER.
    pub fn service_kid_hex(&self) -> String {
        coco_crypto::spki_fingerprint_hex(&self.service_key.public_key_spki_der())
    }
}
