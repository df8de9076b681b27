//! The chunkserver's one error type, mapped to gRPC once.

use anode_proto::ERROR_CODE_METADATA_KEY;

/// Errors of the blob store and data API.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The bytes do not hash to the id, or the length differs.
    #[error("bad digest: {0}")]
    BadDigest(String),
    /// No such blob.
    #[error("no such chunk {0}")]
    NotFound(String),
    /// Capacity or disk full.
    #[error("insufficient storage: {0}")]
    Full(String),
    /// The stored copy is corrupt.
    #[error("corrupt copy: {0}")]
    Corrupt(String),
    /// The writer's epoch is not this server's.
    #[error("stale epoch {got} (server epoch {current})")]
    StaleEpoch {
        /// Given.
        got: u64,
        /// Held.
        current: u64,
    },
    /// Malformed request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Configuration problem.
    #[error("configuration: {0}")]
    Config(String),
    /// The data directory's format file is missing in a way that cannot be migrated, newer
    /// than this build, or names an unknown layout (only at open).
    #[error("data directory format: {0}")]
    Format(#[from] crate::format::FormatError),
    /// Disk IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl ChunkError {
    /// Stable code carried in `anode-error-code`.
    pub fn code(&self) -> &'static str {
        match self {
            ChunkError::BadDigest(_) => "BadDigest",
            ChunkError::NotFound(_) => "NoSuchChunk",
            ChunkError::Full(_) => "InsufficientStorage",
            ChunkError::Corrupt(_) => "CorruptChunk",
            ChunkError::StaleEpoch { .. } => "StaleEpoch",
            ChunkError::BadRequest(_) | ChunkError::Config(_) => "InvalidArgument",
            ChunkError::Format(_) | ChunkError::Io(_) => "InternalError",
        }
    }
}

impl From<ChunkError> for tonic::Status {
    fn from(e: ChunkError) -> Self {
        let code = match &e {
            ChunkError::BadDigest(_) | ChunkError::BadRequest(_) | ChunkError::Config(_) => {
                tonic::Code::InvalidArgument
            }
            ChunkError::NotFound(_) => tonic::Code::NotFound,
            ChunkError::Full(_) => tonic::Code::ResourceExhausted,
            ChunkError::Corrupt(_) => tonic::Code::DataLoss,
            ChunkError::StaleEpoch { .. } => tonic::Code::FailedPrecondition,
            ChunkError::Format(_) | ChunkError::Io(_) => tonic::Code::Internal,
        };
        let mut st = tonic::Status::new(code, e.to_string());
        if let Ok(v) = e.code().parse() {
            st.metadata_mut().insert(ERROR_CODE_METADATA_KEY, v);
        }
        st
    }
}
