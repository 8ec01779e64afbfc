//! Every bound in coco lives here, with its unit last in the name (house style).
//!
//! Defaults follow CCF's where CCF has one (`cchost` configuration schema); configuration may
//! override the ones marked "default".

/// Default maximum HTTP request body (CCF `http_configuration.max_body_size`, "1MB").
pub const HTTP_BODY_SIZE_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// Default maximum total size of request headers (CCF `max_header_size`, "16KB").
pub const HTTP_HEADER_SIZE_BYTES_MAX_DEFAULT: usize = 16 * 1024;
/// Default maximum number of request headers (CCF `max_headers_count`).
pub const HTTP_HEADER_COUNT_MAX_DEFAULT: usize = 256;
/// Default soft cap on open client sessions per interface: past it, 503 `SessionCapExhausted`.
pub const SESSIONS_SOFT_MAX_DEFAULT: usize = 1000;
/// Default hard cap on open client sessions per interface: past it, connections are dropped.
pub const SESSIONS_HARD_MAX_DEFAULT: usize = 1010;

/// Default number of transactions between signature transactions (`ledger_signatures.tx_count`).
pub const SIGNATURE_TX_INTERVAL_COUNT_DEFAULT: u64 = 5000;
/// Default time between signature transactions (`ledger_signatures.delay`).
pub const SIGNATURE_INTERVAL_MS_DEFAULT: u64 = 1000;
/// With an adaptive signature interval (`ledger_signatures.commit_latency_target`), signatures
/// are at least this far apart: it bounds what signing costs the core (at most 200 a second).
pub const SIGNATURE_ADAPTIVE_INTERVAL_MIN_MS: u64 = 5;
/// Default ledger chunk size threshold (`ledger.chunk_size`, "5MB").
pub const LEDGER_CHUNK_SIZE_BYTES_DEFAULT: u64 = 5 * 1024 * 1024;
/// Default number of transactions between snapshots (`snapshots.tx_count`).
pub const SNAPSHOT_TX_INTERVAL_COUNT_DEFAULT: u64 = 10_000;
/// Snapshots captured but not yet committed at most; past it no new one is taken until one
/// commits (CCF's `max_pending_snapshots_count`).
pub const SNAPSHOTS_PENDING_COUNT_MAX: usize = 5;
/// Largest snapshot a joiner downloads (`command.join.fetch_snapshot_max_size`, "10GB").
pub const SNAPSHOT_FETCH_BYTES_MAX_DEFAULT: u64 = 10 * 1024 * 1024 * 1024;
/// Bytes per ranged request when a joiner downloads a snapshot (CCF fetches 4 MiB at a time).
pub const SNAPSHOT_FETCH_RANGE_BYTES: u64 = 4 * 1024 * 1024;
/// A chunk's positions table holds u32 offsets, so a chunk can never exceed 4 GiB.
pub const LEDGER_CHUNK_SIZE_BYTES_MAX: u64 = u32::MAX as u64;
/// An entry's size field is a u48.
pub const LEDGER_ENTRY_SIZE_BYTES_MAX: u64 = (1 << 48) - 1;
/// Largest single entry coco will read back from disk; bigger claims are treated as corruption
/// rather than allocated.
pub const LEDGER_ENTRY_READ_BYTES_MAX: u64 = 1 << 32;

/// Default heartbeat interval of a primary (`consensus.message_timeout`, "100ms").
pub const CONSENSUS_MESSAGE_TIMEOUT_MS_DEFAULT: u64 = 100;
/// Default election timeout (`consensus.election_timeout`, "5000ms").
pub const CONSENSUS_ELECTION_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Entries per AppendEntries message at most.
pub const APPEND_ENTRIES_BATCH_COUNT_MAX: usize = 1_000;
/// Largest consensus message a node accepts from a peer (a full AppendEntries batch of large
/// entries fits; anything bigger is refused before it is parsed).
pub const CONSENSUS_MESSAGE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Most voting nodes in one configuration.
pub const CONFIGURATION_NODE_COUNT_MAX: usize = 1_024;
/// Longest node id on the wire (CCF's are 64 hex characters).
pub const NODE_ID_BYTES_MAX: usize = 255;

/// Default backpressure bound: transactions executed but not yet globally committed
/// (`consensus.max_uncommitted_tx_count`); past it, 503 `TooManyPendingTransactions`.
pub const UNCOMMITTED_TX_COUNT_MAX_DEFAULT: u64 = 10_000;
/// Admission with a commit latency target (`crates/node/src/admission.rs`): the primary holds new
/// writes while its oldest signature awaiting commit has waited more than this many targets…
pub const ADMISSION_HOLD_TARGET_MULTIPLE: u64 = 2;
/// …holding at most this many (more get 503 `TooManyPendingTransactions`)…
pub const ADMISSION_HELD_COUNT_MAX: usize = 10_000;
/// …each for at most this long (then 503; under a backup's forwarding timeout, so a forwarded
/// write gets the primary's answer).
pub const ADMISSION_HOLD_MS_MAX: u64 = 1_000;
/// Times a conflicting transaction is re-executed before giving up
/// (`TransactionCommitAttemptsExceedLimit`).
pub const TX_EXECUTION_ATTEMPTS_MAX: u32 = 30;

/// Requests queued for the node core before new requests are refused.
pub const CORE_REQUEST_QUEUE_COUNT_MAX: usize = 65_536;
/// Outputs (ledger appends, peer messages, replies) the core thread lets accumulate while it
/// drains a long queue before it hands them over: storage starts writing, and backups
/// acknowledging, while the rest of the queue executes.
pub const CORE_OUTPUTS_FLUSH_COUNT: usize = 256;
/// Ledger entries handed to the storage thread in one write batch at most.
pub const LEDGER_WRITE_BATCH_COUNT_MAX: usize = 10_000;

/// Default validity of the service and node certificates in days (CCF's default is 1; the
/// sandbox uses 90 as documented).
pub const CERTIFICATE_VALIDITY_DAYS_DEFAULT: u32 = 1;
/// Validity the sandbox gives every certificate it generates.
pub const SANDBOX_CERTIFICATE_VALIDITY_DAYS: u32 = 90;

/// Largest view a ledger entry's GCM IV can carry: the top bit of the IV's view word marks
/// snapshots (CCF `TxGcmHeader::set_iv_term`).
pub const GCM_IV_VIEW_MAX: u64 = 0x7FFF_FFFF;

/// Largest `ccf.gov.msg.created_at` a proposal may carry: CCF's replay key pads it to 10 digits.
pub const PROPOSAL_CREATED_AT_SECONDS_MAX: i64 = 9_999_999_999;
/// Default number of recent proposals kept for replay protection
/// (`recent_cose_proposals_window_size`).
pub const RECENT_COSE_PROPOSALS_WINDOW_COUNT_DEFAULT: u64 = 100;

/// `ccf.gov.validateConstitution` evaluates a proposed constitution in a runtime of its own,
/// with these memory limits (and the calling script's remaining time).
pub const VALIDATE_CONSTITUTION_HEAP_BYTES: usize = 32 * 1024 * 1024;
pub const VALIDATE_CONSTITUTION_STACK_BYTES: usize = 1024 * 1024;
/// Consensus messages queued for one peer before further ones are dropped.
pub const N2N_QUEUE_MESSAGE_COUNT_MAX: usize = 4_096;

/// How long a backup waits for the primary to answer a forwarded request (CCF's
/// `forwarding_timeout_ms` default) before answering 504 itself.
pub const FORWARDING_TIMEOUT_MS_DEFAULT: u64 = 3_000;

/// Ledger entries a node keeps in memory for historical queries and receipts
/// (`historical_cache_soft_limit`, CCF's default "512MB"); least recently used go first.
pub const HISTORICAL_CACHE_BYTES_MAX_DEFAULT: usize = 512 * 1024 * 1024;
/// A ledger read for historical queries not answered after this long is asked for again.
pub const HISTORICAL_READ_RETRY_MS: u64 = 5_000;
/// `Retry-After` (seconds) of a 202 answered while historical entries load (CCF's value).
pub const HISTORICAL_RETRY_AFTER_S: u64 = 3;
/// Entries read at a time when a node started from a snapshot looks for the signature after an
/// older transaction (the signature interval's default).
pub const HISTORICAL_SIGNATURE_SEARCH_SEQNOS: u64 = 5_000;
/// Seqnos one page of a historical range query covers; the rest is behind `@nextLink`.
pub const HISTORICAL_RANGE_SEQNOS_PER_PAGE: u64 = 2_000;

/// Entries a recovering node reads back from its ledger at a time while it replays the previous
/// service's private domains (CCF's `recovery_batch_size`).
pub const PRIVATE_RECOVERY_READ_BATCH_COUNT: u64 = 1_000;

/// How long a node joining a recovered service waits for a snapshot taken after the recovery.
pub const JOIN_SNAPSHOT_WAIT_MS: u64 = 60_000;
