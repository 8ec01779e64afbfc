//! The read path: read-only requests executed away from the core thread.
//!
//! Whenever the core has stepped, the host publishes a [`ReadView`] — an O(1) snapshot of the
//! KV store plus the few facts read-only endpoints report (consensus position, service
//! certificates, whether the frontend is open) — before it sends any reply, and its I/O threads
//! execute read-only requests against the latest one: reads scale with cores, never queue
//! behind writes, and still see every write answered before them. The view is a pure value:
//! executing a request against it is a function of the view and the request, as deterministic
//! as the core.
//!
//! A request the view cannot answer alone goes to the core as before ([`ReadView::execute`]
//! returns `None`): writes, historical endpoints, endpoints the node runs itself (receipts,
//! proposals, `/api` documents), unknown paths, a closed frontend, handlers that ask for the
//! node's history (indexes, old entries), read-only handlers that try to write, and requests of
//! a session that forwarded to the primary (the core forwards them too).

use std::collections::BTreeMap;
use std::sync::Arc;

use coco_app_api::{
    ConsensusView, EndpointContext, EndpointMetrics, EndpointMode, Method, Registry, Request,
    Response, RouteMatch, ServiceFacts, TX_ID_HEADER,
};
use coco_kv::StoreSnapshot;
use coco_types::{SeqNo, TxId, View};

use crate::{Node, Session, auth, endpoints};

/// What read-only requests see: the node's state after some step.
pub struct ReadView {
    store: StoreSnapshot,
    registry: Arc<Registry>,
    metrics: Arc<EndpointMetrics>,
    consensus: ConsensusView,
    service: Arc<ServiceFacts>,
    /// Whether application endpoints are served (the service is open and its private maps are
    /// in place).
    app_open: bool,
    /// The transaction id reads report (`x-ms-ccf-transaction-id`).
    read_txid: TxId,
    /// Sessions that forwarded a request to the primary: their app and governance requests go
    /// to the core, which forwards them too.
    forwarded_sessions: Arc<BTreeMap<u64, View>>,
}

impl ReadView {
    /// The last seqno this view reflects.
    pub fn seqno(&self) -> SeqNo {
        self.read_txid.seqno
    }

    /// Executes `request`, received on `session`, if it is a read this view can answer by
    /// itself; `None` means the core must execute it. `unix_seconds` is the wall clock (JWT
    /// expiry).
    pub fn execute(
        &self,
        request: &Request,
        session: &Session,
        unix_seconds: i64,
    ) -> Option<Response> {
        let RouteMatch::Found {
            endpoint,
            path_params,
        } = self.registry.route(&request.method, &request.path)
        else {
            return None;
        };
        if endpoint.mode != EndpointMode::ReadOnly || endpoints::is_run_by_node(&endpoint.template)
        {
            return None;
        }
        if endpoints::is_app_endpoint(&endpoint.template) && !self.app_open {
            return None;
        }
        if self.forwarded_sessions.contains_key(&session.id)
            && endpoints::follows_forwarding_session(&endpoint.template)
        {
            return None;
        }
        let response = match auth::authenticate(
            &mut self.store.begin(),
            request,
            &endpoint.auth_policies,
            unix_seconds,
        ) {
            Err(e) => e.into_response(),
            Ok(caller) => {
                let mut tx = self.store.begin();
                let mut ctx = EndpointContext {
                    tx: &mut tx,
                    request,
                    caller: &caller,
                    path_params,
                    consensus: &self.consensus,
                    claims_digest: None,
                    service: &self.service,
                    metrics: &self.metrics,
                    historical: None,
                    history: None,
                    wanted_history: false,
                };
                let result = (endpoint.handler)(&mut ctx);
                if ctx.wanted_history || tx.written_maps().next().is_some() {
                    return None;
                }
                result
                    .unwrap_or_else(|e| e.into_response())
                    .with_header(TX_ID_HEADER, self.read_txid.to_string())
            }
        };
        self.metrics.record(
            endpoint.method.as_str(),
            &endpoint.template,
            response.status,
            0,
        );
        Some(if request.method == Method::HEAD {
            Response {
                body: bytes::Bytes::new(),
                ..response
            }
        } else {
            response
        })
    }
}

impl Node {
    /// The node's state as read-only requests see it. O(1) in the size of the store.
    pub fn read_view(&self) -> ReadView {
        ReadView {
            store: self.store.snapshot(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            consensus: self.consensus.clone(),
            service: self.service.clone(),
            app_open: self.app_frontend_open(),
            read_txid: TxId::new(self.view_of_last(), self.consensus.last_seqno),
            forwarded_sessions: self.forwarded_sessions.clone(),
        }
    }
}
