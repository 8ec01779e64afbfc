//! Builds a genesis node with fresh identities for engine tests and benchmarks.
#![allow(dead_code)]

use bytes::Bytes;
use coco_app_api::Response;
use coco_app_api::{Method, PeerCert, Request};
use coco_crypto::{Curve, EcKeyPair, RsaKeyPair, Validity};
use coco_node::{
    CoreConfig, GenesisConfig, Input, MemberSpec, Node, NodeIdentity, Now, Output, UserSpec,
};

pub const VALIDITY: Validity = Validity {
    not_before_unix_s: 0,
    not_after_unix_s: 4_000_000_000,
};

pub struct Fixture {
    pub node: Node,
    pub member_key: EcKeyPair,
    pub genesis_outputs: Vec<Output>,
    pub user: PeerCert,
    pub member: PeerCert,
    pub service_cert_pem: String,
    pub node_cert_pem: String,
}

/// Genesis of an open service with one member and one user (the pre-governance bootstrap).
pub fn open_genesis(member_pem: &str, user_pem: &str) -> GenesisConfig {
    GenesisConfig {
        members: vec![MemberSpec {
            cert_pem: member_pem.to_owned(),
            encryption_public_key_pem: None,
            member_data: None,
            recovery_role: None,
        }],
        users: vec![UserSpec {
            cert_pem: user_pem.to_owned(),
            user_data: None,
        }],
        open_service_without_governance: true,
        recovery_threshold: 1,
        maximum_node_certificate_validity_days: 365,
        ..Default::default()
    }
}

/// The TLS client certificate a request presents.
pub fn peer(pem: &str) -> PeerCert {
    let der = coco_crypto::pem_to_der_certs(pem).unwrap().remove(0);
    PeerCert {
        fingerprint_hex: coco_crypto::cert_der_fingerprint_hex(&der),
        der: Bytes::from(der),
    }
}

pub fn now(ms: u64) -> Now {
    Now {
        monotonic_ms: ms,
        unix_seconds: 1_700_000_000 + (ms / 1000) as i64,
    }
}

/// Fresh node and service identities, the service certificate endorsing the node's.
pub fn identity() -> NodeIdentity {
    let service_key = EcKeyPair::generate(Curve::P384).unwrap();
    let service_cert_pem =
        coco_crypto::self_signed_ca_cert(&service_key, "CCF Service", VALIDITY).unwrap();
    NodeIdentity::new(
        EcKeyPair::generate(Curve::P384).unwrap(),
        "CCF Node",
        &[],
        VALIDITY,
        std::sync::Arc::new(service_key),
        service_cert_pem,
        RsaKeyPair::generate(2048).unwrap(),
    )
    .unwrap()
}

pub fn fixture(config: CoreConfig) -> Fixture {
    fixture_with(config, None, None)
}

/// A fixture whose genesis records `constitution` and whose node loads it with `loader`.
pub fn fixture_with(
    config: CoreConfig,
    loader: Option<Box<dyn coco_node::proposals::ConstitutionLoader>>,
    constitution: Option<String>,
) -> Fixture {
    let identity = identity();
    let service_cert_pem = identity.service_cert_pem.clone();
    let node_cert_pem = identity.node_cert_pem.clone();
    let user_key = EcKeyPair::generate(Curve::P256).unwrap();
    let user_pem = coco_crypto::self_signed_cert(&user_key, "user0", VALIDITY).unwrap();
    let member_key = EcKeyPair::generate(Curve::P256).unwrap();
    let member_pem = coco_crypto::self_signed_cert(&member_key, "member0", VALIDITY).unwrap();
    let genesis = GenesisConfig {
        constitution,
        ..open_genesis(&member_pem, &user_pem)
    };
    let mut out = Vec::new();
    let node = Node::start_genesis(
        config,
        identity,
        &genesis,
        [9; 32],
        coco_node::Plugins {
            app: coco_app_logging::registry(),
            constitution: loader,
        },
        now(0),
        &mut out,
    );
    Fixture {
        node,
        member_key,
        genesis_outputs: out,
        user: peer(&user_pem),
        member: peer(&member_pem),
        service_cert_pem,
        node_cert_pem,
    }
}

pub fn request(
    method: Method,
    path_and_query: &str,
    body: &str,
    cert: Option<&PeerCert>,
) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from(body.to_owned()),
        peer_cert: cert.cloned(),
    }
}

/// A request signed by `key` (kid `id`) with CCF's governance headers, as `coco member sign` makes.
pub fn signed_request(
    key: &EcKeyPair,
    id: &str,
    path_and_query: &str,
    msg_type: &str,
    created_at: i64,
    proposal_id: Option<&str>,
    payload: &str,
) -> Request {
    let body = coco_node::gov::sign_request(
        key,
        id,
        msg_type,
        created_at,
        proposal_id,
        payload.as_bytes(),
    );
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    Request {
        method: Method::POST,
        path: path.to_owned(),
        query: query.to_owned(),
        headers: vec![("content-type".into(), "application/cose".into())],
        body: Bytes::from(body),
        peer_cert: None,
    }
}

/// Steps `node` with `request` at `ms` and returns the response it gives at once.
pub fn respond(node: &mut Node, ms: u64, request: Request) -> Response {
    let mut out = Vec::new();
    node.step(
        now(ms),
        Input::Request {
            id: 1,
            request,
            session: Default::default(),
        },
        &mut out,
    );
    out.into_iter()
        .find_map(|o| match o {
            Output::Respond { response, .. } => Some(response),
            _ => None,
        })
        .expect("the node answers at once")
}

/// A genesis node of a service left Opening (no bootstrap option): its app frontend is closed.
/// Returns the node and its genesis outputs.
pub fn opening_node() -> (Node, Vec<Output>) {
    let mut out = Vec::new();
    let genesis = GenesisConfig {
        recovery_threshold: 1,
        ..Default::default()
    };
    let node = Node::start_genesis(
        CoreConfig::default(),
        identity(),
        &genesis,
        [1; 32],
        coco_node::Plugins {
            app: coco_app_logging::registry(),
            constitution: None,
        },
        now(0),
        &mut out,
    );
    (node, out)
}
