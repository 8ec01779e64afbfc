//! The keys and certificates a node holds. Created by the host (key generation needs the OS
//! random generator) and handed to the core.

use std::sync::Arc;

use coco_codec::tables;
use coco_crypto::{CryptoError, EcKeyPair, RsaKeyPair, SubjectAltName, Validity};

/// A node's identity and the service identity it signs with.
pub struct NodeIdentity {
    /// Node identity key: signs Merkle roots in `public:ccf.internal.signatures`.
    pub node_key: EcKeyPair,
    /// Hex SHA-256 of the node public key (SPKI DER): CCF's node id.
    pub node_id: String,
    /// Node certificate endorsed by the service identity.
    pub node_cert_pem: String,
    /// The node's certificate signing request (`nodes.info.certificate_signing_request`):
    /// governance endorses it again when it renews the node certificate.
    pub node_csr_pem: String,
    /// The node's self-signed certificate (`GET /node/self_signed_certificate`).
    pub node_self_signed_cert_pem: String,
    /// Service identity key: signs COSE root signatures. A future primary needs it too, which is
    /// why CCF ships it to joiners in `NetworkInfo`.
    pub service_key: Arc<EcKeyPair>,
    pub service_cert_pem: String,
    /// RSA key for ledger-secret distribution (`encryption_pub_key` in `nodes.info`).
    pub encryption_key: RsaKeyPair,
    /// SHA-256 of the node executable: the host data of the node's virtual attestation. The
    /// host sets it; engine tests leave it zero.
    pub virtual_host_data: [u8; 32],
}

impl NodeIdentity {
    /// Derives the node's certificates from its key and the service identity: the
    /// service-endorsed certificate and the self-signed one (subject `CN=<node_cn>`, the given
    /// SANs and validity), and the CSR governance endorses again on renewal.
    pub fn new(
        node_key: EcKeyPair,
        node_cn: &str,
        sans: &[SubjectAltName],
        validity: Validity,
        service_key: Arc<EcKeyPair>,
        service_cert_pem: String,
        encryption_key: RsaKeyPair,
    ) -> Result<Self, CryptoError> {
        let spki = node_key.public_key_spki_der();
        let node_cert_pem = coco_crypto::endorsed_cert(
            &spki,
            node_cn,
            sans,
            &service_key,
            &service_cert_pem,
            validity,
        )?;
        Ok(NodeIdentity {
            node_id: coco_crypto::spki_fingerprint_hex(&spki),
            node_cert_pem,
            node_csr_pem: coco_crypto::certificate_signing_request(&node_key, node_cn, sans)?,
            node_self_signed_cert_pem: coco_crypto::self_signed_cert(&node_key, node_cn, validity)?,
            node_key,
            service_key,
            service_cert_pem,
            encryption_key,
            virtual_host_data: [0; 32],
        })
    }

    /// The identity of a node that joined: its own key, self-signed certificate and CSR, and
    /// what the primary sent in `NetworkInfo` (endorsed certificate, service identity).
    #[allow(clippy::too_many_arguments)]
    pub fn joined(
        node_key: EcKeyPair,
        node_self_signed_cert_pem: String,
        node_csr_pem: String,
        node_cert_pem: String,
        service_key: Arc<EcKeyPair>,
        service_cert_pem: String,
        encryption_key: RsaKeyPair,
        virtual_host_data: [u8; 32],
    ) -> Self {
        NodeIdentity {
            node_id: coco_crypto::spki_fingerprint_hex(&node_key.public_key_spki_der()),
            node_key,
            node_cert_pem,
            node_csr_pem,
            node_self_signed_cert_pem,
            service_key,
            service_cert_pem,
            encryption_key,
            virtual_host_data,
        }
    }

    /// This node's attestation (a virtual quote binding its identity key).
    pub fn quote_info(&self) -> tables::QuoteInfo {
        crate::attestation::virtual_quote_info(
            &self.virtual_host_data,
            &self.node_key.public_key_spki_der(),
        )
    }

    /// This node's `nodes.info` record as a Trusted node with a virtual quote.
    pub fn trusted_node_info(
        &self,
        node_to_node_interface: tables::NetInterface,
        rpc_interfaces: std::collections::BTreeMap<String, tables::NetInterface>,
    ) -> tables::NodeInfo {
        tables::NodeInfo {
            node_to_node_interface,
            rpc_interfaces,
            will_locally_seal_ledger_secrets: false,
            quote_info: self.quote_info(),
            encryption_pub_key: self.encryption_key.public_key_pem(),
            status: tables::NodeStatus::Trusted,
            ledger_secret_seqno: Some(1),
            code_digest: Some(crate::attestation::VIRTUAL_MEASUREMENT.to_owned()),
            certificate_signing_request: Some(self.node_csr_pem.clone()),
            public_key: Some(self.node_key.public_key_pem()),
            node_data: serde_json::Value::Null,
            cert: None,
            retired_committed: false,
        }
    }

    /// The COSE `kid` of the service key: the ASCII hex SHA-256 of its SPKI DER.
    pub fn service_kid_hex(&self) -> String {
        coco_crypto::spki_fingerprint_hex(&self.service_key.public_key_spki_der())
    }
}
