// coco's default constitution.
//
// A CCF-compatible constitution: it exports validate(input), resolve(proposal, proposerId,
// votes, proposalId) and apply(proposal, proposalId), and implements governance actions under
// CCF's names with CCF's argument shapes. Proposals are accepted by a strict majority of active
// members and rejected once a majority can no longer be reached.

const SINGLETON = () => new ArrayBuffer(8);

function getSingleton(map) {
  const v = ccf.kv[map].get(SINGLETON());
  return v === undefined ? undefined : ccf.bufToJsonCompatible(v);
}

function setSingleton(map, value) {
  ccf.kv[map].set(SINGLETON(), ccf.jsonCompatibleToBuf(value));
}

// ---------------------------------------------------------------- argument checks

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

function checkType(value, type, field) {
  if (type === "array") {
    check(Array.isArray(value), `${field} must be an array`);
  } else if (type === "integer") {
    check(Number.isInteger(value), `${field} must be an integer`);
  } else {
    check(typeof value === type, `${field} must be of type ${type}, not ${typeof value}`);
  }
}

function checkOptional(value, type, field) {
  if (value !== undefined && value !== null) {
    checkType(value, type, field);
  }
}

function checkCert(pem, field) {
  checkType(pem, "string", field);
  check(ccf.crypto.isValidX509CertBundle(pem), `${field} must be a valid X.509 certificate`);
}

function checkEnum(value, allowed, field) {
  check(allowed.includes(value), `${field} must be one of ${allowed.join(", ")}`);
}

// ---------------------------------------------------------------- helpers over the KV

function putJson(map, key, value) {
  ccf.kv[map].set(ccf.strToBuf(key), ccf.jsonCompatibleToBuf(value));
}

function getJson(map, key) {
  const v = ccf.kv[map].get(ccf.strToBuf(key));
  return v === undefined ? undefined : ccf.bufToJsonCompatible(v);
}

function putRaw(map, key, text) {
  ccf.kv[map].set(ccf.strToBuf(key), ccf.strToBuf(text));
}

function remove(map, key) {
  ccf.kv[map].delete(ccf.strToBuf(key));
}

function activeMemberCount() {
  let n = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach((v) => {
    if (ccf.bufToJsonCompatible(v).status === "Active") {
      n += 1;
    }
  });
  return n;
}

// ---------------------------------------------------------------- actions

class Action {
  constructor(validate, apply) {
    this.validate = validate;
    this.apply = apply;
  }
}

function setMember(args) {
  checkCert(args.cert, "cert");
  checkOptional(args.encryption_pub_key, "string", "encryption_pub_key");
  if (args.recovery_role !== undefined) {
    checkEnum(args.recovery_role, ["NonParticipant", "Participant", "Owner"], "recovery_role");
  }
  const id = ccf.pemToId(args.cert);
  putRaw("public:ccf.gov.members.certs", id, args.cert);
  const info = { status: "Accepted" };
  if (args.member_data !== undefined && args.member_data !== null) {
    info.member_data = args.member_data;
  }
  if (args.recovery_role !== undefined) {
    info.recovery_role = args.recovery_role;
  }
  putJson("public:ccf.gov.members.info", id, info);
  if (args.encryption_pub_key) {
    putRaw("public:ccf.gov.members.encryption_public_keys", id, args.encryption_pub_key);
  } else {
    remove("public:ccf.gov.members.encryption_public_keys", id);
  }
}

const actions = new Map([
  ["set_constitution", new Action(
    (args) => {
      checkType(args.constitution, "string", "constitution");
      ccf.gov.validateConstitution(args.constitution);
    },
    (args) => setSingleton("public:ccf.gov.constitution", args.constitution),
  )],
  ["set_member", new Action(
    (args) => setMemberArgs(args),
    (args) => setMember(args),
  )],
  ["remove_member", new Action(
    (args) => checkType(args.member_id, "string", "member_id"),
    (args) => {
      for (const map of ["certs", "info", "encryption_public_keys", "acks"]) {
        remove(`public:ccf.gov.members.${map}`, args.member_id);
      }
    },
  )],
  ["set_member_data", new Action(
    (args) => checkType(args.member_id, "string", "member_id"),
    (args) => {
      const info = getJson("public:ccf.gov.members.info", args.member_id);
      check(info !== undefined, `member ${args.member_id} does not exist`);
      info.member_data = args.member_data;
      putJson("public:ccf.gov.members.info", args.member_id, info);
    },
  )],
  ["set_user", new Action(
    (args) => checkCert(args.cert, "cert"),
    (args) => {
      const id = ccf.pemToId(args.cert);
      putRaw("public:ccf.gov.users.certs", id, args.cert);
      putJson("public:ccf.gov.users.info", id, { user_data: args.user_data === undefined ? null : args.user_data });
    },
  )],
  ["remove_user", new Action(
    (args) => checkType(args.user_id, "string", "user_id"),
    (args) => {
      remove("public:ccf.gov.users.certs", args.user_id);
      remove("public:ccf.gov.users.info", args.user_id);
    },
  )],
  ["set_user_data", new Action(
    (args) => checkType(args.user_id, "string", "user_id"),
    (args) => {
      check(ccf.kv["public:ccf.gov.users.certs"].has(ccf.strToBuf(args.user_id)), `user ${args.user_id} does not exist`);
      putJson("public:ccf.gov.users.info", args.user_id, { user_data: args.user_data === undefined ? null : args.user_data });
    },
  )],
  ["set_recovery_threshold", new Action(
    (args) => {
      checkType(args.recovery_threshold, "integer", "recovery_threshold");
      check(args.recovery_threshold >= 1 && args.recovery_threshold <= 255, "recovery_threshold must be between 1 and 255");
    },
    (args) => {
      // As CCF's checkRecoveryThreshold: an open service must keep enough active recovery
      // members to recover. (The node re-issues recovery shares in the same transaction.)
      const service = getSingleton("public:ccf.gov.service.info");
      if (service !== undefined && service.status === "Open") {
        let active = 0;
        ccf.kv["public:ccf.gov.members.encryption_public_keys"].forEach((_, k) => {
          const info = ccf.kv["public:ccf.gov.members.info"].get(k);
          if (info !== undefined && ccf.bufToJsonCompatible(info).status === "Active") {
            active += 1;
          }
        });
        check(args.recovery_threshold <= active,
          `Cannot set recovery threshold to ${args.recovery_threshold}: recovery threshold would be greater than the number of recovery members ${active}`);
      }
      const config = getSingleton("public:ccf.gov.service.config");
      config.recovery_threshold = args.recovery_threshold;
      setSingleton("public:ccf.gov.service.config", config);
    },
  )],
  ["transition_service_to_open", new Action(
    (args) => {
      checkCert(args.next_service_identity, "next_service_identity");
      if (args.previous_service_identity !== undefined) {
        checkCert(args.previous_service_identity, "previous_service_identity");
      }
    },
    (args) => {
      const previous = args.previous_service_identity === undefined ? undefined : ccf.strToBuf(args.previous_service_identity);
      ccf.node.transitionServiceToOpen(previous, ccf.strToBuf(args.next_service_identity));
    },
  )],
  ["set_node_data", new Action(
    (args) => checkType(args.node_id, "string", "node_id"),
    (args) => {
      const info = getJson("public:ccf.gov.nodes.info", args.node_id);
      check(info !== undefined, `node ${args.node_id} does not exist`);
      info.node_data = args.node_data;
      putJson("public:ccf.gov.nodes.info", args.node_id, info);
    },
  )],
  ["set_ca_cert_bundle", new Action(
    (args) => {
      checkType(args.name, "string", "name");
      checkCert(args.cert_bundle, "cert_bundle");
    },
    (args) => putRaw("public:ccf.gov.tls.ca_cert_bundles", args.name, args.cert_bundle),
  )],
  ["remove_ca_cert_bundle", new Action(
    (args) => checkType(args.name, "string", "name"),
    (args) => remove("public:ccf.gov.tls.ca_cert_bundles", args.name),
  )],
  ["add_virtual_measurement", new Action(
    (args) => checkType(args.measurement, "string", "measurement"),
    (args) => putJson("public:ccf.gov.nodes.virtual.measurements", args.measurement, "AllowedToJoin"),
  )],
  ["remove_virtual_measurement", new Action(
    (args) => checkType(args.measurement, "string", "measurement"),
    (args) => remove("public:ccf.gov.nodes.virtual.measurements", args.measurement),
  )],
  ["add_virtual_host_data", new Action(
    (args) => checkType(args.host_data, "string", "host_data"),
    (args) => putJson("public:ccf.gov.nodes.virtual.host_data", args.host_data, args.metadata === undefined ? "" : args.metadata),
  )],
  ["remove_virtual_host_data", new Action(
    (args) => checkType(args.host_data, "string", "host_data"),
    (args) => remove("public:ccf.gov.nodes.virtual.host_data", args.host_data),
  )],
]);

// JWT issuers and their signing keys. The node stores keys as CCF does (DER public keys under
// their kid in public:ccf.gov.jwt.public_signing_keys_metadata_v2) through
// ccf.setJwtPublicSigningKeys / ccf.removeJwtPublicSigningKeys.
const JWT_ISSUERS = "public:ccf.gov.jwt.issuers";

function checkJwks(jwks, field) {
  check(jwks !== null && typeof jwks === "object" && Array.isArray(jwks.keys), `${field} must be {"keys": [...]}`);
  check(jwks.keys.length > 0, `${field}.keys must not be empty`);
  jwks.keys.forEach((k, i) => {
    checkType(k.kid, "string", `${field}.keys[${i}].kid`);
    checkOptional(k.issuer, "string", `${field}.keys[${i}].issuer`);
    if (k.x5c !== undefined) {
      checkType(k.x5c, "array", `${field}.keys[${i}].x5c`);
      check(k.x5c.length > 0 && typeof k.x5c[0] === "string", `${field}.keys[${i}].x5c must hold a base64 certificate`);
    } else if (k.kty === "RSA") {
      checkType(k.n, "string", `${field}.keys[${i}].n`);
      checkType(k.e, "string", `${field}.keys[${i}].e`);
    } else if (k.kty === "EC") {
      checkEnum(k.crv, ["P-256", "P-384"], `${field}.keys[${i}].crv`);
      checkType(k.x, "string", `${field}.keys[${i}].x`);
      checkType(k.y, "string", `${field}.keys[${i}].y`);
    } else {
      throw new Error(`${field}.keys[${i}] must carry x5c, or be an RSA or EC key`);
    }
  });
}

actions.set("set_jwt_issuer", new Action(
  (args) => {
    checkType(args.issuer, "string", "issuer");
    checkOptional(args.auto_refresh, "boolean", "auto_refresh");
    checkOptional(args.ca_cert_bundle_name, "string", "ca_cert_bundle_name");
    if (args.jwks !== undefined) {
      checkJwks(args.jwks, "jwks");
    }
  },
  (args) => {
    if (args.auto_refresh === true) {
      check(args.ca_cert_bundle_name !== undefined, "auto_refresh requires ca_cert_bundle_name");
      check(ccf.kv["public:ccf.gov.tls.ca_cert_bundles"].has(ccf.strToBuf(args.ca_cert_bundle_name)),
        `No CA cert bundle named ${args.ca_cert_bundle_name}`);
    }
    const metadata = { auto_refresh: args.auto_refresh === true };
    if (args.ca_cert_bundle_name !== undefined) {
      metadata.ca_cert_bundle_name = args.ca_cert_bundle_name;
    }
    putJson(JWT_ISSUERS, args.issuer, metadata);
    if (args.jwks !== undefined) {
      ccf.setJwtPublicSigningKeys(args.issuer, metadata, args.jwks);
    }
  },
));
actions.set("set_jwt_public_signing_keys", new Action(
  (args) => {
    checkType(args.issuer, "string", "issuer");
    checkJwks(args.jwks, "jwks");
  },
  (args) => {
    const metadata = getJson(JWT_ISSUERS, args.issuer);
    check(metadata !== undefined, `issuer ${args.issuer} is not registered`);
    ccf.setJwtPublicSigningKeys(args.issuer, metadata, args.jwks);
  },
));
actions.set("remove_jwt_issuer", new Action(
  (args) => checkType(args.issuer, "string", "issuer"),
  (args) => {
    check(getJson(JWT_ISSUERS, args.issuer) !== undefined, `issuer ${args.issuer} is not registered`);
    remove(JWT_ISSUERS, args.issuer);
    ccf.removeJwtPublicSigningKeys(args.issuer);
  },
));

// Service configuration, nodes, attestation policy, runtime options.
actions.set("set_service_configuration", new Action(
  (args) => {
    checkOptional(args.recovery_threshold, "integer", "recovery_threshold");
    checkOptional(args.maximum_node_certificate_validity_days, "integer", "maximum_node_certificate_validity_days");
    checkOptional(args.maximum_service_certificate_validity_days, "integer", "maximum_service_certificate_validity_days");
    checkOptional(args.recent_cose_proposals_window_size, "integer", "recent_cose_proposals_window_size");
    if (args.reconfiguration_type !== undefined) {
      checkEnum(args.reconfiguration_type, ["OneTransaction", "TwoTransaction"], "reconfiguration_type");
    }
  },
  (args) => {
    const config = getSingleton("public:ccf.gov.service.config") || {};
    for (const field of ["recovery_threshold", "maximum_node_certificate_validity_days",
      "maximum_service_certificate_validity_days", "recent_cose_proposals_window_size", "reconfiguration_type"]) {
      if (args[field] !== undefined) {
        config[field] = args[field];
      }
    }
    setSingleton("public:ccf.gov.service.config", config);
  },
));

function setNodeStatus(nodeId, status) {
  const info = getJson("public:ccf.gov.nodes.info", nodeId);
  check(info !== undefined, `node ${nodeId} does not exist`);
  info.status = status;
  putJson("public:ccf.gov.nodes.info", nodeId, info);
}

// Node certificates: the service identity endorses a node's CSR (ccf.network), for at most
// maximum_node_certificate_validity_days (365 by default).
const DEFAULT_CERT_VALIDITY_DAYS = 365;

function checkValidity(args) {
  checkType(args.valid_from, "string", "valid_from");
  if (args.validity_period_days !== undefined) {
    checkType(args.validity_period_days, "integer", "validity_period_days");
    check(args.validity_period_days >= 1, "validity_period_days must be at least 1");
  }
}

function validityDays(requested, maxField) {
  const config = getSingleton("public:ccf.gov.service.config") || {};
  const max = config[maxField] ?? DEFAULT_CERT_VALIDITY_DAYS;
  check(requested === undefined || requested <= max,
    `Validity period ${requested} (days) is not allowed: service max allowed is ${max} (days)`);
  return requested ?? max;
}

function endorseNode(nodeId, info, validFrom, requestedDays) {
  check(info.certificate_signing_request !== undefined, `Node ${nodeId} has no certificate signing request`);
  const days = validityDays(requestedDays, "maximum_node_certificate_validity_days");
  const cert = ccf.network.generateEndorsedCertificate(info.certificate_signing_request, validFrom, days);
  putRaw("public:ccf.gov.nodes.endorsed_certificates", nodeId, cert);
}

actions.set("transition_node_to_trusted", new Action(
  (args) => {
    checkType(args.node_id, "string", "node_id");
    checkValidity(args);
  },
  (args) => {
    const info = getJson("public:ccf.gov.nodes.info", args.node_id);
    check(info !== undefined, `No such node: ${args.node_id}`);
    if (info.status === "Pending") {
      info.status = "Trusted";
      info.ledger_secret_seqno = ccf.network.getLatestLedgerSecretSeqno();
      putJson("public:ccf.gov.nodes.info", args.node_id, info);
      if (info.certificate_signing_request !== undefined) {
        endorseNode(args.node_id, info, args.valid_from, args.validity_period_days);
      }
    }
  },
));
actions.set("set_node_certificate_validity", new Action(
  (args) => {
    checkType(args.node_id, "string", "node_id");
    checkValidity(args);
  },
  (args) => {
    const info = getJson("public:ccf.gov.nodes.info", args.node_id);
    check(info !== undefined, `No such node: ${args.node_id}`);
    check(info.status === "Trusted", `Node ${args.node_id} is not trusted`);
    endorseNode(args.node_id, info, args.valid_from, args.validity_period_days);
  },
));
actions.set("set_all_nodes_certificate_validity", new Action(
  (args) => checkValidity(args),
  (args) => {
    const trusted = [];
    ccf.kv["public:ccf.gov.nodes.info"].forEach((v, k) => {
      const info = ccf.bufToJsonCompatible(v);
      if (info.status === "Trusted") {
        trusted.push([ccf.bufToStr(k), info]);
      }
    });
    for (const [nodeId, info] of trusted) {
      endorseNode(nodeId, info, args.valid_from, args.validity_period_days);
    }
  },
));
actions.set("set_service_certificate_validity", new Action(
  (args) => checkValidity(args),
  (args) => {
    const days = validityDays(args.validity_period_days, "maximum_service_certificate_validity_days");
    const info = getSingleton("public:ccf.gov.service.info");
    check(info !== undefined, "Service info could not be found");
    info.cert = ccf.network.generateNetworkCertificate(args.valid_from, days);
    setSingleton("public:ccf.gov.service.info", info);
  },
));
actions.set("remove_node", new Action(
  (args) => checkType(args.node_id, "string", "node_id"),
  (args) => setNodeStatus(args.node_id, "Retired"),
));
actions.set("assert_service_identity", new Action(
  (args) => checkType(args.service_identity, "string", "service_identity"),
  (args) => {
    const info = getSingleton("public:ccf.gov.service.info");
    check(info.cert.trim() === args.service_identity.trim(), "service identity does not match");
  },
));
actions.set("set_js_runtime_options", new Action(
  (args) => {
    for (const field of ["max_heap_bytes", "max_stack_bytes", "max_execution_time_ms", "max_cached_interpreters"]) {
      checkOptional(args[field], "integer", field);
    }
    checkOptional(args.log_exception_details, "boolean", "log_exception_details");
    checkOptional(args.return_exception_details, "boolean", "return_exception_details");
  },
  (args) => setSingleton("public:ccf.gov.js_runtime_options", args),
));

function setAndRemove(name, map, keyField, value) {
  actions.set(`add_${name}`, new Action(
    (args) => checkType(args[keyField], "string", keyField),
    (args) => putJson(map, args[keyField], value(args)),
  ));
  actions.set(`remove_${name}`, new Action(
    (args) => checkType(args[keyField], "string", keyField),
    (args) => remove(map, args[keyField]),
  ));
}
setAndRemove("snp_measurement", "public:ccf.gov.nodes.snp.measurements", "measurement", () => "AllowedToJoin");
setAndRemove("snp_host_data", "public:ccf.gov.nodes.snp.host_data", "host_data", (args) => (args.metadata === undefined ? "" : args.metadata));
actions.set("add_snp_uvm_endorsement", new Action(
  (args) => {
    checkType(args.did, "string", "did");
    checkType(args.feed, "string", "feed");
    checkType(args.svn, "string", "svn");
  },
  (args) => {
    const current = getJson("public:ccf.gov.nodes.snp.uvm_endorsements", args.did) || {};
    current[args.feed] = { svn: args.svn };
    putJson("public:ccf.gov.nodes.snp.uvm_endorsements", args.did, current);
  },
));
actions.set("remove_snp_uvm_endorsement", new Action(
  (args) => {
    checkType(args.did, "string", "did");
    checkType(args.feed, "string", "feed");
  },
  (args) => {
    const current = getJson("public:ccf.gov.nodes.snp.uvm_endorsements", args.did);
    check(current !== undefined && current[args.feed] !== undefined, `no UVM endorsement for ${args.did} ${args.feed}`);
    delete current[args.feed];
    if (Object.keys(current).length === 0) {
      remove("public:ccf.gov.nodes.snp.uvm_endorsements", args.did);
    } else {
      putJson("public:ccf.gov.nodes.snp.uvm_endorsements", args.did, current);
    }
  },
));
actions.set("set_snp_minimum_tcb_version", new Action(
  (args) => {
    checkType(args.cpuid, "string", "cpuid");
    check(args.tcb_version !== null && typeof args.tcb_version === "object", "tcb_version must be an object");
  },
  (args) => putJson("public:ccf.gov.nodes.snp.tcb_versions", args.cpuid, args.tcb_version),
));
actions.set("remove_snp_minimum_tcb_version", new Action(
  (args) => checkType(args.cpuid, "string", "cpuid"),
  (args) => remove("public:ccf.gov.nodes.snp.tcb_versions", args.cpuid),
));

// JavaScript applications: modules under "/<name>" in public:ccf.gov.modules, endpoint
// properties under "<METHOD> <url>" in public:ccf.gov.endpoints (js_module prefixed "/").
const JS_MODULES = "public:ccf.gov.modules";
const JS_ENDPOINTS = "public:ccf.gov.endpoints";

function clearJsApp() {
  ccf.kv[JS_MODULES].clear();
  ccf.kv[JS_ENDPOINTS].clear();
}

actions.set("set_js_app", new Action(
  (args) => {
    check(args.bundle !== null && typeof args.bundle === "object", "bundle must be an object");
    checkType(args.bundle.modules, "array", "bundle.modules");
    args.bundle.modules.forEach((m, i) => {
      checkType(m.name, "string", `bundle.modules[${i}].name`);
      checkType(m.module, "string", `bundle.modules[${i}].module`);
    });
    const endpoints = (args.bundle.metadata || {}).endpoints || {};
    check(typeof endpoints === "object", "bundle.metadata.endpoints must be an object");
    const names = new Set(args.bundle.modules.map((m) => m.name));
    for (const [url, methods] of Object.entries(endpoints)) {
      for (const [method, props] of Object.entries(methods)) {
        checkType(props.js_module, "string", `${method} ${url}: js_module`);
        checkType(props.js_function, "string", `${method} ${url}: js_function`);
        check(names.has(props.js_module), `${method} ${url}: module ${props.js_module} is not in the bundle`);
      }
    }
    checkOptional(args.disable_bytecode_cache, "boolean", "disable_bytecode_cache");
  },
  (args) => {
    clearJsApp();
    for (const m of args.bundle.modules) {
      putJson(JS_MODULES, `/${m.name}`, m.module);
    }
    const endpoints = (args.bundle.metadata || {}).endpoints || {};
    for (const [url, methods] of Object.entries(endpoints)) {
      for (const [method, props] of Object.entries(methods)) {
        const stored = Object.assign({}, props, { js_module: `/${props.js_module}` });
        putJson(JS_ENDPOINTS, `${method.toUpperCase()} ${url}`, stored);
      }
    }
  },
));
actions.set("remove_js_app", new Action(() => {}, () => clearJsApp()));
// coco keeps no bytecode cache: the action is accepted for compatibility and changes nothing.
actions.set("refresh_js_app_bytecode_cache", new Action(() => {}, () => ccf.refreshAppBytecodeCache()));

// Requests the node acts on (CCF's ccf.node.* calls), once the proposal commits.
for (const [name, hook] of [
  ["trigger_ledger_chunk", () => ccf.node.triggerLedgerChunk()],
  ["trigger_snapshot", () => ccf.node.triggerSnapshot()],
  ["trigger_ledger_rekey", () => ccf.node.triggerLedgerRekey()],
  ["trigger_recovery_shares_refresh", () => ccf.node.triggerRecoverySharesRefresh()],
]) {
  actions.set(name, new Action(() => {}, hook));
}

function setMemberArgs(args) {
  checkCert(args.cert, "cert");
  checkOptional(args.encryption_pub_key, "string", "encryption_pub_key");
  if (args.recovery_role !== undefined) {
    checkEnum(args.recovery_role, ["NonParticipant", "Participant", "Owner"], "recovery_role");
  }
}

// ---------------------------------------------------------------- entry points

export function validate(input) {
  let proposal;
  try {
    proposal = JSON.parse(input);
  } catch (e) {
    return { valid: false, description: `the proposal is not JSON: ${e.message}` };
  }
  if (!Array.isArray(proposal.actions)) {
    return { valid: false, description: "a proposal is {\"actions\": [{\"name\": ..., \"args\": {...}}]}" };
  }
  const errors = [];
  proposal.actions.forEach((action, i) => {
    const definition = actions.get(action.name);
    if (definition === undefined) {
      errors.push(`actions[${i}]: unknown action "${action.name}"`);
      return;
    }
    try {
      definition.validate(action.args === undefined ? {} : action.args);
    } catch (e) {
      errors.push(`actions[${i}] (${action.name}): ${e.message}`);
    }
  });
  return errors.length === 0
    ? { valid: true, description: "OK" }
    : { valid: false, description: errors.join("; ") };
}

export function resolve(proposal, proposerId, votes, proposalId) {
  const active = activeMemberCount();
  const yes = votes.filter((v) => v.vote).length;
  const no = votes.length - yes;
  if (yes * 2 > active) {
    return "Accepted";
  }
  // Once the no votes reach half of the active members, a strict majority is out of reach.
  if (no * 2 >= active) {
    return "Rejected";
  }
  return "Open";
}

export function apply(proposal, proposalId) {
  for (const action of JSON.parse(proposal).actions) {
    actions.get(action.name).apply(action.args === undefined ? {} : action.args, proposalId);
  }
}
