//! Compiles the .proto files with the pure-Rust `protox` (no system protoc) and generates
//! prost messages and tonic services from the descriptor set.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/anode/v1/error.proto",
        "proto/anode/v1/meta.proto",
        "proto/anode/v1/master.proto",
        "proto/anode/v1/chunk.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    // The `grpc` feature adds tonic clients and servers; without it the crate is prost
    // messages only, so pure crates (anode-meta) can use the wire types without tonic.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    let fds = protox::compile(files, ["proto"])?;
    // GetChunkResponse.data is `Bytes`: a piece read from disk goes into the message without a
    // copy, and the reader decodes it as a slice of the receive buffer instead of a new Vec.
    tonic_prost_build::configure()
        .bytes(".anode.v1.GetChunkResponse.data")
        // Chunk bytes on the write path as `bytes::Bytes`: the writer slices one chunk into
        // messages without copying, and the chunkserver decodes them out of tonic's buffer
        // without copying (issue 18). Same wire format.
        .bytes(".anode.v1.PutChunkRequest.data")
        .build_server(grpc)
        .build_client(grpc)
        .compile_fds(fds)?;
    Ok(())
}
