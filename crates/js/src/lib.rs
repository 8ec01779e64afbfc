//! CCF governance JavaScript in QuickJS (rquickjs): the constitution (`validate`, `resolve`,
//! `apply`) and ballots (`vote`), with the part of CCF's `ccf` global that constitutions use.
//!
//! The QuickJS runtime is not `Send`, so each loaded constitution lives on its own worker thread;
//! [`JsConstitution`] holds only channels. A call moves a clone of the KV transaction to the worker
//! and back, so a script can reach the transaction only for the duration of the call.
//!
//! Limits (CCF's defaults): 100 MiB heap, 1 MiB stack, 5,000 ms per call. A runaway or failing
//! script fails its proposal; it never blocks or crashes the node. This crate is an application
//! runtime at the edge: reading the clock for the execution deadline is its business.

mod runtime;

use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use coco_kv::Tx;
use coco_node::proposals::{
    Constitution, ConstitutionLoader, NetworkIdentity, NodeHook, ProposalState, Validation,
};

pub use runtime::KvAccess;

/// Resource limits of one script call (CCF `set_js_runtime_options`).
#[derive(Clone, Copy, Debug)]
pub struct JsLimits {
    pub max_heap_bytes: usize,
    pub max_stack_bytes: usize,
    pub max_execution_time_ms: u64,
}

impl JsLimits {
    /// Applies the JSON of `public:ccf.gov.js_runtime_options` (CCF field names); absent fields
    /// keep their current values.
    pub fn with_options(self, json: &str) -> Result<JsLimits, String> {
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("js_runtime_options do not parse: {e}"))?;
        let get = |field: &str| v.get(field).and_then(serde_json::Value::as_u64);
        Ok(JsLimits {
            max_heap_bytes: get("max_heap_bytes")
                .map(|x| x as usize)
                .unwrap_or(self.max_heap_bytes),
            max_stack_bytes: get("max_stack_bytes")
                .map(|x| x as usize)
                .unwrap_or(self.max_stack_bytes),
            max_execution_time_ms: get("max_execution_time_ms")
                .unwrap_or(self.max_execution_time_ms),
        })
    }
}

impl Default for JsLimits {
    fn default() -> Self {
        JsLimits {
            max_heap_bytes: 100 * 1024 * 1024,
            max_stack_bytes: 1024 * 1024,
            max_execution_time_ms: 5_000,
        }
    }
}

/// A call into the constitution.
enum Call {
    Validate {
        proposal: String,
    },
    Ballot {
        ballot: String,
        proposal: String,
        proposer_id: String,
    },
    Resolve {
        proposal: String,
        proposer_id: String,
        votes_json: String,
        proposal_id: String,
    },
    Apply {
        proposal: String,
        proposal_id: String,
        network: NetworkIdentity,
    },
}

struct Job {
    /// Sequence number: answers are matched to their call, never to a later one.
    seq: u64,
    tx: Tx,
    call: Call,
}

/// What a call returned: its sequence number, the transaction back, and the JSON of the result
/// or an error message.
type JobResult = (u64, Tx, Result<serde_json::Value, String>);

/// The channels to one worker thread.
struct Worker {
    jobs: Sender<Job>,
    results: Receiver<JobResult>,
    next_seq: u64,
}

impl Worker {
    fn spawn(source: &str, limits: JsLimits) -> Result<Worker, String> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (result_tx, results) = mpsc::channel::<JobResult>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let source = source.to_owned();
        std::thread::Builder::new()
            .name("coco-constitution".into())
            .spawn(move || runtime::worker(source, limits, job_rx, result_tx, ready_tx))
            .map_err(|e| format!("cannot start the constitution thread: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the constitution thread exited".to_owned())??;
        Ok(Worker {
            jobs,
            results,
            next_seq: 0,
        })
    }
}

/// A constitution running on its own QuickJS worker thread.
pub struct JsConstitution {
    worker: Mutex<Worker>,
    source: String,
    limits: JsLimits,
}

impl JsConstitution {
    /// Compiles `source` as the constitution module on a new worker thread.
    pub fn start(source: &str, limits: JsLimits) -> Result<Self, String> {
        Ok(JsConstitution {
            worker: Mutex::new(Worker::spawn(source, limits)?),
            source: source.to_owned(),
            limits,
        })
    }

    fn call(&self, tx: &mut Tx, call: Call) -> Result<serde_json::Value, String> {
        let mut worker = self
            .worker
            .lock()
            .map_err(|_| "constitution runtime poisoned".to_owned())?;
        worker.next_seq += 1;
        let seq = worker.next_seq;
        worker
            .jobs
            .send(Job {
                seq,
                tx: tx.clone(),
                call,
            })
            .map_err(|_| "the constitution thread exited".to_owned())?;
        // The worker's interrupt handler enforces the deadline for JavaScript, but QuickJS checks
        // it only between JS operations: a script busy inside one long native call can overrun.
        // Past this grace period the worker is abandoned (its late answer can never be taken for
        // another call's) and a fresh one replaces it; the caller's transaction is untouched.
        let grace = Duration::from_millis(
            self.limits
                .max_execution_time_ms
                .saturating_mul(2)
                .max(1_000),
        );
        let deadline = std::time::Instant::now() + grace;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match worker.results.recv_timeout(left) {
                Ok((got, back, result)) if got == seq => {
                    *tx = back;
                    return result;
                }
                // An answer to an earlier, abandoned call: discard it.
                Ok(_) => continue,
                Err(_) => {
                    *worker = Worker::spawn(&self.source, self.limits)?;
                    return Err(format!(
                        "the constitution did not finish within {} ms",
                        grace.as_millis()
                    ));
                }
            }
        }
    }
}

impl Constitution for JsConstitution {
    fn validate(&self, tx: &mut Tx, proposal: &str) -> Result<Validation, String> {
        let v = self.call(
            tx,
            Call::Validate {
                proposal: proposal.to_owned(),
            },
        )?;
        let valid = v
            .get("valid")
            .and_then(serde_json::Value::as_bool)
            .ok_or("validate must return {valid, description}")?;
        let description = v
            .get("description")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned();
        Ok(Validation { valid, description })
    }

    fn ballot(
        &self,
        tx: &mut Tx,
        ballot: &str,
        proposal: &str,
        proposer_id: &str,
    ) -> Result<bool, String> {
        let v = self.call(
            tx,
            Call::Ballot {
                ballot: ballot.to_owned(),
                proposal: proposal.to_owned(),
                proposer_id: proposer_id.to_owned(),
            },
        )?;
        v.as_bool()
            .ok_or_else(|| format!("vote must return a boolean, got {v}"))
    }

    fn resolve(
        &self,
        tx: &mut Tx,
        proposal: &str,
        proposer_id: &str,
        votes: &[(String, bool)],
        proposal_id: &str,
    ) -> Result<ProposalState, String> {
        let votes_json = serde_json::Value::Array(
            votes
                .iter()
                .map(|(m, v)| serde_json::json!({"member_id": m, "vote": v}))
                .collect(),
        )
        .to_string();
        let v = self.call(
            tx,
            Call::Resolve {
                proposal: proposal.to_owned(),
                proposer_id: proposer_id.to_owned(),
                votes_json,
                proposal_id: proposal_id.to_owned(),
            },
        )?;
        match v.as_str() {
            Some("Open") => Ok(ProposalState::Open),
            Some("Accepted") => Ok(ProposalState::Accepted),
            Some("Rejected") => Ok(ProposalState::Rejected),
            _ => Err(format!(
                "resolve must return \"Open\", \"Accepted\" or \"Rejected\", got {v}"
            )),
        }
    }

    fn apply(
        &self,
        tx: &mut Tx,
        proposal: &str,
        proposal_id: &str,
        network: &NetworkIdentity,
    ) -> Result<Vec<NodeHook>, String> {
        let v = self.call(
            tx,
            Call::Apply {
                proposal: proposal.to_owned(),
                proposal_id: proposal_id.to_owned(),
                network: network.clone(),
            },
        )?;
        v.as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                h.as_str()
                    .and_then(NodeHook::from_name)
                    .ok_or_else(|| format!("unknown node hook {h}"))
            })
            .collect()
    }
}

/// Loads stored constitutions into [`JsConstitution`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsConstitutionLoader {
    pub limits: JsLimits,
}

impl ConstitutionLoader for JsConstitutionLoader {
    fn load(
        &self,
        source: &str,
        runtime_options: Option<&str>,
    ) -> Result<Box<dyn Constitution + Send>, String> {
        let limits = match runtime_options {
            None => self.limits,
            Some(json) => self.limits.with_options(json)?,
        };
        Ok(Box::new(JsConstitution::start(source, limits)?))
    }
}

#[cfg(test)]
mod tests;
