//! `cargo run -p sim -- --seed N [--steps S] [--nodes K] [--seeds M] [--verbose]`: runs the
//! cluster simulator for one seed (or M seeds from N) and prints what happened; exits non-zero
//! at the first violated property, naming the seed that replays it.

fn main() {
    let mut opts = sim::Options {
        seed: 1,
        nodes: 3,
        steps: 3_000,
        verbose: false,
    };
    let mut seeds = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match a.as_str() {
            "--seed" => opts.seed = value("--seed"),
            "--steps" => opts.steps = value("--steps"),
            "--nodes" => opts.nodes = value("--nodes") as usize,
            "--seeds" => seeds = value("--seeds"),
            "--verbose" | "-v" => opts.verbose = true,
            "--help" | "-h" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !(1..=6).contains(&opts.nodes) {
        usage("--nodes must be between 1 and 6");
    }
    let first = opts.seed;
    for seed in first..first + seeds {
        opts.seed = seed;
        match sim::run(&opts) {
            Ok(r) => println!(
                "seed {seed}: ok — commit {}, {} writes acknowledged ({} committed), {} views, \
                 {} crashes, {} joins, {} retirements, {} snapshots, {} messages",
                r.commit,
                r.writes_acknowledged,
                r.writes_committed,
                r.views,
                r.crashes,
                r.joins,
                r.retirements,
                r.snapshots,
                r.messages
            ),
            Err(e) => {
                eprintln!(
                    "seed {seed}: FAILED: {e}\nreplay: cargo run -p sim -- --seed {seed} --steps {} --nodes {} --verbose",
                    opts.steps, opts.nodes
                );
                std::process::exit(1);
            }
        }
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("{problem}");
    }
    eprintln!(
        "usage: sim [--seed N] [--seeds M] [--steps S] [--nodes K] [--verbose]\n\
         runs the seeded cluster simulator of the real core (defaults: seed 1, 3,000 simulated ms, 3 nodes)"
    );
    std::process::exit(2);
}
