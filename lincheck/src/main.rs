//! `anode-lincheck FILE`: check a JSON Lines history for linearizability.
//! Exit status: 0 linearizable, 1 not linearizable, 2 unknown (budget exhausted),
//! 3 unreadable or malformed history.

use std::process::ExitCode;

use anode_lincheck::{check_history, History, Options, Verdict};
use clap::Parser;

/// Check a key-value history (JSON Lines) for linearizability.
#[derive(Parser, Debug)]
#[command(name = "anode-lincheck", version)]
struct Args {
    /// History file, one event per line.
    file: std::path::PathBuf,
    /// Search step budget; past it the verdict is "unknown".
    #[arg(long, default_value_t = Options::default().steps_max)]
    steps_max: u64,
    /// Report every operation of the failing key instead of a shrunk subset.
    #[arg(long)]
    no_shrink: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("anode-lincheck: reading {}: {e}", args.file.display());
            return ExitCode::from(3);
        }
    };
    let opts = Options {
        steps_max: args.steps_max,
        shrink: !args.no_shrink,
    };
    let verdict = History::parse(&text).and_then(|h| check_history(&h, opts));
    match verdict {
        Ok(Verdict::Linearizable) => {
            println!("linearizable");
            ExitCode::SUCCESS
        }
        Ok(Verdict::NotLinearizable { key, ops }) => {
            println!("NOT linearizable: key {key:?}; no linearization of:");
            for op in ops {
                println!("  {op}");
            }
            ExitCode::from(1)
        }
        Ok(Verdict::Unknown { keys_checked }) => {
            println!("unknown: step budget exhausted after {keys_checked} keys checked");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("anode-lincheck: {}: {e}", args.file.display());
            ExitCode::from(3)
        }
    }
}
