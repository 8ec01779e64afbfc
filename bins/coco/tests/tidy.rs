//! Tidy: architecture invariants checked by reading the sources (house style).
//! - dependencies point one way along the layer order;
//! - pure crates have no async runtime, sockets, files, clocks or ambient randomness;
//! - crates whose output is hashed or serialised use ordered maps.

use std::path::{Path, PathBuf};

/// Layer order: a crate may depend only on crates before it.
const LAYERS: &[&str] = &[
    "types",
    "consensus",
    "crypto",
    "merkle",
    "codec",
    "kv",
    "ledger",
    "app-api",
    "app-logging",
    "node",
    "sim",
    "js",
    "client",
    "host",
];
const PURE: &[&str] = &[
    "types",
    "consensus",
    "crypto",
    "merkle",
    "codec",
    "kv",
    "ledger",
    "app-api",
    "app-logging",
    "node",
    "sim",
];
const FORBIDDEN_DEPS_IN_PURE: &[&str] = &[
    "tokio",
    "hyper",
    "hyper-util",
    "rustls",
    "tokio-rustls",
    "rand",
];
const FORBIDDEN_CODE_IN_PURE: &[&str] = &[
    "std::fs",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "std::thread",
    "tokio::",
];
/// Crates whose iteration order reaches bytes that are hashed or written: no HashMap/HashSet.
const ORDERED: &[&str] = &[
    "codec",
    "kv",
    "merkle",
    "node",
    "ledger",
    "consensus",
    "sim",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dependencies(krate: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(root().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = t == "[dependencies]";
            continue;
        }
        if in_deps
            && !t.is_empty()
            && !t.starts_with('#')
            && let Some((name, _)) = t.split_once('=')
        {
            let name = name.trim();
            out.push(name.strip_suffix(".workspace").unwrap_or(name).to_owned());
        }
    }
    out
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source text with `#[cfg(test)] mod tests` bodies and test-only files left out, and comments
/// stripped.
fn production_code(path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy();
    if name == "tests.rs" || name.ends_with("_tests.rs") || name == "test_support.rs" {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn existing(krate: &str) -> bool {
    root()
        .join("crates")
        .join(krate)
        .join("Cargo.toml")
        .exists()
}

#[test]
fn dependencies_point_one_way() {
    for (i, krate) in LAYERS.iter().enumerate() {
        if !existing(krate) {
            continue;
        }
        for dep in dependencies(krate) {
            let Some(dep_crate) = dep.strip_prefix("coco-") else {
                continue;
            };
            let j = LAYERS
                .iter()
                .position(|l| *l == dep_crate)
                .unwrap_or_else(|| panic!("{krate}: unknown coco crate {dep}"));
            assert!(
                j < i,
                "crates/{krate} depends on {dep}, which is not below it in the layer order {LAYERS:?}"
            );
        }
    }
}

#[test]
fn pure_crates_do_no_io() {
    for krate in PURE {
        if !existing(krate) {
            continue;
        }
        for dep in dependencies(krate) {
            assert!(
                !FORBIDDEN_DEPS_IN_PURE.contains(&dep.as_str()),
                "pure crate {krate} depends on {dep}"
            );
        }
        let mut files = Vec::new();
        rust_sources(&root().join("crates").join(krate).join("src"), &mut files);
        for f in files {
            let code = production_code(&f);
            for bad in FORBIDDEN_CODE_IN_PURE {
                assert!(
                    !code.contains(bad),
                    "{} (pure crate {krate}) uses {bad}",
                    f.display()
                );
            }
            if ORDERED.contains(krate) {
                for bad in ["HashMap", "HashSet"] {
                    assert!(
                        !code.contains(bad),
                        "{} uses {bad}; use BTreeMap/BTreeSet for a defined order",
                        f.display()
                    );
                }
            }
        }
    }
}

#[test]
fn limits_live_in_one_place() {
    // Numeric bounds named *_MAX / *_MAX_DEFAULT are declared only in types/src/limits.rs.
    for krate in LAYERS {
        if !existing(krate) || *krate == "types" {
            continue;
        }
        let mut files = Vec::new();
        rust_sources(&root().join("crates").join(krate).join("src"), &mut files);
        for f in files {
            for line in production_code(&f).lines() {
                let t = line.trim_start();
                let declares =
                    (t.starts_with("pub const ") || t.starts_with("const ")) && t.contains("_MAX");
                assert!(
                    !declares,
                    "{}: bound declared outside coco_types::limits: {t}",
                    f.display()
                );
            }
        }
    }
}
