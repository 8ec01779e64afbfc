//! A minimal OpenAPI 3 document generated from a registry, served at `/{frontend}/api` as CCF
//! does. It lists every path, method, summary and security scheme (auth policy).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{AuthPolicy, Registry};

/// Builds the OpenAPI document for the endpoints of `registry` whose template starts with
/// `prefix` (e.g. `/app`). Paths are listed relative to the server URL `prefix`, as CCF does.
pub fn document(registry: &Registry, prefix: &str, title: &str, version: &str) -> Value {
    let mut paths: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut schemes: BTreeMap<&'static str, Value> = BTreeMap::new();
    for e in registry.endpoints() {
        let Some(rel) = e.template.strip_prefix(prefix) else {
            continue;
        };
        let security: Vec<Value> = e
            .auth_policies
            .iter()
            .filter(|p| **p != AuthPolicy::NoAuth)
            .map(|p| json!({ p.name(): [] }))
            .collect();
        for p in &e.auth_policies {
            if *p != AuthPolicy::NoAuth {
                schemes.insert(p.name(), json!({"type": "http", "scheme": "mutual-tls", "description": format!("CCF {} policy: TLS client certificate", p.name())}));
            }
        }
        let mut op = json!({
            "summary": e.summary,
            "responses": {"default": {"description": "Default response"}},
        });
        if !security.is_empty() {
            op["security"] = Value::Array(security);
        }
        let params: Vec<Value> = e
            .template
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.split_once('}')).map(|(name, _)| name))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        paths
            .entry(rel.to_owned())
            .or_default()
            .insert(e.method.as_str().to_lowercase(), op);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": title, "version": version, "description": "coco (CCF-compatible) endpoints"},
        "servers": [{"url": prefix}],
        "paths": paths,
        "components": {"securitySchemes": schemes},
    })
}
