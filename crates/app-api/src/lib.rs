//! The application API of coco: the one surface that apps (the logging sample, JavaScript and
//! EVM runtimes) and the node's own built-in endpoints are written against.
//!
//! Architecture invariant: apps see a KV transaction, a parsed request, the authenticated caller
//! and read-only facts about consensus — never the node's internals. This is CCF's split between
//! `include/ccf` (app API) and `src/node`, enforced by the crate graph: this crate depends on
//! `coco-kv` and `coco-types` only.

pub mod error;
pub mod openapi;
pub mod registry;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
pub use coco_kv::Tx;
use coco_types::{SeqNo, TxId, View};
pub use error::{ApiError, ErrorCode};
pub use http::{Method, StatusCode};
pub use registry::{Endpoint, EndpointMode, Handler, Registry, RouteMatch};

/// Response header carrying the id of the transaction a request executed in (or, for reads, the
/// last transaction the read could have observed).
pub const TX_ID_HEADER: &str = "x-ms-ccf-transaction-id";

/// An authentication policy an endpoint accepts (CCF `include/ccf/common_auth_policies.h`).
/// A list of policies is tried in order; the first that accepts the caller wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthPolicy {
    /// A TLS client certificate whose DER SHA-256 is a key of `public:ccf.gov.users.certs`.
    UserCert,
    /// A TLS client certificate whose DER SHA-256 is a key of `public:ccf.gov.members.certs`.
    MemberCert,
    /// Any TLS client certificate.
    AnyCert,
    /// A COSE Sign1 request body signed by a member (`kid` = member id), governance headers.
    MemberCoseSign1,
    /// As [`AuthPolicy::MemberCoseSign1`], and the member must be `Active`.
    ActiveMemberCoseSign1,
    /// A COSE Sign1 request body signed by a user (`kid` = user id), `ccf.msg.*` headers.
    UserCoseSign1,
    /// `Authorization: Bearer <JWT>` signed by a key of an issuer set by governance.
    Jwt,
    /// No authentication.
    NoAuth,
}

impl AuthPolicy {
    /// The name CCF uses for the policy (its OpenAPI security scheme name).
    pub fn name(self) -> &'static str {
        match self {
            AuthPolicy::UserCert => "user_cert",
            AuthPolicy::MemberCert => "member_cert",
            AuthPolicy::AnyCert => "any_cert",
            AuthPolicy::MemberCoseSign1 => "member_cose_sign1",
            AuthPolicy::ActiveMemberCoseSign1 => "active_member_cose_sign1",
            AuthPolicy::UserCoseSign1 => "user_cose_sign1",
            AuthPolicy::Jwt => "jwt",
            AuthPolicy::NoAuth => "no_auth",
        }
    }

    pub fn is_cose(self) -> bool {
        matches!(
            self,
            AuthPolicy::MemberCoseSign1
                | AuthPolicy::ActiveMemberCoseSign1
                | AuthPolicy::UserCoseSign1
        )
    }
}

/// A verified COSE Sign1 request: its CCF headers and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// `ccf.gov.msg.type` (or `ccf.msg.type` for users).
    pub msg_type: String,
    /// `…created_at`, seconds since the epoch.
    pub created_at: i64,
    /// `ccf.gov.msg.proposal_id`, if present.
    pub proposal_id: Option<String>,
    /// The signed payload: the logical request body.
    pub payload: Bytes,
    /// The whole COSE Sign1 envelope as received (recorded in `cose_history`, acks).
    pub envelope: Bytes,
    /// The signature bytes (proposal ids and replay keys hash them).
    pub signature: Bytes,
}

/// The TLS client certificate a connection presented, fingerprinted once per connection by the
/// host so the core never hashes certificates on the request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    pub der: Bytes,
    /// Lowercase hex SHA-256 of `der`: CCF's user and member id.
    pub fingerprint_hex: String,
}

/// Who is calling, as established by the policy that accepted the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    User {
        id: String,
        cert: PeerCert,
    },
    Member {
        id: String,
        cert: PeerCert,
    },
    AnyCert {
        cert: PeerCert,
    },
    /// A bearer of a valid JWT: the issuer of the key that verified it, and the token's header
    /// and payload (CCF's `{keyIssuer, header, payload}`).
    Jwt {
        key_issuer: String,
        header: serde_json::Value,
        payload: serde_json::Value,
    },
    /// A member authenticated by a COSE Sign1 body.
    MemberCose {
        id: String,
        active: bool,
        signed: SignedRequest,
    },
    /// A user authenticated by a COSE Sign1 body.
    UserCose {
        id: String,
        signed: SignedRequest,
    },
    Anonymous,
}

impl Caller {
    pub fn policy_name(&self) -> &'static str {
        match self {
            Caller::User { .. } => AuthPolicy::UserCert.name(),
            Caller::Member { .. } => AuthPolicy::MemberCert.name(),
            Caller::AnyCert { .. } => AuthPolicy::AnyCert.name(),
            Caller::MemberCose { .. } => AuthPolicy::MemberCoseSign1.name(),
            Caller::UserCose { .. } => AuthPolicy::UserCoseSign1.name(),
            Caller::Jwt { .. } => AuthPolicy::Jwt.name(),
            Caller::Anonymous => AuthPolicy::NoAuth.name(),
        }
    }

    /// The member id, for either member policy.
    pub fn member_id(&self) -> Option<&str> {
        match self {
            Caller::Member { id, .. } | Caller::MemberCose { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The signed request, for COSE policies.
    pub fn signed(&self) -> Option<&SignedRequest> {
        match self {
            Caller::MemberCose { signed, .. } | Caller::UserCose { signed, .. } => Some(signed),
            _ => None,
        }
    }
}

/// A parsed HTTP request as the node core sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Path without the query string, percent-decoding not applied (CCF matches raw paths).
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: String,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub peer_cert: Option<PeerCert>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters, decoded (`+` and `%XX`), last value wins. Invalid percent escapes are
    /// kept literally rather than rejected, as most HTTP stacks do.
    pub fn query_params(&self) -> BTreeMap<String, String> {
        parse_query(&self.query)
    }
}

/// Decodes an `application/x-www-form-urlencoded` style query string.
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response produced by an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn new(status: StatusCode) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A JSON body from any serialisable value.
    pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("serialising a response value cannot fail");
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    pub fn ok_json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        Self::json(StatusCode::OK, value)
    }

    pub fn text(status: StatusCode, text: impl Into<String>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Bytes::from(text.into()),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Self {
        e.into_response()
    }
}

/// Status of a transaction id as seen by this node (CCF `include/ccf/tx_status.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum TxStatus {
    Unknown,
    Pending,
    Committed,
    Invalid,
}

impl TxStatus {
    /// CCF's name of the status on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Unknown => "Unknown",
            TxStatus::Pending => "Pending",
            TxStatus::Committed => "Committed",
            TxStatus::Invalid => "Invalid",
        }
    }
}

/// Read-only facts about consensus and the service that endpoints may use.
#[derive(Clone, Debug, Default)]
pub struct ConsensusView {
    /// Id of this node.
    pub node_id: String,
    /// Id of the node this node believes is primary, if any.
    pub primary_id: Option<String>,
    /// Current view.
    pub view: View,
    /// Last seqno executed locally (`local_commit`).
    pub last_seqno: SeqNo,
    /// Globally committed transaction.
    pub commit: TxId,
    /// For each view, the first seqno in that view, ordered by view (CCF's view history).
    pub view_history: Vec<(View, SeqNo)>,
    /// Seqno of the last signature transaction executed locally.
    pub last_signed_seqno: SeqNo,
}

impl ConsensusView {
    /// The view in which `seqno` was executed here, or `None` if this node has no such seqno.
    pub fn view_of(&self, seqno: SeqNo) -> Option<View> {
        if seqno == 0 || seqno > self.last_seqno {
            return None;
        }
        self.view_history
            .iter()
            .rev()
            .find(|(_, first)| *first <= seqno)
            .map(|(v, _)| *v)
    }

    /// CCF's status rules (`ccf-reference` §5.3).
    pub fn tx_status(&self, tx: TxId) -> TxStatus {
        let local_view = self.view_of(tx.seqno);
        let committed = self.commit.seqno >= tx.seqno;
        match (committed, local_view) {
            (true, Some(v)) if v == tx.view => TxStatus::Committed,
            (true, _) => TxStatus::Invalid,
            (false, Some(v)) if v == tx.view => TxStatus::Pending,
            (false, _) if self.commit.view > tx.view => TxStatus::Invalid,
            _ => TxStatus::Unknown,
        }
    }
}

/// Everything an endpoint handler gets.
pub struct EndpointContext<'a> {
    pub tx: &'a mut Tx,
    pub request: &'a Request,
    pub caller: &'a Caller,
    /// Values of the `{name}` segments of the endpoint's path template.
    pub path_params: BTreeMap<String, String>,
    pub consensus: &'a ConsensusView,
    /// Set by the handler to bind an application claim to this transaction's receipt.
    pub claims_digest: Option<[u8; 32]>,
    /// Service-level facts a handler may report (service certificate etc.).
    pub service: &'a ServiceFacts,
    /// Per-endpoint call counters (`/node/metrics`).
    pub metrics: &'a EndpointMetrics,
    /// For [`EndpointMode::Historical`] endpoints: the transaction the request names.
    pub historical: Option<&'a HistoricalState>,
    /// The node's indexes and past transactions' writes (historical range queries). `None`
    /// away from the core thread (the read path).
    pub history: Option<&'a mut dyn History>,
    /// Set when the handler asked for `history` and there was none: the read path then hands
    /// the request to the core thread, which has it.
    pub wanted_history: bool,
}

/// CCF's answer while historical entries load: 202 with `Retry-After`, clients retry.
pub fn historical_loading() -> Response {
    Response {
        status: StatusCode::ACCEPTED,
        headers: vec![
            (
                "retry-after".into(),
                coco_types::limits::HISTORICAL_RETRY_AFTER_S.to_string(),
            ),
            ("content-type".into(), "text/plain".into()),
        ],
        body: Bytes::from_static(
            b"Historical transaction is not currently available. Please retry.",
        ),
    }
}

/// What historical range queries need from the node.
pub trait History {
    /// The last committed seqno: indexes and past writes are served up to it.
    fn committed_seqno(&self) -> coco_types::SeqNo;
    /// The maps the node indexes by key.
    fn indexed_maps(&self) -> Vec<String>;
    /// Seqnos in `from..=to` (and committed) whose transactions wrote `key` in `map`, for a map
    /// the app asked to index ([`Registry::index_seqnos_by_key`]). An error for other maps, and
    /// for ranges reaching before what this node indexed (it started from a snapshot).
    fn seqnos_by_key(
        &self,
        map: &str,
        key: &[u8],
        from: coco_types::SeqNo,
        to: coco_types::SeqNo,
    ) -> Result<Vec<coco_types::SeqNo>, ApiError>;
    /// The writes of the committed transactions at `seqnos`, each as a read-only store; `None`
    /// while some are still being read from the ledger (answer 202 with `Retry-After`).
    fn writes_at(
        &mut self,
        seqnos: &[coco_types::SeqNo],
    ) -> Result<Option<Vec<(coco_types::TxId, coco_kv::Store)>>, ApiError>;
}

/// A committed past transaction, as historical endpoints see it (ccf-reference §2.1).
#[derive(Clone, Debug)]
pub struct HistoricalState {
    pub txid: coco_types::TxId,
    /// A store holding exactly that transaction's writes (private maps decrypted), as CCF's
    /// historical store does: read it with `store.begin()`.
    pub store: coco_kv::Store,
    /// CCF's JSON receipt (v2: v1 plus `is_signature_transaction`).
    pub receipt: serde_json::Value,
    /// The COSE receipt and the bare CBOR inclusion proof; `None` for signature transactions.
    pub cose_receipt: Option<Bytes>,
    pub cbor_merkle_proof: Option<Bytes>,
    /// The COSE_Sign1 root signature of the signature transaction that proves it.
    pub cose_signature: Bytes,
    /// For a transaction of an earlier service (before a disaster recovery): COSE endorsements
    /// from the current service key down to the key that signed it, newest first.
    pub cose_endorsements: Option<Vec<Bytes>>,
}

impl EndpointContext<'_> {
    /// The node's history (indexes and past writes).
    pub fn history(&mut self) -> Result<&mut dyn History, ApiError> {
        match self.history.as_mut() {
            Some(h) => Ok(&mut **h),
            None => {
                self.wanted_history = true;
                Err(ApiError::internal(
                    "no history is available to this endpoint",
                ))
            }
        }
    }

    /// The historical state of a [`EndpointMode::Historical`] endpoint.
    pub fn historical(&self) -> Result<&HistoricalState, ApiError> {
        self.historical
            .ok_or_else(|| ApiError::internal("this endpoint is not registered as historical"))
    }
}

impl EndpointContext<'_> {
    /// Parses the body as JSON into `T`, mapping failures to CCF's `InvalidInput`.
    pub fn json_body<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(self.body())
            .map_err(|e| ApiError::invalid_input(format!("Invalid JSON body: {e}")))
    }

    /// The logical request body: the signed payload for COSE-authenticated callers, otherwise
    /// the HTTP body.
    pub fn body(&self) -> &[u8] {
        match self.caller.signed() {
            Some(signed) => &signed.payload,
            None => &self.request.body,
        }
    }
}

/// Call counters of one endpoint, as CCF's `/node/metrics` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointCounters {
    pub calls: u64,
    /// Responses with a 4xx status.
    pub errors: u64,
    /// Responses with a 5xx status.
    pub failures: u64,
    /// Re-executions after a conflict.
    pub retries: u64,
}

/// Call counters of every endpoint of a registry, shared by everything that executes requests
/// (the core thread and the read path), so counting needs no lock: keyed by path template, then
/// method.
#[derive(Debug, Default)]
pub struct EndpointMetrics {
    per_endpoint: BTreeMap<String, BTreeMap<String, AtomicCounters>>,
}

#[derive(Debug, Default)]
struct AtomicCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
}

impl EndpointMetrics {
    /// Counters (all zero) for every endpoint of `registry`.
    pub fn for_registry(registry: &Registry) -> Self {
        let mut per_endpoint: BTreeMap<String, BTreeMap<String, AtomicCounters>> = BTreeMap::new();
        for e in registry.endpoints() {
            per_endpoint
                .entry(e.template.clone())
                .or_default()
                .insert(e.method.as_str().to_owned(), AtomicCounters::default());
        }
        EndpointMetrics { per_endpoint }
    }

    /// Counts one call of an endpoint that answered `status` after `retries` re-executions.
    /// Endpoints outside the registry are not counted.
    pub fn record(&self, method: &str, template: &str, status: StatusCode, retries: u64) {
        let Some(c) = self
            .per_endpoint
            .get(template)
            .and_then(|methods| methods.get(method))
        else {
            return;
        };
        c.calls.fetch_add(1, Ordering::Relaxed);
        c.retries.fetch_add(retries, Ordering::Relaxed);
        if status.is_client_error() {
            c.errors.fetch_add(1, Ordering::Relaxed);
        } else if status.is_server_error() {
            c.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(method, path template, counters)` of every endpoint called so far, in that order.
    pub fn called(&self) -> Vec<(String, String, EndpointCounters)> {
        let mut called: Vec<(String, String, EndpointCounters)> = self
            .per_endpoint
            .iter()
            .flat_map(|(template, methods)| {
                methods.iter().map(move |(method, c)| {
                    let counters = EndpointCounters {
                        calls: c.calls.load(Ordering::Relaxed),
                        errors: c.errors.load(Ordering::Relaxed),
                        failures: c.failures.load(Ordering::Relaxed),
                        retries: c.retries.load(Ordering::Relaxed),
                    };
                    (method.clone(), template.clone(), counters)
                })
            })
            .filter(|(_, _, c)| c.calls > 0)
            .collect();
        called.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        called
    }
}

/// Facts about the service and node the endpoints report; the certificates change when
/// governance renews them (once the renewal commits).
#[derive(Clone, Debug, Default)]
pub struct ServiceFacts {
    pub service_cert_pem: String,
    pub node_cert_pem: String,
    /// The node's self-signed certificate (`/node/self_signed_certificate`).
    pub node_self_signed_cert_pem: String,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("id=42", &[("id", "42")]),
            ("id=4%32&x", &[("id", "42"), ("x", "")]),
            ("a=1&a=2", &[("a", "2")]),
            ("m=hello+world", &[("m", "hello world")]),
            ("bad=%zz%", &[("bad", "%zz%")]),
            ("trail=%4", &[("trail", "%4")]),
        ];
        for (q, want) in cases {
            let got = parse_query(q);
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "query {q:?}");
        }
    }

    #[test]
    fn tx_status_table() {
        // Views: 2 from seqno 1, 4 from seqno 10. Last seqno 15, committed up to 4.12.
        let c = ConsensusView {
            view: 4,
            last_seqno: 15,
            commit: TxId::new(4, 12),
            view_history: vec![(2, 1), (4, 10)],
            ..Default::default()
        };
        let cases = [
            ((2, 5), TxStatus::Committed),
            ((3, 5), TxStatus::Invalid),
            ((4, 12), TxStatus::Committed),
            ((4, 13), TxStatus::Pending),
            ((3, 13), TxStatus::Invalid),
            ((5, 13), TxStatus::Unknown),
            ((4, 16), TxStatus::Unknown),
            ((3, 16), TxStatus::Invalid),
            ((2, 0), TxStatus::Invalid),
        ];
        for ((v, s), want) in cases {
            assert_eq!(c.tx_status(TxId::new(v, s)), want, "tx {v}.{s}");
        }
    }
}
