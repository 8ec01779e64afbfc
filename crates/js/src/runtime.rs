//! The worker thread: one QuickJS runtime and context holding the constitution module.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coco_kv::Tx;
use rquickjs::{
    CatchResultExt, Context, Ctx, Exception, Function, Module, Object, Persistent, Runtime, Value,
};

use coco_codec::tables;
use coco_node::proposals::NetworkIdentity;
use coco_types::limits::{VALIDATE_CONSTITUTION_HEAP_BYTES, VALIDATE_CONSTITUTION_STACK_BYTES};

use crate::{Call, Job, JobResult, JsLimits};

/// What a script may do with `ccf.kv` during a call (CCF `doc/audit/read_write_restrictions.rst`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvAccess {
    /// validate, ballots, resolve: read public maps only.
    ReadOnly,
    /// apply: read public maps, write `public:ccf.gov.*` maps.
    ApplyGovernance,
}

struct Shared {
    tx: RefCell<Option<Tx>>,
    /// `ccf.network` during an `apply`.
    network: RefCell<Option<NetworkIdentity>>,
    /// Node hooks requested by `ccf.node.*` during an `apply`.
    hooks: RefCell<Vec<String>>,
    access: Cell<KvAccess>,
    ballots: Cell<u64>,
    /// When the current call must end (shared with the interrupt handler).
    deadline: Rc<Cell<Instant>>,
}

/// The JavaScript side of the `ccf` global, built on the natives in `__coco`.
const PRELUDE: &str = r#"
(function () {
  const n = globalThis.__coco;
  delete globalThis.__coco;
  const toBytes = (b) => {
    if (b instanceof ArrayBuffer) return Array.from(new Uint8Array(b));
    if (ArrayBuffer.isView(b)) return Array.from(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    throw new TypeError("expected an ArrayBuffer");
  };
  const toBuf = (a) => new Uint8Array(a).buffer;
  const argc = (a, want) => {
    if (a.length !== want) throw new TypeError(`Passed ${a.length} arguments but expected ${want === 0 ? "none" : want}`);
  };
  const toIndex = (v) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 0 || x > Number.MAX_SAFE_INTEGER) throw new RangeError("invalid array index");
    return x;
  };
  function kvMap(name) {
    const map = {
      has: (k) => n.kv_has(name, toBytes(k)),
      get: (k) => { const v = n.kv_get(name, toBytes(k)); return v === undefined || v === null ? undefined : toBuf(v); },
      getVersionOfPreviousWrite: (k) => { const v = n.kv_version(name, toBytes(k)); return v === null ? undefined : v; },
      set: (k, v) => { n.kv_set(name, toBytes(k), toBytes(v)); return map; },
      delete: (k) => n.kv_delete(name, toBytes(k)),
      clear: () => n.kv_clear(name),
      forEach: (cb) => { const e = n.kv_entries(name); for (let i = 0; i < e.length; i += 2) cb(toBuf(e[i + 1]), toBuf(e[i]), map); },
      get size() { return n.kv_size(name); },
    };
    return map;
  }
  globalThis.ccf = {
    kv: new Proxy({}, { get: (_, name) => (typeof name === "string" ? kvMap(name) : undefined) }),
    strToBuf: (s) => toBuf(n.str_to_bytes(String(s))),
    bufToStr: (b) => n.bytes_to_str(toBytes(b)),
    jsonCompatibleToBuf: (v) => toBuf(n.str_to_bytes(JSON.stringify(v))),
    bufToJsonCompatible: (b) => JSON.parse(n.bytes_to_str(toBytes(b))),
    pemToId: (pem) => n.pem_to_id(pem),
    network: {
      getLatestLedgerSecretSeqno: (...a) => { argc(a, 0); return n.network_secret_seqno(); },
      generateEndorsedCertificate: (...a) => { argc(a, 3); return n.network_endorse(String(a[0]), String(a[1]), toIndex(a[2])); },
      generateNetworkCertificate: (...a) => { argc(a, 2); return n.network_renew(String(a[0]), toIndex(a[1])); },
    },
    setJwtPublicSigningKeys: (...a) => {
      argc(a, 3);
      if (typeof a[0] !== "string") throw new TypeError("issuer argument is not a string");
      n.jwt_set(a[0], JSON.stringify(a[1]), JSON.stringify(a[2]));
    },
    removeJwtPublicSigningKeys: (...a) => {
      argc(a, 1);
      if (typeof a[0] !== "string") throw new TypeError("issuer argument is not a string");
      n.jwt_remove(a[0]);
    },
    gov: {
      validateConstitution: (...a) => {
        if (a.length !== 1) throw new TypeError(`Passed ${a.length} arguments, but expected 1`);
        if (typeof a[0] !== "string") throw new TypeError("constitution is not a string");
        if (a[0].length === 0) throw new TypeError("constitution is empty");
        return n.validate_constitution(a[0]);
      },
    },
    refreshAppBytecodeCache: (...a) => { argc(a, 0); n.refresh_bytecode_cache(); },
    node: {
      transitionServiceToOpen: (previous, next) =>
        n.node_open(previous === undefined || previous === null ? null : n.bytes_to_str(toBytes(previous)), n.bytes_to_str(toBytes(next))),
      triggerLedgerChunk: () => n.node_hook("TriggerLedgerChunk"),
      triggerSnapshot: () => n.node_hook("TriggerSnapshot"),
      triggerLedgerRekey: () => n.node_hook("TriggerLedgerRekey"),
      triggerRecoverySharesRefresh: () => n.node_hook("TriggerRecoverySharesRefresh"),
    },
    crypto: {
      digest: (alg, b) => {
        if (alg !== "SHA-256") throw new Error("unsupported digest algorithm " + alg);
        return toBuf(n.sha256(toBytes(b)));
      },
      isValidX509CertBundle: (pem) => n.is_valid_cert_bundle(pem),
    },
  };
})();
"#;

fn throw(ctx: &Ctx<'_>, msg: impl AsRef<str>) -> rquickjs::Error {
    Exception::throw_message(ctx, msg.as_ref())
}

/// Runs `f` on the transaction of the current call, after checking `map` may be read (and
/// written, if `write`).
fn with_tx<R>(
    ctx: &Ctx<'_>,
    shared: &Shared,
    map: &str,
    write: bool,
    f: impl FnOnce(&mut Tx) -> R,
) -> rquickjs::Result<R> {
    if !map.starts_with("public:") {
        return Err(throw(
            ctx,
            format!("map '{map}' is private: governance scripts may not access it"),
        ));
    }
    if write {
        match shared.access.get() {
            KvAccess::ReadOnly => {
                return Err(throw(
                    ctx,
                    format!("map '{map}' is read-only in this context"),
                ));
            }
            KvAccess::ApplyGovernance if !map.starts_with("public:ccf.gov.") => {
                return Err(throw(
                    ctx,
                    format!("apply may only write governance maps, not '{map}'"),
                ));
            }
            KvAccess::ApplyGovernance => {}
        }
    }
    let mut guard = shared.tx.borrow_mut();
    let tx = guard
        .as_mut()
        .ok_or_else(|| throw(ctx, "ccf.kv is only available during a call"))?;
    Ok(f(tx))
}

fn install(ctx: &Ctx<'_>, shared: &Rc<Shared>) -> rquickjs::Result<()> {
    let n = Object::new(ctx.clone())?;
    let s = shared.clone();
    n.set(
        "kv_has",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, map: String, key: Vec<u8>| {
                with_tx(&ctx, &s, &map, false, |tx| tx.has(&map, &key))
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "kv_get",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, map: String, key: Vec<u8>| {
                with_tx(&ctx, &s, &map, false, |tx| {
                    tx.get(&map, &key).map(|v| v.to_vec())
                })
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "kv_version",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, map: String, key: Vec<u8>| {
                with_tx(&ctx, &s, &map, false, |tx| {
                    tx.get_version_of_previous_write(&map, &key)
                        .map(|v| v as f64)
                })
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "kv_set",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, map: String, key: Vec<u8>, value: Vec<u8>| {
                with_tx(&ctx, &s, &map, true, |tx| {
                    tx.put(&map, Bytes::from(key), Bytes::from(value))
                })
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "kv_delete",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, map: String, key: Vec<u8>| {
                with_tx(&ctx, &s, &map, true, |tx| tx.remove(&map, &key))
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "kv_clear",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, map: String| {
            with_tx(&ctx, &s, &map, true, |tx| tx.clear(&map))
        })?,
    )?;
    let s = shared.clone();
    n.set(
        "kv_size",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, map: String| {
            with_tx(&ctx, &s, &map, false, |tx| tx.size(&map) as f64)
        })?,
    )?;
    let s = shared.clone();
    n.set(
        "kv_entries",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, map: String| {
            with_tx(&ctx, &s, &map, false, |tx| {
                let mut flat: Vec<Vec<u8>> = Vec::new();
                tx.for_each(&map, |k, v| {
                    flat.push(k.to_vec());
                    flat.push(v.to_vec());
                    true
                });
                flat
            })
        })?,
    )?;
    n.set(
        "str_to_bytes",
        Function::new(ctx.clone(), |s: String| s.into_bytes())?,
    )?;
    n.set(
        "bytes_to_str",
        Function::new(ctx.clone(), |ctx: Ctx<'_>, b: Vec<u8>| {
            String::from_utf8(b).map_err(|_| throw(&ctx, "buffer is not valid UTF-8"))
        })?,
    )?;
    n.set(
        "pem_to_id",
        Function::new(ctx.clone(), |ctx: Ctx<'_>, pem: String| {
            let der = coco_crypto::pem_to_der_certs(&pem)
                .ok()
                .and_then(|d| d.into_iter().next())
                .ok_or_else(|| throw(&ctx, "pemToId: not a PEM certificate"))?;
            Ok::<_, rquickjs::Error>(coco_crypto::cert_der_fingerprint_hex(&der))
        })?,
    )?;
    n.set(
        "sha256",
        Function::new(ctx.clone(), |b: Vec<u8>| coco_crypto::sha256(&b).to_vec())?,
    )?;
    n.set(
        "is_valid_cert_bundle",
        Function::new(ctx.clone(), |pem: String| {
            coco_crypto::pem_to_der_certs(&pem).is_ok_and(|ders| {
                !ders.is_empty()
                    && ders
                        .iter()
                        .all(|d| coco_crypto::cert_public_key_spki_der(d).is_ok())
            })
        })?,
    )?;
    let s = shared.clone();
    n.set(
        "network_secret_seqno",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>| {
            with_network(&ctx, &s, |net| Ok(net.latest_ledger_secret_seqno as f64))
        })?,
    )?;
    let s = shared.clone();
    n.set(
        "network_endorse",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, csr: String, valid_from: String, days: f64| {
                with_network(&ctx, &s, |net| {
                    net.generate_endorsed_certificate(&csr, &valid_from, days as u64)
                })
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "network_renew",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, valid_from: String, days: f64| {
                with_network(&ctx, &s, |net| {
                    net.generate_network_certificate(&valid_from, days as u64)
                })
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "jwt_set",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, issuer: String, _metadata: String, jwks: String| {
                let jwks: serde_json::Value = serde_json::from_str(&jwks)
                    .map_err(|_| throw(&ctx, "jwks argument is not a JSON object"))?;
                with_tx(&ctx, &s, coco_node::jwt::JWT_KEYS, true, |tx| {
                    coco_node::jwt::set_public_signing_keys(tx, &issuer, &jwks)
                })?
                .map_err(|e| throw(&ctx, format!("Error setting JWT public signing keys: {e}")))
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "jwt_remove",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, issuer: String| {
            with_tx(&ctx, &s, coco_node::jwt::JWT_KEYS, true, |tx| {
                coco_node::jwt::remove_public_signing_keys(tx, &issuer)
            })?
            .map_err(|e| {
                throw(
                    &ctx,
                    format!("Failed to remove JWT public signing keys: {e}"),
                )
            })
        })?,
    )?;
    let s = shared.clone();
    n.set(
        "node_open",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, previous: Option<String>, next: String| {
                if s.access.get() != KvAccess::ApplyGovernance {
                    return Err(throw(
                        &ctx,
                        "ccf.node functions may only be called by apply",
                    ));
                }
                let network = with_network(&ctx, &s, |n| Ok(n.clone()))?;
                with_tx(&ctx, &s, tables::SERVICE_INFO, true, |tx| {
                    coco_node::gov::open_service(tx, previous.as_deref(), &next, &network)
                })?
                .map_err(|e| throw(&ctx, e))
            },
        )?,
    )?;
    let s = shared.clone();
    n.set(
        "refresh_bytecode_cache",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>| {
            // coco compiles JS app modules when it loads them and keeps no bytecode table, so
            // there is nothing to refresh; like CCF, only apply may ask.
            if s.access.get() != KvAccess::ApplyGovernance {
                return Err(throw(
                    &ctx,
                    "refreshAppBytecodeCache may only be called by apply",
                ));
            }
            Ok(())
        })?,
    )?;
    let s = shared.clone();
    n.set(
        "validate_constitution",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, source: String| {
            validate_constitution(&source, s.deadline.get())
                .map_err(|e| Exception::throw_type(&ctx, &e))
        })?,
    )?;
    let s = shared.clone();
    n.set(
        "node_hook",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, name: String| {
            if s.access.get() != KvAccess::ApplyGovernance {
                return Err(throw(
                    &ctx,
                    "ccf.node functions may only be called by apply",
                ));
            }
            s.hooks.borrow_mut().push(name);
            Ok(())
        })?,
    )?;
    ctx.globals().set("__coco", n)?;
    ctx.eval::<(), _>(PRELUDE)?;
    Ok(())
}

/// `ccf.gov.validateConstitution(source)` (CCF `src/js/extensions/ccf/gov.cpp`): the source must
/// evaluate as a module exporting `validate(input)`, `resolve(proposal, proposerId, votes[,
/// proposalId])` and `apply(proposal, proposalId)`. It is evaluated in a separate runtime, with
/// no `ccf` global, so it cannot touch the calling constitution, and within what is left of the
/// calling script's time.
fn validate_constitution(source: &str, deadline: Instant) -> Result<bool, String> {
    let path = "proposed constitution";
    let rt = Runtime::new().map_err(|e| e.to_string())?;
    rt.set_memory_limit(VALIDATE_CONSTITUTION_HEAP_BYTES);
    rt.set_max_stack_size(VALIDATE_CONSTITUTION_STACK_BYTES);
    rt.set_interrupt_handler(Some(Box::new(move || Instant::now() > deadline)));
    let context = Context::full(&rt).map_err(|e| e.to_string())?;
    context.with(|ctx| {
        let (module, promise) = Module::declare(ctx.clone(), "proposed-constitution", source)
            .catch(&ctx)
            .and_then(|m| m.eval().catch(&ctx))
            .map_err(|e| format!("{path} does not evaluate: {e}"))?;
        promise
            .finish::<()>()
            .catch(&ctx)
            .map_err(|e| format!("{path} does not evaluate: {e}"))?;
        let ns = module.namespace().map_err(|e| e.to_string())?;
        for (name, min, max, args) in [
            ("apply", 2, 2, "2 args (proposal, proposalId)"),
            (
                "resolve",
                3,
                4,
                "between 3 and 4 args (proposal, proposerId, votes[, proposalId])",
            ),
            ("validate", 1, 1, "1 arg (input)"),
        ] {
            let f: Function = ns
                .get(name)
                .map_err(|_| format!("{path} does not export a function named {name}"))?;
            let length: u32 = f.get("length").map_err(|e| e.to_string())?;
            if length < min || length > max {
                let plural = if length == 1 { "arg" } else { "args" };
                return Err(format!(
                    "{path} exports function {name} with {length} {plural}, expected {args}"
                ));
            }
        }
        Ok(true)
    })
}

/// Runs `f` with the service identity of the current `apply` (CCF offers `ccf.network` to
/// governance scripts only).
fn with_network<R>(
    ctx: &Ctx<'_>,
    shared: &Shared,
    f: impl FnOnce(&NetworkIdentity) -> Result<R, String>,
) -> rquickjs::Result<R> {
    let guard = shared.network.borrow();
    let net = guard
        .as_ref()
        .ok_or_else(|| throw(ctx, "ccf.network is only available to apply"))?;
    f(net).map_err(|e| throw(ctx, e))
}

fn caught(ctx: &Ctx<'_>, e: rquickjs::CaughtError<'_>) -> String {
    let _ = ctx;
    e.to_string()
}

fn to_json<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> Result<serde_json::Value, String> {
    if v.is_promise() {
        return Err(
            "governance entry points must be synchronous (an async function returned a Promise)"
                .into(),
        );
    }
    if v.is_undefined() {
        return Ok(serde_json::Value::Null);
    }
    let text = ctx
        .json_stringify(v)
        .map_err(|e| e.to_string())?
        .map(|s| s.to_string())
        .transpose()
        .map_err(|e| e.to_string())?;
    match text {
        None => Ok(serde_json::Value::Null),
        Some(t) => serde_json::from_str(&t).map_err(|e| e.to_string()),
    }
}

fn run_call<'js>(
    ctx: &Ctx<'js>,
    ns: &Object<'js>,
    shared: &Shared,
    call: Call,
) -> Result<serde_json::Value, String> {
    let get = |name: &str| {
        ns.get::<_, Function>(name)
            .map_err(|_| format!("the constitution does not export {name}()"))
    };
    match call {
        Call::Validate { proposal } => {
            shared.access.set(KvAccess::ReadOnly);
            let v: Value = get("validate")?
                .call((proposal,))
                .catch(ctx)
                .map_err(|e| caught(ctx, e))?;
            to_json(ctx, v)
        }
        Call::Resolve {
            proposal,
            proposer_id,
            votes_json,
            proposal_id,
        } => {
            shared.access.set(KvAccess::ReadOnly);
            let votes: Value = ctx.json_parse(votes_json).map_err(|e| e.to_string())?;
            let v: Value = get("resolve")?
                .call((proposal, proposer_id, votes, proposal_id))
                .catch(ctx)
                .map_err(|e| caught(ctx, e))?;
            to_json(ctx, v)
        }
        Call::Apply {
            proposal,
            proposal_id,
            network,
        } => {
            shared.access.set(KvAccess::ApplyGovernance);
            shared.hooks.borrow_mut().clear();
            *shared.network.borrow_mut() = Some(network);
            let result: Result<Value, String> = get("apply")?
                .call((proposal, proposal_id))
                .catch(ctx)
                .map_err(|e| caught(ctx, e));
            *shared.network.borrow_mut() = None;
            to_json(ctx, result?)?;
            Ok(serde_json::Value::from(std::mem::take(
                &mut *shared.hooks.borrow_mut(),
            )))
        }
        Call::Ballot {
            ballot,
            proposal,
            proposer_id,
        } => {
            shared.access.set(KvAccess::ReadOnly);
            let n = shared.ballots.get() + 1;
            shared.ballots.set(n);
            let (module, promise) = Module::declare(ctx.clone(), format!("ballot-{n}"), ballot)
                .catch(ctx)
                .map_err(|e| format!("ballot does not compile: {}", caught(ctx, e)))?
                .eval()
                .catch(ctx)
                .map_err(|e| format!("ballot does not evaluate: {}", caught(ctx, e)))?;
            promise
                .finish::<()>()
                .catch(ctx)
                .map_err(|e| caught(ctx, e))?;
            let vote: Function = module
                .namespace()
                .and_then(|ns| ns.get("vote"))
                .map_err(|_| "a ballot must export vote()".to_owned())?;
            let v: Value = vote
                .call((proposal, proposer_id))
                .catch(ctx)
                .map_err(|e| caught(ctx, e))?;
            to_json(ctx, v)
        }
    }
}

pub(crate) fn worker(
    source: String,
    limits: JsLimits,
    jobs: Receiver<Job>,
    results: Sender<JobResult>,
    ready: Sender<Result<(), String>>,
) {
    let setup = || -> Result<(Runtime, Context), String> {
        let rt = Runtime::new().map_err(|e| e.to_string())?;
        rt.set_memory_limit(limits.max_heap_bytes);
        rt.set_max_stack_size(limits.max_stack_bytes);
        let ctx = Context::full(&rt).map_err(|e| e.to_string())?;
        Ok((rt, ctx))
    };
    let (rt, ctx) = match setup() {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let deadline = Rc::new(Cell::new(
        Instant::now() + Duration::from_millis(limits.max_execution_time_ms),
    ));
    let d = deadline.clone();
    rt.set_interrupt_handler(Some(Box::new(move || Instant::now() > d.get())));
    let shared = Rc::new(Shared {
        tx: RefCell::new(None),
        network: RefCell::new(None),
        hooks: RefCell::new(Vec::new()),
        access: Cell::new(KvAccess::ReadOnly),
        ballots: Cell::new(0),
        deadline: deadline.clone(),
    });
    let namespace = ctx.with(|ctx| -> Result<Persistent<Object<'static>>, String> {
        install(&ctx, &shared)
            .catch(&ctx)
            .map_err(|e| format!("installing the ccf global: {}", caught(&ctx, e)))?;
        let (module, promise) = Module::declare(ctx.clone(), "constitution", source)
            .catch(&ctx)
            .map_err(|e| format!("the constitution does not compile: {}", caught(&ctx, e)))?
            .eval()
            .catch(&ctx)
            .map_err(|e| format!("the constitution does not evaluate: {}", caught(&ctx, e)))?;
        promise
            .finish::<()>()
            .catch(&ctx)
            .map_err(|e| caught(&ctx, e))?;
        let ns = module.namespace().map_err(|e| e.to_string())?;
        Ok(Persistent::save(&ctx, ns))
    });
    let namespace = match namespace {
        Ok(ns) => {
            let _ = ready.send(Ok(()));
            ns
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while let Ok(Job { seq, tx, call }) = jobs.recv() {
        *shared.tx.borrow_mut() = Some(tx);
        deadline.set(Instant::now() + Duration::from_millis(limits.max_execution_time_ms));
        let result = ctx.with(|ctx| {
            let ns = namespace.clone().restore(&ctx).map_err(|e| e.to_string())?;
            run_call(&ctx, &ns, &shared, call)
        });
        let tx = shared.tx.borrow_mut().take().expect("set for the call");
        if results.send((seq, tx, result)).is_err() {
            return;
        }
    }
}
