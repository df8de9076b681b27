//! Compiles the .proto files with the pure-Rust `protox` (no system protoc) and generates
//! prost messages and tonic services from the descriptor set.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/anode/v1/meta.proto",
        "proto/anode/v1/master.proto",
        "proto/anode/v1/chunk.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
