//! `anode-tools`: the load and chaos tools, kept out of the production `anode` binary.
//!
//! - `anode-tools bench meta|client|s3`: metadata, client-library and S3 throughput.
//! - `anode-tools bench suite|compare`: the benchmark matrix against any S3 endpoint, and the
//!   ratios of two result files (`crate::suite`).
//! - `anode-tools bench fill|list`: a large bucket of inline objects and its LIST latency.
//! - `anode-tools bench parquet`: a Parquet dataset read plain and through the pruned listing.
//! - `anode-tools chaos-load`: the workload recorder of the chaos scenarios (`test_scripts/`).
//!
//! Start-up is the same as `anode`'s (`anode_common::cli`): `--config FILE` keys become
//! `ANODE_*` environment variables, and any panic aborts the process.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod bench;
mod bench_parquet;
mod bench_scale;
mod chaos_load;
mod s3http;
mod suite;

#[derive(Parser, Debug)]
#[command(
    name = "anode-tools",
    version,
    about = "Anode load and chaos tools (not part of the production binary)"
)]
struct Cli {
    /// TOML file whose keys set flags not given on the command line (`masters =
    /// "a:7001,b:7001"`; keys are flag names, `-` or `_`).
    #[arg(long, global = true, env = "ANODE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once at start-up and matched once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Load tools (metadata throughput, ...).
    Bench(bench::BenchArgs),
    /// Chaos workload recorder: concurrent put/get/delete through S3 endpoints, written as a
    /// JSON Lines history for `anode-lincheck` (or write-once puts and their verification).
    ChaosLoad(chaos_load::ChaosLoadArgs),
}

fn main() -> anyhow::Result<()> {
    anode_common::cli::abort_on_panic();
    anode_common::cli::apply_config_file()?;
    let cli = Cli::parse();
    let _ = &cli.config;
    anode_common::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Bench(a) => bench::run(a).await,
            Cmd::ChaosLoad(a) => chaos_load::run(a).await,
        }
    })
}
