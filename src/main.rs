//! `anode`: the production binary. Each crate supplies a library and its subcommand; the load
//! and chaos tools are a separate binary, `anode-tools` (`tools/`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod dev;

/// mimalloc instead of glibc malloc: per-request allocations (hyper, h2, tonic, prost) were
/// about a sixth of the CPU of a small GET on the leader and the gateway with glibc
/// (docs/architecture.md, "Where a small GET spends its time").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "anode",
    version,
    about = "Anode: an S3-compatible distributed object store"
)]
struct Cli {
    /// TOML file whose keys set flags not given on the command line (`data = "/srv/anode"`,
    /// `masters = "a:7001,b:7001"`; keys are flag names, `-` or `_`).
    #[arg(long, global = true, env = "ANODE_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as `json` or `text` (default: json when stderr is not a terminal). Text
    /// carries ANSI colours only on a terminal.
    #[arg(long, global = true, env = "ANODE_LOG_FORMAT")]
    log_format: Option<anode_common::logging::LogFormat>,
    /// Log filter in the RUST_LOG syntax (`info`, `anode_gateway=debug,info`); default
    /// RUST_LOG, else info. SIGHUP sets it again from the `log-level` key of --config.
    #[arg(long, global = true, env = "ANODE_LOG_LEVEL")]
    log_level: Option<String>,
    /// Export traces over OTLP/gRPC to this URL (`http://collector:4317`); default the
    /// standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT. Without an
    /// endpoint nothing is exported. Server roles only.
    #[arg(long, global = true, env = "ANODE_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// The `service.name` of exported spans (default `anode-<role>`: `anode-gateway`, ...).
    #[arg(long, global = true, env = "ANODE_OTLP_SERVICE_NAME")]
    otlp_service_name: Option<String>,
    /// Fraction (0 to 1) of new traces recorded; a request whose caller's `traceparent` says
    /// sampled (or not) follows its caller.
    #[arg(long, global = true, env = "ANODE_OTLP_SAMPLE_RATIO", default_value = "1",
          value_parser = anode_common::otel::parse_sample_ratio)]
    otlp_sample_ratio: f64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One member of the master raft group.
    Master(anode_master::MasterArgs),
    /// A chunkserver: blob store, data API and heartbeat.
    Chunkserver(anode_chunkserver::ChunkserverArgs),
    /// A stateless S3 gateway.
    Gateway(anode_gateway::GatewayArgs),
    /// The operator CLI.
    Ctl(anode_master::ctl::CtlArgs),
    /// A whole cluster in one process for a first try.
    Dev(dev::DevArgs),
}

fn main() -> anyhow::Result<()> {
    anode_common::cli::abort_on_panic();
    // Fail points from FAILPOINTS (`name=actions;...`), kept for the whole process.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    anode_common::cli::apply_config_file()?;
    let cli = Cli::parse();
    // The operator CLI logs text unless asked otherwise; servers default by terminal.
    let format = match cli.cmd {
        Cmd::Ctl(_) => cli
            .log_format
            .or(Some(anode_common::logging::LogFormat::Text)),
        _ => cli.log_format,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Traces: server roles only, and only with an endpoint (no exporter otherwise).
    let otel =
        match cli.cmd.role() {
            Some(role) => anode_common::otel::endpoint_from_env(cli.otlp_endpoint.as_deref()).map(
                |endpoint| anode_common::otel::OtelOptions {
                    endpoint,
                    service_name: cli
                        .otlp_service_name
                        .clone()
                        .unwrap_or_else(|| format!("anode-{role}")),
                    sample_ratio: cli.otlp_sample_ratio,
                    // Traces start at S3 requests (the gateway's span); background RPCs
                    // (heartbeats, raft, operator calls) are not traced.
                    root_spans: vec!["s3".into()],
                },
            ),
            None => None,
        };
    {
        // The OTLP exporter's gRPC channel lives on the runtime.
        let _rt = rt.enter();
        anode_common::logging::init_logging(&anode_common::logging::LogOptions {
            format,
            level: cli.log_level.clone(),
            otel,
        })?;
    }
    #[cfg(feature = "failpoints")]
    if let Ok(fp) = std::env::var("FAILPOINTS") {
        tracing::warn!(failpoints = %fp, "fail points configured");
    }
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Ctl(a) => anode_master::ctl::run(a).await,
            server => serve(server, cli.config).await,
        }
    });
    // Send the spans still buffered while the runtime (which carries the export) is alive.
    anode_common::otel::shutdown();
    result
}

impl Cmd {
    /// The server role's name (`None` for the operator CLI).
    fn role(&self) -> Option<&'static str> {
        match self {
            Cmd::Master(_) => Some("master"),
            Cmd::Chunkserver(_) => Some("chunkserver"),
            Cmd::Gateway(_) => Some("gateway"),
            Cmd::Dev(_) => Some("dev"),
            Cmd::Ctl(_) => None,
        }
    }
}

/// Run a server role until it drained: SIGTERM/SIGINT drain it, SIGHUP reloads the log
/// filter (`anode_common::logging`).
async fn serve(cmd: Cmd, config: Option<PathBuf>) -> anyhow::Result<()> {
    let shutdown = anode_common::shutdown_on_signals();
    anode_common::logging::spawn_sighup_log_reloader(config, shutdown.clone())?;
    match cmd {
        Cmd::Master(a) => anode_master::run(a, shutdown).await,
        Cmd::Chunkserver(a) => anode_chunkserver::run(a, shutdown).await,
        Cmd::Gateway(a) => anode_gateway::run(a, shutdown).await,
        Cmd::Dev(a) => dev::run(a, shutdown).await,
        Cmd::Ctl(a) => anode_master::ctl::run(a).await,
    }
}
