//! Endpoint registry and router: `(method, path template)` → handler with its auth policies.
//!
//! Templates are CCF's: literal segments and `{name}` segments that match one non-empty path
//! segment without `/` (CCF `src/endpoints/endpoint_registry.cpp`). Literal templates are found by
//! a map lookup; templated ones by a scan in registration order — registries are small.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::Method;

use crate::{ApiError, AuthPolicy, EndpointContext, Response};

/// An endpoint's handler. Handlers are plain functions of their context: they may be
/// non-deterministic (they run only on the primary) but must not do I/O.
pub type Handler =
    Arc<dyn Fn(&mut EndpointContext<'_>) -> Result<Response, ApiError> + Send + Sync>;

/// Whether an endpoint writes to the KV store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointMode {
    ReadWrite,
    ReadOnly,
    /// Reads the state of a past transaction named by the `x-ms-ccf-transaction-id` request
    /// header (CCF's historical endpoints): the node checks it is committed, loads it (answering
    /// 202 meanwhile) and hands it over as [`crate::HistoricalState`]. Served by the node
    /// contacted, never forwarded.
    Historical,
}

/// One endpoint: what it matches, who may call it, and what it does.
#[derive(Clone)]
pub struct Endpoint {
    pub method: Method,
    /// Full path template, e.g. `/app/log/private` or `/node/network/nodes/{node_id}`.
    pub template: String,
    /// Policies tried in order; the first that accepts the caller wins. Never empty: an endpoint
    /// open to anyone says so with [`AuthPolicy::NoAuth`].
    pub auth_policies: Vec<AuthPolicy>,
    pub mode: EndpointMode,
    pub summary: String,
    pub handler: Handler,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("method", &self.method)
            .field("template", &self.template)
            .field("auth_policies", &self.auth_policies)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Outcome of routing a request.
pub enum RouteMatch<'a> {
    Found {
        endpoint: &'a Endpoint,
        path_params: BTreeMap<String, String>,
    },
    /// The path exists with other methods; CCF answers 405 `UnsupportedHttpVerb` with `Allow`.
    MethodNotAllowed {
        allowed: Vec<Method>,
    },
    NotFound,
}

#[derive(Clone, Default)]
pub struct Registry {
    endpoints: Vec<Endpoint>,
    /// Maps whose keys the node indexes by the seqnos that wrote them (CCF's `SeqnosByKey`
    /// indexing strategy), for historical range queries.
    indexed_maps: Vec<String>,
    literal: HashMap<(Method, String), usize>,
    templated: Vec<usize>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an endpoint. Panics on a duplicate `(method, template)` or an empty policy list:
    /// both are programming errors in the code that builds the registry.
    pub fn add(&mut self, endpoint: Endpoint) {
        assert!(
            !endpoint.auth_policies.is_empty(),
            "endpoint {} declares no auth policy",
            endpoint.template
        );
        assert!(
            endpoint.template.starts_with('/'),
            "template must be absolute: {}",
            endpoint.template
        );
        let duplicate = self
            .endpoints
            .iter()
            .any(|e| e.method == endpoint.method && e.template == endpoint.template);
        assert!(
            !duplicate,
            "duplicate endpoint {} {}",
            endpoint.method, endpoint.template
        );
        let index = self.endpoints.len();
        if endpoint.template.contains('{') {
            self.templated.push(index);
        } else {
            self.literal
                .insert((endpoint.method.clone(), endpoint.template.clone()), index);
        }
        self.endpoints.push(endpoint);
    }

    /// Convenience for the common case.
    pub fn route_fn<F>(
        &mut self,
        method: Method,
        template: &str,
        auth: &[AuthPolicy],
        mode: EndpointMode,
        summary: &str,
        f: F,
    ) where
        F: Fn(&mut EndpointContext<'_>) -> Result<Response, ApiError> + Send + Sync + 'static,
    {
        self.add(Endpoint {
            method,
            template: template.to_owned(),
            auth_policies: auth.to_vec(),
            mode,
            summary: summary.to_owned(),
            handler: Arc::new(f),
        });
    }

    /// Merges another registry's endpoints into this one.
    pub fn extend(&mut self, other: Registry) {
        for e in other.endpoints {
            self.add(e);
        }
        for m in other.indexed_maps {
            self.index_seqnos_by_key(&m);
        }
    }

    /// Asks the node to index `map`'s keys by the seqnos that write them.
    pub fn index_seqnos_by_key(&mut self, map: &str) {
        if !self.indexed_maps.iter().any(|m| m == map) {
            self.indexed_maps.push(map.to_owned());
        }
    }

    /// The maps indexed by [`Registry::index_seqnos_by_key`].
    pub fn indexed_maps(&self) -> &[String] {
        &self.indexed_maps
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    pub fn route(&self, method: &Method, path: &str) -> RouteMatch<'_> {
        // HEAD is served by GET endpoints when no HEAD endpoint exists, as HTTP requires.
        let lookup = |m: &Method| self.literal.get(&(m.clone(), path.to_owned())).copied();
        if let Some(i) = lookup(method).or_else(|| {
            if method == Method::HEAD {
                lookup(&Method::GET)
            } else {
                None
            }
        }) {
            return RouteMatch::Found {
                endpoint: &self.endpoints[i],
                path_params: BTreeMap::new(),
            };
        }
        let mut allowed = Vec::new();
        let mut head_fallback = None;
        for (m, p) in self.literal.keys() {
            if p == path {
                allowed.push(m.clone());
            }
        }
        for &i in &self.templated {
            let e = &self.endpoints[i];
            if let Some(params) = match_template(&e.template, path) {
                if e.method == *method {
                    return RouteMatch::Found {
                        endpoint: e,
                        path_params: params,
                    };
                }
                if *method == Method::HEAD && e.method == Method::GET && head_fallback.is_none() {
                    head_fallback = Some((e, params));
                }
                allowed.push(e.method.clone());
            }
        }
        if let Some((endpoint, path_params)) = head_fallback {
            return RouteMatch::Found {
                endpoint,
                path_params,
            };
        }
        if allowed.is_empty() {
            RouteMatch::NotFound
        } else {
            allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            allowed.dedup();
            RouteMatch::MethodNotAllowed { allowed }
        }
    }
}

/// Matches `path` against a template with `{name}` segments; returns the captured parameters.
pub fn match_template(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) => {
                // `{name}` or `{name}:action` (CCF's action suffix, e.g. `{proposalId}:withdraw`).
                if let Some(inner) = ts.strip_prefix('{') {
                    let (name, suffix) = inner.split_once('}')?;
                    let value = ps.strip_suffix(suffix)?;
                    if value.is_empty() || (!suffix.is_empty() && value.contains(':')) {
                        return None;
                    }
                    params.insert(name.to_owned(), value.to_owned());
                } else if ts != ps {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatusCode;

    fn registry() -> Registry {
        let mut r = Registry::new();
        let ok = |_: &mut EndpointContext<'_>| Ok(Response::new(StatusCode::OK));
        r.route_fn(
            Method::GET,
            "/app/log/private",
            &[AuthPolicy::UserCert],
            EndpointMode::ReadOnly,
            "",
            ok,
        );
        r.route_fn(
            Method::POST,
            "/app/log/private",
            &[AuthPolicy::UserCert],
            EndpointMode::ReadWrite,
            "",
            ok,
        );
        r.route_fn(
            Method::GET,
            "/node/network/nodes/{node_id}",
            &[AuthPolicy::NoAuth],
            EndpointMode::ReadOnly,
            "",
            ok,
        );
        r.route_fn(
            Method::GET,
            "/node/network/nodes/self",
            &[AuthPolicy::NoAuth],
            EndpointMode::ReadOnly,
            "",
            ok,
        );
        r
    }

    #[test]
    fn routing_table() {
        let r = registry();
        // (method, path, expected: Ok(template, params) | Err(allowed methods) | None = 404)
        type Want =
            Option<Result<(&'static str, Vec<(&'static str, &'static str)>), Vec<&'static str>>>;
        let cases: Vec<(Method, &str, Want)> = vec![
            (
                Method::GET,
                "/app/log/private",
                Some(Ok(("/app/log/private", vec![]))),
            ),
            (
                Method::HEAD,
                "/app/log/private",
                Some(Ok(("/app/log/private", vec![]))),
            ),
            (
                Method::PUT,
                "/app/log/private",
                Some(Err(vec!["GET", "POST"])),
            ),
            (Method::GET, "/app/log/privat", None),
            (Method::GET, "/app/log/private/", None),
            (
                Method::GET,
                "/node/network/nodes/self",
                Some(Ok(("/node/network/nodes/self", vec![]))),
            ),
            (
                Method::GET,
                "/node/network/nodes/abc",
                Some(Ok((
                    "/node/network/nodes/{node_id}",
                    vec![("node_id", "abc")],
                ))),
            ),
            (Method::GET, "/node/network/nodes/", None),
            (Method::GET, "/node/network/nodes/a/b", None),
            (
                Method::DELETE,
                "/node/network/nodes/abc",
                Some(Err(vec!["GET"])),
            ),
        ];
        for (m, path, want) in cases {
            let got = match r.route(&m, path) {
                RouteMatch::Found {
                    endpoint,
                    path_params,
                } => Some(Ok((
                    endpoint.template.clone(),
                    path_params.into_iter().collect::<Vec<_>>(),
                ))),
                RouteMatch::MethodNotAllowed { allowed } => Some(Err(allowed
                    .iter()
                    .map(|m| m.as_str().to_owned())
                    .collect::<Vec<_>>())),
                RouteMatch::NotFound => None,
            };
            let want = want.map(|w| {
                w.map(|(t, ps)| {
                    (
                        t.to_owned(),
                        ps.into_iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect::<Vec<_>>(),
                    )
                })
                .map_err(|ms| ms.into_iter().map(str::to_owned).collect::<Vec<_>>())
            });
            assert_eq!(got, want, "{m} {path}");
        }
    }

    #[test]
    #[should_panic(expected = "declares no auth policy")]
    fn endpoints_must_declare_a_policy() {
        let mut r = Registry::new();
        r.route_fn(Method::GET, "/x", &[], EndpointMode::ReadOnly, "", |_| {
            Ok(Response::new(StatusCode::OK))
        });
    }
}
