//! Every script in `crates/sim/scenarios/` runs against a simulated cluster of real cores (the
//! language is described in `sim::scenario`).

#[test]
fn scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "scenarios in {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        let script = std::fs::read_to_string(f).unwrap();
        if let Err(e) = sim::scenario::run_scenario(&script) {
            failures.push(format!("{}: {e}", f.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_failing_expectation_names_its_line() {
    let e = sim::scenario::run_scenario("nodes 3\nrun 300\nexpect primary n1\n").unwrap_err();
    assert!(e.starts_with("line 3: `expect primary n1`"), "{e}");
    let e = sim::scenario::run_scenario("run 5\n").unwrap_err();
    assert!(e.contains("start with `nodes N`"), "{e}");
    let e = sim::scenario::run_scenario("nodes 3\nfly n0\n").unwrap_err();
    assert!(e.contains("unknown command"), "{e}");
}
