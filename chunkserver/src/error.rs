//! The chunkserver's one error type, mapped to gRPC once.

use anode_proto::{ErrorCode, ErrorDetail};

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
    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ChunkError::BadDigest(_) => ErrorCode::BadDigest,
            ChunkError::NotFound(_) => ErrorCode::NoSuchChunk,
            ChunkError::Full(_) => ErrorCode::InsufficientStorage,
            ChunkError::Corrupt(_) => ErrorCode::CorruptChunk,
            ChunkError::StaleEpoch { .. } => ErrorCode::StaleEpoch,
            ChunkError::BadRequest(_) | ChunkError::Config(_) => ErrorCode::InvalidArgument,
            ChunkError::Format(_) | ChunkError::Io(_) => ErrorCode::Internal,
        }
    }

    /// The error as it crosses a process (the chunk id as the resource where one is named).
    pub fn detail(&self) -> ErrorDetail {
        let d = ErrorDetail::new(self.code(), self.to_string());
        match self {
            ChunkError::NotFound(sha) | ChunkError::Corrupt(sha) => d.with_resource(sha.clone()),
            ChunkError::BadDigest(_)
            | ChunkError::Full(_)
            | ChunkError::StaleEpoch { .. }
            | ChunkError::BadRequest(_)
            | ChunkError::Config(_)
            | ChunkError::Format(_)
            | ChunkError::Io(_) => d,
        }
    }
}

/// The data API's statuses carry the error detail (the gRPC code follows from its code).
impl From<ChunkError> for tonic::Status {
    fn from(e: ChunkError) -> Self {
        e.detail().to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_the_detail() {
        let table = [
            (
                ChunkError::BadDigest("x".into()),
                ErrorCode::BadDigest,
                tonic::Code::InvalidArgument,
            ),
            (
                ChunkError::NotFound("ab".into()),
                ErrorCode::NoSuchChunk,
                tonic::Code::NotFound,
            ),
            (
                ChunkError::Full("disk".into()),
                ErrorCode::InsufficientStorage,
                tonic::Code::ResourceExhausted,
            ),
            (
                ChunkError::Corrupt("ab".into()),
                ErrorCode::CorruptChunk,
                tonic::Code::DataLoss,
            ),
            (
                ChunkError::StaleEpoch { got: 1, current: 2 },
                ErrorCode::StaleEpoch,
                tonic::Code::FailedPrecondition,
            ),
            (
                ChunkError::BadRequest("x".into()),
                ErrorCode::InvalidArgument,
                tonic::Code::InvalidArgument,
            ),
            (
                ChunkError::Io(std::io::Error::other("eio")),
                ErrorCode::Internal,
                tonic::Code::Internal,
            ),
        ];
        for (e, code, grpc) in table {
            let st = tonic::Status::from(e);
            assert_eq!(st.code(), grpc);
            let d = ErrorDetail::from_status(&st).expect("detail");
            assert_eq!(d.code(), code);
        }
    }
}
