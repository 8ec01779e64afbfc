//! CCF's proposal lifecycle (ccf-reference §3.4, `src/node/gov/handlers/proposals.h`):
//! create (validate, replay protection, id bound to the service state) → ballots → resolve →
//! apply, with states Open / Accepted / Withdrawn / Rejected / Failed / Dropped.
//!
//! The decisions are the constitution's: it is reached through [`Constitution`], implemented by
//! the JavaScript runtime (crate `coco-js`) and injected by the host, so the core never links a
//! JavaScript engine. These handlers run inside the node (not as plain registry handlers)
//! because they need the constitution and the Merkle root.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use coco_app_api::{ApiError, Caller, ErrorCode, Request, Response, SignedRequest, StatusCode};
use coco_codec::tables;
use coco_crypto::{EcKeyPair, sha256};
use coco_kv::Tx;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const PROPOSALS: &str = "public:ccf.gov.proposals";
pub const PROPOSALS_INFO: &str = "public:ccf.gov.proposals_info";
pub const COSE_RECENT_PROPOSALS: &str = "public:ccf.gov.cose_recent_proposals";
pub const COSE_HISTORY: &str = "public:ccf.gov.cose_history";

use coco_types::limits::{
    PROPOSAL_CREATED_AT_SECONDS_MAX, RECENT_COSE_PROPOSALS_WINDOW_COUNT_DEFAULT,
};

/// The outcome of `validate(input)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    pub valid: bool,
    pub description: String,
}

/// What `resolve` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalState {
    Open,
    Accepted,
    Withdrawn,
    Rejected,
    Failed,
    Dropped,
}

/// What CCF's `ccf.network` offers `apply` (`src/js/extensions/ccf/network.cpp`): the service
/// identity, to issue node certificates and renew the service certificate, and the version of the
/// latest ledger secret.
#[derive(Clone)]
pub struct NetworkIdentity {
    pub service_key: Arc<EcKeyPair>,
    /// The current service certificate (its name and key identifier go into endorsed certs).
    pub service_cert_pem: String,
    /// `getLatestLedgerSecretSeqno()`: the seqno from which the latest ledger secret applies.
    pub latest_ledger_secret_seqno: u64,
    /// The time of the request being executed (the core is given the time, it never reads a
    /// clock): the `iat` of what `apply` signs.
    pub now_unix_seconds: i64,
}

impl NetworkIdentity {
    /// `ccf.network.generateEndorsedCertificate(csr, valid_from, validity_period_days)`.
    pub fn generate_endorsed_certificate(
        &self,
        csr_pem: &str,
        valid_from: &str,
        validity_period_days: u64,
    ) -> Result<String, String> {
        let validity = ccf_validity(valid_from, validity_period_days)?;
        coco_crypto::endorse_csr(csr_pem, &self.service_key, &self.service_cert_pem, validity)
            .map_err(|e| format!("Failed to create endorsed cert: {e}"))
    }

    /// `ccf.network.generateNetworkCertificate(valid_from, validity_period_days)`: the service
    /// certificate re-issued (same key and name) with a new validity period.
    pub fn generate_network_certificate(
        &self,
        valid_from: &str,
        validity_period_days: u64,
    ) -> Result<String, String> {
        let validity = ccf_validity(valid_from, validity_period_days)?;
        coco_crypto::renew_self_signed_ca_cert(&self.service_key, &self.service_cert_pem, validity)
            .map_err(|e| format!("Error: {e}"))
    }
}

/// A certificate validity period as CCF's proposals give it: a time string and a number of days.
fn ccf_validity(valid_from: &str, days: u64) -> Result<coco_crypto::Validity, String> {
    let from = coco_crypto::parse_ccf_time(valid_from).map_err(|e| e.to_string())?;
    coco_crypto::validity_for_days(from, days).map_err(|e| e.to_string())
}

/// Effects of governance that belong to the node rather than the KV: an `apply` may request
/// them (CCF's `ccf.node.*` calls); the node acts once the proposal's transaction commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeHook {
    /// Close the ledger chunk at the next signature (`trigger_ledger_chunk`).
    TriggerLedgerChunk,
    /// Take a snapshot at the next signature (`trigger_snapshot`; snapshots issue).
    TriggerSnapshot,
    /// Install a new ledger secret (`trigger_ledger_rekey`; recovery issue).
    TriggerLedgerRekey,
    /// Re-issue recovery shares (`trigger_recovery_shares_refresh`; recovery issue).
    TriggerRecoverySharesRefresh,
}

impl NodeHook {
    /// The hook named by the JavaScript runtime.
    pub fn from_name(name: &str) -> Option<NodeHook> {
        Some(match name {
            "TriggerLedgerChunk" => NodeHook::TriggerLedgerChunk,
            "TriggerSnapshot" => NodeHook::TriggerSnapshot,
            "TriggerLedgerRekey" => NodeHook::TriggerLedgerRekey,
            "TriggerRecoverySharesRefresh" => NodeHook::TriggerRecoverySharesRefresh,
            _ => return None,
        })
    }
}

/// The constitution's entry points. Errors are the script's exception messages; they fail the
/// proposal (or the ballot), never the node.
pub trait Constitution {
    fn validate(&self, tx: &mut Tx, proposal: &str) -> Result<Validation, String>;
    /// Runs a ballot's `vote(rawProposal, proposerId)`.
    fn ballot(
        &self,
        tx: &mut Tx,
        ballot: &str,
        proposal: &str,
        proposer_id: &str,
    ) -> Result<bool, String>;
    /// `resolve(proposal, proposerId, votes, proposalId)`: Open, Accepted or Rejected.
    fn resolve(
        &self,
        tx: &mut Tx,
        proposal: &str,
        proposer_id: &str,
        votes: &[(String, bool)],
        proposal_id: &str,
    ) -> Result<ProposalState, String>;
    /// `apply(proposal, proposalId)`: writes governance maps and returns the node hooks it
    /// requested.
    fn apply(
        &self,
        tx: &mut Tx,
        proposal: &str,
        proposal_id: &str,
        network: &NetworkIdentity,
    ) -> Result<Vec<NodeHook>, String>;
}

/// Loads the constitution stored in `public:ccf.gov.constitution` (its JavaScript source).
pub trait ConstitutionLoader: Send {
    /// `runtime_options` is the JSON of `public:ccf.gov.js_runtime_options`, if set
    /// (`set_js_runtime_options`: heap, stack and execution-time limits).
    fn load(
        &self,
        source: &str,
        runtime_options: Option<&str>,
    ) -> Result<Box<dyn Constitution + Send>, String>;
}

/// `public:ccf.gov.proposals_info` values.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProposalInfo {
    pub proposer_id: String,
    pub state: ProposalState,
    #[serde(default)]
    pub ballots: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_votes: Option<BTreeMap<String, bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote_failures: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Value>,
}

fn summary(id: &str, info: &ProposalInfo) -> Value {
    let mut v = json!({
        "proposalId": id,
        "proposerId": info.proposer_id,
        "proposalState": info.state,
        "ballotCount": info.ballots.len(),
    });
    if let Some(f) = &info.final_votes {
        v["finalVotes"] = json!(f);
    }
    if let Some(f) = &info.vote_failures {
        v["voteFailures"] = json!(f);
    }
    if let Some(f) = &info.failure {
        v["failure"] = f.clone();
    }
    v
}

fn bad(status: StatusCode, code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(status, code, msg)
}

fn load_info(tx: &mut Tx, id: &str) -> Result<Option<ProposalInfo>, ApiError> {
    match tx.get(PROPOSALS_INFO, id.as_bytes()) {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("proposals_info of {id} does not parse: {e}"))),
    }
}

fn store_info(tx: &mut Tx, id: &str, info: &ProposalInfo) {
    tx.put(
        PROPOSALS_INFO,
        Bytes::from(id.to_owned()),
        Bytes::from(tables::to_ccf_json(info).expect("json")),
    );
}

fn signed_member<'a>(
    caller: &'a Caller,
    msg_type: &str,
) -> Result<(&'a str, &'a SignedRequest), ApiError> {
    let Caller::MemberCose { id, signed, .. } = caller else {
        return Err(ApiError::cose_unauthorized(
            "A COSE Sign1 request signed by an active member is required.",
        ));
    };
    if signed.msg_type != msg_type {
        return Err(ApiError::cose_unauthorized(format!(
            "Expected ccf.gov.msg.type '{msg_type}', got '{}'.",
            signed.msg_type
        )));
    }
    Ok((id, signed))
}

fn proposal_text(tx: &mut Tx, id: &str) -> Result<String, ApiError> {
    let raw = tx.get(PROPOSALS, id.as_bytes()).ok_or_else(|| {
        bad(
            StatusCode::NOT_FOUND,
            ErrorCode::ProposalNotFound,
            format!("Proposal {id} does not exist."),
        )
    })?;
    String::from_utf8(raw.to_vec())
        .map_err(|_| ApiError::internal(format!("Proposal {id} is not UTF-8.")))
}

/// Replay protection for `proposals:create`: the (created_at, signature) key must be new, and
/// created_at must not be older than the median of the recent window.
fn check_replay(
    tx: &mut Tx,
    signed: &SignedRequest,
    window: usize,
    proposal_id: &str,
) -> Result<(), ApiError> {
    if !(0..=PROPOSAL_CREATED_AT_SECONDS_MAX).contains(&signed.created_at) {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidCreatedAt,
            format!("created_at {} is out of range.", signed.created_at),
        ));
    }
    let key = format!(
        "{:010}:{}",
        signed.created_at,
        hex::encode(sha256(&signed.signature))
    );
    if tx.get(COSE_RECENT_PROPOSALS, key.as_bytes()).is_some() {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::ProposalReplay,
            "Proposal submission replay: this signed proposal was already submitted.",
        ));
    }
    let mut recent: Vec<Bytes> = Vec::new();
    tx.for_each(COSE_RECENT_PROPOSALS, |k, _| {
        recent.push(k.clone());
        true
    });
    if window > 0 && recent.len() >= window {
        let median = &recent[recent.len() / 2];
        let median_created_at = std::str::from_utf8(&median[..10.min(median.len())])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        if signed.created_at < median_created_at {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                ErrorCode::ProposalCreatedTooLongAgo,
                format!(
                    "Proposal created too long ago: created_at {} is older than the median {median_created_at} of recent proposals.",
                    signed.created_at
                ),
            ));
        }
    }
    tx.put(
        COSE_RECENT_PROPOSALS,
        Bytes::from(key),
        Bytes::from(proposal_id.to_owned()),
    );
    // Keep the window bounded: drop the oldest beyond it.
    if window > 0 && recent.len() + 1 > window {
        for old in recent.iter().take(recent.len() + 1 - window) {
            tx.remove(COSE_RECENT_PROPOSALS, old);
        }
    }
    Ok(())
}

fn window_size(tx: &mut Tx) -> usize {
    tx.get(tables::SERVICE_CONFIG, &tables::SINGLETON_KEY)
        .and_then(|v| tables::from_ccf_json::<tables::ServiceConfiguration>(&v).ok())
        .and_then(|c| c.recent_cose_proposals_window_size)
        .unwrap_or(RECENT_COSE_PROPOSALS_WINDOW_COUNT_DEFAULT) as usize
}

/// Re-runs every ballot and the constitution's `resolve`; applies an accepted proposal.
fn resolve(
    tx: &mut Tx,
    constitution: &dyn Constitution,
    network: &NetworkIdentity,
    id: &str,
    info: &mut ProposalInfo,
) -> Result<Vec<NodeHook>, ApiError> {
    let mut hooks = Vec::new();
    let proposal = proposal_text(tx, id)?;
    let mut votes = Vec::new();
    let mut failures = BTreeMap::new();
    for (member, ballot) in &info.ballots {
        match constitution.ballot(tx, ballot, &proposal, &info.proposer_id) {
            Ok(v) => votes.push((member.clone(), v)),
            Err(e) => {
                failures.insert(member.clone(), json!({ "reason": e }));
            }
        }
    }
    let state = match constitution.resolve(tx, &proposal, &info.proposer_id, &votes, id) {
        Ok(s @ (ProposalState::Open | ProposalState::Accepted | ProposalState::Rejected)) => s,
        Ok(other) => {
            info.failure = Some(
                json!({ "reason": format!("resolve returned {other:?}, expected Open, Accepted or Rejected") }),
            );
            ProposalState::Failed
        }
        Err(e) => {
            info.failure = Some(json!({ "reason": format!("resolve failed: {e}") }));
            ProposalState::Failed
        }
    };
    info.state = state;
    if state != ProposalState::Open {
        // Before apply, as CCF: proposals an apply drops stay visible until the next completion.
        prune_other_finished(tx, id)?;
    }
    if state == ProposalState::Accepted {
        // apply runs in a nested transaction view: a failure must leave no writes behind.
        let mut attempt = tx.clone();
        let constitution_before = attempt.get(tables::CONSTITUTION, &tables::SINGLETON_KEY);
        match constitution.apply(&mut attempt, &proposal, id, network) {
            Ok(requested) => {
                hooks = requested;
                // As CCF's invalidateOtherOpenProposals: a new constitution drops every other
                // open proposal, which was validated and voted under the old one.
                if attempt.get(tables::CONSTITUTION, &tables::SINGLETON_KEY) != constitution_before
                {
                    drop_other_open_proposals(&mut attempt, id)?;
                }
                *tx = attempt;
            }
            Err(e) => {
                info.state = ProposalState::Failed;
                info.failure = Some(json!({ "reason": format!("apply failed: {e}") }));
            }
        }
    }
    if info.state != ProposalState::Open {
        info.final_votes = Some(votes.into_iter().collect());
        if !failures.is_empty() {
            info.vote_failures = Some(failures);
        }
    }
    Ok(hooks)
}

/// As CCF does when a proposal completes: forget every other proposal that is no longer open,
/// so the proposal tables stay bounded by the open ones.
fn prune_other_finished(tx: &mut Tx, except: &str) -> Result<(), ApiError> {
    let mut ids = Vec::new();
    tx.for_each(PROPOSALS_INFO, |k, _| {
        ids.push(String::from_utf8_lossy(k).into_owned());
        true
    });
    for other in ids.into_iter().filter(|i| i != except) {
        if load_info(tx, &other)?.is_some_and(|info| info.state != ProposalState::Open) {
            tx.remove(PROPOSALS_INFO, other.as_bytes());
            tx.remove(PROPOSALS, other.as_bytes());
        }
    }
    Ok(())
}

fn drop_other_open_proposals(tx: &mut Tx, except: &str) -> Result<(), ApiError> {
    let mut ids = Vec::new();
    tx.for_each(PROPOSALS_INFO, |k, _| {
        ids.push(String::from_utf8_lossy(k).into_owned());
        true
    });
    for other in ids.into_iter().filter(|i| i != except) {
        if let Some(mut info) = load_info(tx, &other)?
            && info.state == ProposalState::Open
        {
            info.state = ProposalState::Dropped;
            store_info(tx, &other, &info);
        }
    }
    Ok(())
}

/// `POST /gov/members/proposals:create`.
pub fn create(
    tx: &mut Tx,
    caller: &Caller,
    root: &[u8; 32],
    constitution: &dyn Constitution,
    network: &NetworkIdentity,
) -> Result<(Response, Vec<NodeHook>), ApiError> {
    let (member, signed) = signed_member(caller, "proposal")?;
    let (member, signed) = (member.to_owned(), signed.clone());
    let mut id_input = Vec::with_capacity(64);
    id_input.extend_from_slice(root);
    id_input.extend_from_slice(&sha256(&signed.signature));
    let id = hex::encode(sha256(&id_input));
    let window = window_size(tx);
    check_replay(tx, &signed, window, &id)?;
    let proposal = std::str::from_utf8(&signed.payload)
        .map_err(|_| ApiError::invalid_input("The proposal is not UTF-8."))?;
    serde_json::from_str::<Value>(proposal)
        .map_err(|e| ApiError::invalid_input(format!("The proposal is not JSON: {e}")))?;
    let validation = constitution.validate(tx, proposal).map_err(|e| {
        bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::ProposalFailedToValidate,
            format!("{id} failed validation: {e}"),
        )
    })?;
    if !validation.valid {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::ProposalFailedToValidate,
            format!("{id} failed validation: {}", validation.description),
        ));
    }
    tx.put(PROPOSALS, Bytes::from(id.clone()), signed.payload.clone());
    tx.put(
        COSE_HISTORY,
        Bytes::from(member.clone()),
        signed.envelope.clone(),
    );
    let mut info = ProposalInfo {
        proposer_id: member,
        state: ProposalState::Open,
        ballots: BTreeMap::new(),
        final_votes: None,
        vote_failures: None,
        failure: None,
    };
    let hooks = resolve(tx, constitution, network, &id, &mut info)?;
    store_info(tx, &id, &info);
    Ok((Response::ok_json(&summary(&id, &info)), hooks))
}

/// `POST /gov/members/proposals/{proposalId}:withdraw`.
pub fn withdraw(tx: &mut Tx, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let (member, signed) = signed_member(caller, "withdrawal")?;
    if signed.proposal_id.as_deref() != Some(id) {
        return Err(ApiError::cose_unauthorized(
            "ccf.gov.msg.proposal_id does not match the proposal in the URL.",
        ));
    }
    let mut info = load_info(tx, id)?.ok_or_else(|| {
        bad(
            StatusCode::NOT_FOUND,
            ErrorCode::ProposalNotFound,
            format!("Proposal {id} does not exist."),
        )
    })?;
    if info.proposer_id != member {
        return Err(bad(
            StatusCode::FORBIDDEN,
            ErrorCode::AuthorizationFailed,
            "Only the proposer may withdraw a proposal.",
        ));
    }
    if info.state != ProposalState::Open {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::ProposalNotOpen,
            format!("Proposal {id} is {:?}, not Open.", info.state),
        ));
    }
    info.state = ProposalState::Withdrawn;
    prune_other_finished(tx, id)?;
    store_info(tx, id, &info);
    Ok(Response::ok_json(&summary(id, &info)))
}

/// `POST /gov/members/proposals/{proposalId}/ballots/{memberId}:submit`.
pub fn submit_ballot(
    tx: &mut Tx,
    caller: &Caller,
    id: &str,
    member_in_path: &str,
    constitution: &dyn Constitution,
    network: &NetworkIdentity,
) -> Result<(Response, Vec<NodeHook>), ApiError> {
    let (member, signed) = signed_member(caller, "ballot")?;
    if signed.proposal_id.as_deref() != Some(id) {
        return Err(ApiError::cose_unauthorized(
            "ccf.gov.msg.proposal_id does not match the proposal in the URL.",
        ));
    }
    if member != member_in_path {
        return Err(bad(
            StatusCode::FORBIDDEN,
            ErrorCode::AuthorizationFailed,
            format!("Member {member} cannot vote as {member_in_path}."),
        ));
    }
    #[derive(Deserialize)]
    struct Ballot {
        ballot: String,
    }
    let ballot: Ballot = serde_json::from_slice(&signed.payload)
        .map_err(|e| ApiError::invalid_input(format!("Invalid ballot: {e}")))?;
    let mut info = load_info(tx, id)?.ok_or_else(|| {
        bad(
            StatusCode::NOT_FOUND,
            ErrorCode::ProposalNotFound,
            format!("Proposal {id} does not exist."),
        )
    })?;
    if info.state != ProposalState::Open {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::ProposalNotOpen,
            format!("Proposal {id} is {:?}, not Open.", info.state),
        ));
    }
    match info.ballots.get(member) {
        Some(existing) if *existing == ballot.ballot => {
            return Ok((Response::ok_json(&summary(id, &info)), Vec::new()));
        }
        Some(_) => {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                ErrorCode::VoteAlreadyExists,
                format!("Member {member} has already voted differently on {id}."),
            ));
        }
        None => {}
    }
    info.ballots.insert(member.to_owned(), ballot.ballot);
    let hooks = resolve(tx, constitution, network, id, &mut info)?;
    store_info(tx, id, &info);
    Ok((Response::ok_json(&summary(id, &info)), hooks))
}

/// Read-only views: the proposal list, one proposal, its actions, one ballot.
pub fn view(
    tx: &mut Tx,
    request: &Request,
    params: &BTreeMap<String, String>,
    template: &str,
) -> Result<Response, ApiError> {
    let _ = request;
    let id = params.get("proposalId").cloned().unwrap_or_default();
    match template {
        "/gov/members/proposals" => {
            let mut ids = Vec::new();
            tx.for_each(PROPOSALS_INFO, |k, _| {
                ids.push(String::from_utf8_lossy(k).into_owned());
                true
            });
            let mut value = Vec::new();
            for id in ids {
                if let Some(info) = load_info(tx, &id)? {
                    value.push(summary(&id, &info));
                }
            }
            Ok(Response::ok_json(&json!({ "value": value })))
        }
        "/gov/members/proposals/{proposalId}" => {
            let info = load_info(tx, &id)?.ok_or_else(|| {
                bad(
                    StatusCode::NOT_FOUND,
                    ErrorCode::ProposalNotFound,
                    format!("Proposal {id} does not exist."),
                )
            })?;
            Ok(Response::ok_json(&summary(&id, &info)))
        }
        "/gov/members/proposals/{proposalId}/actions" => {
            let text = proposal_text(tx, &id)?;
            Ok(Response {
                status: StatusCode::OK,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Bytes::from(text),
            })
        }
        "/gov/members/proposals/{proposalId}/ballots/{memberId}" => {
            let member = params.get("memberId").cloned().unwrap_or_default();
            let info = load_info(tx, &id)?.ok_or_else(|| {
                bad(
                    StatusCode::NOT_FOUND,
                    ErrorCode::ProposalNotFound,
                    format!("Proposal {id} does not exist."),
                )
            })?;
            let script = info.ballots.get(&member).ok_or_else(|| {
                ApiError::not_found(format!("Member {member} has not voted on {id}."))
            })?;
            Ok(Response::ok_json(&json!({ "script": script })))
        }
        other => Err(ApiError::internal(format!("no proposal view for {other}"))),
    }
}
