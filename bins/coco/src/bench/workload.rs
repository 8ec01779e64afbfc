//! What `coco bench` sends: the n-th request of a workload, against coco (or CCF: the logging
//! app) or etcd's v3 JSON gateway. Pure: the same n always gives the same request.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coco_client::Method;

/// Which service the requests are shaped for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// coco or CCF: the logging app (`/app/log/{private,public}`).
    Coco,
    /// etcd's v3 JSON gateway (`/v3/kv/put`, `/v3/kv/range`).
    Etcd,
}

/// The mix of requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Private-map writes (`POST /app/log/private`); etcd: puts.
    PrivateWrite,
    /// Public-map writes (`POST /app/log/public`); etcd: puts.
    PublicWrite,
    /// Reads of keys written first (`GET /app/log/private?id=N`); etcd: ranges.
    Read,
    /// Reads and private writes, `--read-ratio` of them reads.
    Mixed,
    /// The request of `--template-*`, with `{id}`, `{value}` and `{n}` substituted.
    Template,
}

/// A configurable request: method, path and body with placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub method: Method,
    pub path: String,
    pub body: String,
}

/// One request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    pub method: Method,
    pub path: String,
    pub body: Bytes,
    /// A write to coco: its transaction id can be waited for (commit latency).
    pub is_write: bool,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub target: Target,
    pub kind: Kind,
    /// Distinct keys; request n uses key `n % keys`.
    pub keys: u64,
    pub value: String,
    /// Share of reads in `Mixed`, in thousandths.
    pub read_permille: u64,
    pub template: Option<Template>,
}

/// A well-mixed hash of n (splitmix64's finaliser): decides reads and writes in `Mixed` without
/// shared randomness, so that every run sends the same sequence.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Workload {
    /// The n-th request of the run.
    pub fn request(&self, n: u64) -> RequestSpec {
        let id = n % self.keys.max(1);
        match self.kind {
            Kind::PrivateWrite => self.write(id, true),
            Kind::PublicWrite => self.write(id, false),
            Kind::Read => self.read(id),
            Kind::Mixed => {
                if mix(n) % 1000 < self.read_permille {
                    self.read(id)
                } else {
                    self.write(id, true)
                }
            }
            Kind::Template => {
                let t = self
                    .template
                    .as_ref()
                    .expect("a template workload has a template");
                let fill = |s: &str| {
                    s.replace("{id}", &id.to_string())
                        .replace("{value}", &self.value)
                        .replace("{n}", &n.to_string())
                };
                RequestSpec {
                    method: t.method.clone(),
                    path: fill(&t.path),
                    body: Bytes::from(fill(&t.body)),
                    is_write: self.target == Target::Coco && t.method != Method::GET,
                }
            }
        }
    }

    /// What must exist before a read workload starts: a write of every key.
    pub fn preload(&self) -> impl Iterator<Item = RequestSpec> + '_ {
        let needed = matches!(self.kind, Kind::Read | Kind::Mixed);
        (0..if needed { self.keys } else { 0 }).map(|id| self.write(id, true))
    }

    fn write(&self, id: u64, private: bool) -> RequestSpec {
        match self.target {
            Target::Coco => RequestSpec {
                method: Method::POST,
                path: if private {
                    "/app/log/private"
                } else {
                    "/app/log/public"
                }
                .to_owned(),
                body: Bytes::from(serde_json::json!({ "id": id, "msg": self.value }).to_string()),
                is_write: true,
            },
            Target::Etcd => RequestSpec {
                method: Method::POST,
                path: "/v3/kv/put".to_owned(),
                body: Bytes::from(
                    serde_json::json!({
                        "key": B64.encode(format!("key{id}")),
                        "value": B64.encode(&self.value),
                    })
                    .to_string(),
                ),
                is_write: false,
            },
        }
    }

    fn read(&self, id: u64) -> RequestSpec {
        match self.target {
            Target::Coco => RequestSpec {
                method: Method::GET,
                path: format!("/app/log/private?id={id}"),
                body: Bytes::new(),
                is_write: false,
            },
            Target::Etcd => RequestSpec {
                method: Method::POST,
                path: "/v3/kv/range".to_owned(),
                body: Bytes::from(
                    serde_json::json!({ "key": B64.encode(format!("key{id}")) }).to_string(),
                ),
                is_write: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(target: Target, kind: Kind) -> Workload {
        Workload {
            target,
            kind,
            keys: 10,
            value: "vv".into(),
            read_permille: 900,
            template: Some(Template {
                method: Method::PUT,
                path: "/app/kv/{id}".into(),
                body: r#"{"v":"{value}","n":{n}}"#.into(),
            }),
        }
    }

    #[test]
    fn requests_follow_the_workload_and_target() {
        let w = workload(Target::Coco, Kind::PrivateWrite).request(13);
        assert_eq!(w.method, Method::POST);
        assert_eq!(w.path, "/app/log/private");
        assert_eq!(&w.body[..], br#"{"id":3,"msg":"vv"}"#);
        assert!(w.is_write);
        let r = workload(Target::Coco, Kind::Read).request(7);
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::GET, "/app/log/private?id=7")
        );
        assert!(!r.is_write);
        let e = workload(Target::Etcd, Kind::PublicWrite).request(2);
        assert_eq!(e.path, "/v3/kv/put");
        let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(body["key"], B64.encode("key2"));
        assert_eq!(body["value"], B64.encode("vv"));
        assert!(!e.is_write, "etcd puts return once committed");
        let r = workload(Target::Etcd, Kind::Read).request(4);
        assert_eq!(r.path, "/v3/kv/range");
        let t = workload(Target::Coco, Kind::Template).request(12);
        assert_eq!(t.method, Method::PUT);
        assert_eq!(t.path, "/app/kv/2");
        assert_eq!(&t.body[..], br#"{"v":"vv","n":12}"#);
    }

    #[test]
    fn a_mixed_workload_reads_its_share_and_reads_need_a_preload() {
        let w = workload(Target::Coco, Kind::Mixed);
        let reads = (0..10_000)
            .filter(|n| w.request(*n).method == Method::GET)
            .count();
        assert!((8_700..9_300).contains(&reads), "{reads} reads of 10,000");
        assert_eq!(w.preload().count(), 10);
        assert_eq!(
            workload(Target::Coco, Kind::PublicWrite).preload().count(),
            0
        );
    }
}
