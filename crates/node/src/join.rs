//! `POST /node/join` (ccf-reference §4.4): a new node asks to join the service.
//!
//! The joiner calls over TLS with its self-signed certificate as client certificate; its node id
//! is the hex SHA-256 of that certificate's public key. The primary checks that the CSR is for the
//! same key, that the node-to-node address is not already taken, and the node's attestation; then
//! records the node in `nodes.info` — Trusted at once while the service is Opening (with a
//! service-endorsed certificate issued from its CSR), otherwise Pending until members pass
//! `transition_node_to_trusted`. The joiner polls; once Trusted, the answer carries what CCF's
//! `NetworkInfo` carries: the ledger secrets, the service identity with its private key, the
//! service status, the node's endorsed certificate and the COSE signature configuration. Those
//! secrets are protected by the TLS channel to the primary, as in CCF.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coco_app_api::{ApiError, Caller, ErrorCode, Request, Response, StatusCode};
use coco_codec::tables;
use coco_kv::Tx;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Node, attestation, ccf_json};

/// The joiner's interfaces (CCF's `NodeInfoNetwork`; legacy v1 fields are ignored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInfoNetwork {
    pub node_to_node_interface: tables::NetInterface,
    pub rpc_interfaces: BTreeMap<String, tables::NetInterface>,
}

/// CCF's `JoinNetworkNodeToNode::In`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node_info_network: NodeInfoNetwork,
    pub quote_info: tables::QuoteInfo,
    /// RSA public key (PEM) for ledger-secret distribution.
    pub public_encryption_key: String,
    #[serde(default)]
    pub startup_seqno: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_signing_request: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub node_data: Value,
}

/// One ledger secret as `NetworkInfo` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSecretInfo {
    /// Base64 of the raw 32-byte key.
    pub raw_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_stored_version: Option<u64>,
}

/// The service identity, private key included: a future primary signs with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceIdentity {
    pub cert: String,
    /// PKCS#8 PEM.
    pub priv_key: String,
}

/// `cose_signatures_config`: the CWT issuer and subject of COSE root signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoseSignaturesConfig {
    pub issuer: String,
    pub subject: String,
}

/// CCF's `NetworkInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub public_only: bool,
    pub last_recovered_signed_idx: u64,
    pub consensus_type: String,
    pub reconfiguration_type: String,
    /// Ledger secret version (the first seqno it encrypts) → secret.
    pub ledger_secrets: BTreeMap<u64, LedgerSecretInfo>,
    pub identity: ServiceIdentity,
    pub service_status: tables::ServiceStatus,
    pub endorsed_certificate: String,
    pub cose_signatures_config: CoseSignaturesConfig,
}

impl NetworkInfo {
    /// Every ledger secret, decoded.
    pub fn ledger_secrets(&self) -> Result<crate::secrets::LedgerSecrets, String> {
        let mut versions = Vec::new();
        for (from, info) in &self.ledger_secrets {
            let raw: [u8; 32] = B64
                .decode(&info.raw_key)
                .map_err(|e| format!("ledger secret is not base64: {e}"))?
                .try_into()
                .map_err(|_| "ledger secret is not 32 bytes".to_owned())?;
            versions.push((*from, raw, info.previous_secret_stored_version));
        }
        crate::secrets::LedgerSecrets::from_versions(versions)
    }

    /// The latest ledger secret, decoded.
    pub fn latest_ledger_secret(&self) -> Result<[u8; 32], String> {
        let (_, latest) = self
            .ledger_secrets
            .last_key_value()
            .ok_or("network info without ledger secrets")?;
        let raw = B64
            .decode(&latest.raw_key)
            .map_err(|e| format!("ledger secret is not base64: {e}"))?;
        raw.try_into()
            .map_err(|_| "ledger secret is not 32 bytes".to_owned())
    }
}

/// CCF's `JoinNetworkNodeToNode::Out`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    pub node_status: tables::NodeStatus,
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_info: Option<NetworkInfo>,
}

fn bad(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// The address a node's node-to-node interface is reached at.
pub(crate) fn published(interface: &tables::NetInterface) -> &str {
    if interface.published_address.is_empty() {
        &interface.bind_address
    } else {
        &interface.published_address
    }
}

impl Node {
    pub(crate) fn join_endpoint(
        &mut self,
        tx: &mut Tx,
        request: &Request,
        caller: &Caller,
    ) -> Result<Response, ApiError> {
        let Caller::AnyCert { cert } = caller else {
            return Err(ApiError::internal(
                "/node/join is served only to callers with a TLS certificate",
            ));
        };
        let spki = coco_crypto::cert_public_key_spki_der(&cert.der).map_err(|e| {
            bad(
                ErrorCode::InvalidInput,
                format!("Unusable TLS client certificate: {e}."),
            )
        })?;
        let node_id = coco_crypto::spki_fingerprint_hex(&spki);
        let body: JoinRequest = serde_json::from_slice(&request.body)
            .map_err(|e| ApiError::invalid_input(format!("Invalid join request: {e}.")))?;

        if let Some(raw) = tx.get(tables::NODES_INFO, node_id.as_bytes()) {
            let info: tables::NodeInfo = tables::from_ccf_json(&raw)
                .map_err(|e| ApiError::internal(format!("nodes.info of {node_id}: {e}")))?;
            return match info.status {
                tables::NodeStatus::Trusted => self.joined_response(tx, node_id),
                tables::NodeStatus::Pending => Ok(Response::ok_json(&JoinResponse {
                    node_status: tables::NodeStatus::Pending,
                    node_id,
                    network_info: None,
                })),
                tables::NodeStatus::Retired => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::NodeAlreadyRetired,
                    format!("Node {node_id} is retired and cannot join again."),
                )),
            };
        }

        if self
            .recovery
            .as_ref()
            .is_some_and(|r| r.started_from_snapshot())
        {
            // A joiner of a recovering service replicates its whole ledger, and this node
            // recovered from a snapshot without the entries before it.
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "The service is recovering from a snapshot: new nodes can join once it is open \
                 (from the snapshot it takes then).",
            ));
        }
        let address = published(&body.node_info_network.node_to_node_interface).to_owned();
        if address.is_empty() {
            return Err(ApiError::invalid_input(
                "The joining node has no node-to-node address.",
            ));
        }
        let mut taken = None;
        tx.for_each(tables::NODES_INFO, |k, v| {
            if let Ok(other) = tables::from_ccf_json::<tables::NodeInfo>(v)
                && other.status != tables::NodeStatus::Retired
                && published(&other.node_to_node_interface) == address
            {
                taken = Some(String::from_utf8_lossy(k).into_owned());
            }
            taken.is_none()
        });
        if let Some(other) = taken {
            return Err(bad(
                ErrorCode::NodeAlreadyExists,
                format!("Node {other} already uses the node-to-node address {address}."),
            ));
        }
        let csr = body
            .certificate_signing_request
            .as_deref()
            .ok_or_else(|| ApiError::invalid_input("Missing certificate_signing_request."))?;
        let csr_spki = coco_crypto::csr_public_key_spki_der(csr).map_err(|e| {
            bad(
                ErrorCode::CSRPublicKeyInvalid,
                format!("Invalid certificate signing request: {e}."),
            )
        })?;
        if csr_spki != spki {
            return Err(bad(
                ErrorCode::CSRPublicKeyInvalid,
                "Public key in the CSR does not match the TLS client certificate.",
            ));
        }
        coco_crypto::rsa_public_key_size_bits(&body.public_encryption_key)
            .map_err(|e| ApiError::invalid_input(format!("Invalid public_encryption_key: {e}.")))?;
        let measurement = attestation::verify_quote(tx, &body.quote_info, &spki).map_err(|e| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidQuote,
                e.to_string(),
            )
        })?;

        let opening = tx
            .get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
            .and_then(|v| tables::from_ccf_json::<tables::ServiceInfo>(&v).ok())
            .is_some_and(|s| {
                // CCF trusts joiners at once while the service is opening or recovering.
                matches!(
                    s.status,
                    tables::ServiceStatus::Opening | tables::ServiceStatus::Recovering
                )
            });
        let status = if opening {
            tables::NodeStatus::Trusted
        } else {
            tables::NodeStatus::Pending
        };
        let info = tables::NodeInfo {
            node_to_node_interface: body.node_info_network.node_to_node_interface,
            rpc_interfaces: body.node_info_network.rpc_interfaces,
            will_locally_seal_ledger_secrets: false,
            quote_info: body.quote_info,
            encryption_pub_key: body.public_encryption_key,
            status,
            ledger_secret_seqno: opening.then(|| self.secrets.latest().applies_from()),
            code_digest: Some(measurement),
            certificate_signing_request: Some(csr.to_owned()),
            public_key: Some(coco_crypto::spki_der_to_pem(&spki)),
            node_data: body.node_data,
            cert: None,
            retired_committed: false,
        };
        tx.put(
            tables::NODES_INFO,
            Bytes::from(node_id.clone()),
            ccf_json(&info),
        );
        if !opening {
            return Ok(Response::ok_json(&JoinResponse {
                node_status: status,
                node_id,
                network_info: None,
            }));
        }
        // Trusted at once: endorse the CSR for the validity of the node's own certificate.
        let validity = coco_crypto::cert_validity(&cert.der).map_err(|e| {
            ApiError::invalid_input(format!("Unusable TLS client certificate: {e}."))
        })?;
        let endorsed = coco_crypto::endorse_csr(
            csr,
            &self.identity.service_key,
            &self.service.service_cert_pem,
            validity,
        )
        .map_err(|e| {
            bad(
                ErrorCode::CSRPublicKeyInvalid,
                format!("The certificate signing request cannot be endorsed: {e}."),
            )
        })?;
        tx.put(
            tables::NODES_ENDORSED_CERTIFICATES,
            Bytes::from(node_id.clone()),
            Bytes::from(endorsed),
        );
        self.joined_response(tx, node_id)
    }

    /// The answer to a Trusted node: everything it needs to become a backup.
    fn joined_response(&self, tx: &mut Tx, node_id: String) -> Result<Response, ApiError> {
        let endorsed = tx
            .get(tables::NODES_ENDORSED_CERTIFICATES, node_id.as_bytes())
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "Trusted node {node_id} has no endorsed certificate."
                ))
            })?;
        let service = tx
            .get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
            .and_then(|v| tables::from_ccf_json::<tables::ServiceInfo>(&v).ok())
            .ok_or_else(|| ApiError::internal("The service has no service.info record."))?;
        // After a disaster recovery, entries up to the dead service's last signature are
        // history to a joiner: it starts from a snapshot taken since, or replays them (public
        // only while the previous service's secrets are not back).
        let last_recovered_signed_idx =
            match (service.recovery_count, service.current_service_create_txid) {
                (Some(n), Some(created)) if n > 0 => created.seqno - 1,
                _ => 0,
            };
        let public_only = self.recovery.as_ref().is_some_and(|r| r.awaiting_secrets());
        let describe = |secrets: &crate::secrets::LedgerSecrets| {
            secrets
                .all()
                .iter()
                .map(|s| {
                    (
                        s.applies_from(),
                        LedgerSecretInfo {
                            raw_key: B64.encode(s.raw()),
                            previous_secret_stored_version: secrets
                                .previous_stored(s.applies_from()),
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>()
        };
        let mut ledger_secrets = describe(&self.secrets);
        if let Some(previous) = self
            .recovery
            .as_ref()
            .and_then(|r| r.secrets_being_replayed())
        {
            ledger_secrets.extend(describe(previous));
        }
        let network_info = NetworkInfo {
            public_only,
            last_recovered_signed_idx,
            consensus_type: "CFT".to_owned(),
            reconfiguration_type: "OneTransaction".to_owned(),
            ledger_secrets,
            identity: ServiceIdentity {
                cert: service.cert,
                priv_key: self.identity.service_key.to_pkcs8_pem(),
            },
            service_status: service.status,
            endorsed_certificate: String::from_utf8_lossy(&endorsed).into_owned(),
            cose_signatures_config: CoseSignaturesConfig {
                issuer: self.config.cose_issuer.clone(),
                subject: self.config.cose_subject.clone(),
            },
        };
        Ok(Response::ok_json(&JoinResponse {
            node_status: tables::NodeStatus::Trusted,
            node_id,
            network_info: Some(network_info),
        }))
    }
}

/// A node about to join: its keys and certificates before the service endorses it. The host
/// generates the keys; this builds the join request and, from the primary's `NetworkInfo`, the
/// node's [`NodeIdentity`].
pub struct Joiner {
    pub node_key: coco_crypto::EcKeyPair,
    /// The TLS client certificate of the join request; its key is the node identity.
    pub self_signed_cert_pem: String,
    pub csr_pem: String,
    pub encryption_key: coco_crypto::RsaKeyPair,
    /// SHA-256 of the node executable (host data of the virtual attestation).
    pub virtual_host_data: [u8; 32],
}

impl Joiner {
    pub fn new(
        node_key: coco_crypto::EcKeyPair,
        node_cn: &str,
        sans: &[coco_crypto::SubjectAltName],
        validity: coco_crypto::Validity,
        encryption_key: coco_crypto::RsaKeyPair,
        virtual_host_data: [u8; 32],
    ) -> Result<Joiner, coco_crypto::CryptoError> {
        Ok(Joiner {
            self_signed_cert_pem: coco_crypto::self_signed_cert(&node_key, node_cn, validity)?,
            csr_pem: coco_crypto::certificate_signing_request(&node_key, node_cn, sans)?,
            node_key,
            encryption_key,
            virtual_host_data,
        })
    }

    pub fn node_id(&self) -> String {
        coco_crypto::spki_fingerprint_hex(&self.node_key.public_key_spki_der())
    }

    /// The body of `POST /node/join`.
    pub fn request(&self, network: NodeInfoNetwork, node_data: Value) -> JoinRequest {
        JoinRequest {
            node_info_network: network,
            quote_info: attestation::virtual_quote_info(
                &self.virtual_host_data,
                &self.node_key.public_key_spki_der(),
            ),
            public_encryption_key: self.encryption_key.public_key_pem(),
            startup_seqno: 0,
            certificate_signing_request: Some(self.csr_pem.clone()),
            node_data,
        }
    }

    /// The identity of the joined node, from what the primary sent. Checks that the endorsed
    /// certificate is for this node's key and signed by the service key it received.
    pub fn into_identity(self, info: &NetworkInfo) -> Result<crate::NodeIdentity, String> {
        let service_key = coco_crypto::EcKeyPair::from_pkcs8_pem(&info.identity.priv_key)
            .map_err(|e| format!("service key: {e}"))?;
        let service_der = coco_crypto::pem_to_der_certs(&info.identity.cert)
            .ok()
            .and_then(|v| v.into_iter().next())
            .ok_or("service certificate does not parse")?;
        let service_spki = coco_crypto::cert_public_key_spki_der(&service_der)
            .map_err(|e| format!("service certificate: {e}"))?;
        if service_spki != service_key.public_key_spki_der() {
            return Err("the service key does not match the service certificate".into());
        }
        let endorsed_der = coco_crypto::pem_to_der_certs(&info.endorsed_certificate)
            .ok()
            .and_then(|v| v.into_iter().next())
            .ok_or("endorsed certificate does not parse")?;
        coco_crypto::verify_cert_signed_by(&endorsed_der, &service_spki)
            .map_err(|e| format!("endorsed certificate not signed by the service: {e}"))?;
        let endorsed_spki = coco_crypto::cert_public_key_spki_der(&endorsed_der)
            .map_err(|e| format!("endorsed certificate: {e}"))?;
        if endorsed_spki != self.node_key.public_key_spki_der() {
            return Err("the endorsed certificate is for another key".into());
        }
        Ok(crate::NodeIdentity::joined(
            self.node_key,
            self.self_signed_cert_pem,
            self.csr_pem,
            info.endorsed_certificate.clone(),
            std::sync::Arc::new(service_key),
            info.identity.cert.clone(),
            self.encryption_key,
            self.virtual_host_data,
        ))
    }
}
