//! The cluster simulator over a range of seeds, as CI runs it. More seeds:
//! `COCO_NODE_SIM_SEEDS=2000 cargo test --release -p sim`, or `cargo run --release -p sim --
//! --seed 1 --seeds 2000`. A failure names the seed; `cargo run -p sim -- --seed N --verbose`
//! replays it.

fn seeds(default: u64) -> u64 {
    std::env::var("COCO_NODE_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs seeds `first..first + count` (count scaled by the environment override).
fn run(nodes: usize, first: u64, count: u64) {
    let count = seeds(count);
    let mut failures = Vec::new();
    for seed in first..first + count {
        let opts = sim::Options {
            seed,
            nodes,
            steps: 3_000,
            verbose: false,
        };
        if let Err(e) = sim::run(&opts) {
            failures.push(format!(
                "seed {seed} ({nodes} nodes): {e}\n  replay: cargo run -p sim -- --seed {seed} --nodes {nodes} --verbose"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// Split so that the test runner spreads them over the cores.
#[test]
fn three_nodes_seeds_a() {
    run(3, 1, 60);
}

#[test]
fn three_nodes_seeds_b() {
    run(3, 10_001, 60);
}

#[test]
fn five_nodes_seeds_a() {
    run(5, 20_001, 30);
}

#[test]
fn five_nodes_seeds_b() {
    run(5, 30_001, 30);
}
