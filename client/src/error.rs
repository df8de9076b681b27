//! The client's one error type, and its mapping from `tonic::Status` (done once, here).
//!
//! A server's refusal carries an [`ErrorDetail`] in the status details; [`ClientError::from_status`]
//! maps its [`ErrorCode`] with one exhaustive match and reads structured fields (`need`,
//! `have`) from the detail. Message text is never parsed. [`ClientError::code`] gives every
//! error, local or remote, a code of the same vocabulary, so the gateway maps codes once.

pub use anode_proto::{ErrorCode, ErrorDetail};

/// Everything that can go wrong in the client library.
#[derive(thiserror::Error, Debug)]
pub enum ClientError {
    /// A server refused the request with a definite answer (its [`ErrorDetail`]): `NoSuchBucket`,
    /// `NoSuchKey`, `PreconditionFailed`, ... Never retried.
    #[error("{code}: {message}")]
    Remote {
        /// The error code.
        code: ErrorCode,
        /// Human-readable message from the server.
        message: String,
        /// What the error names (bucket, key, upload id, ...), "" when nothing.
        resource: String,
    },
    /// No master answered as leader within the retry budget.
    #[error("no master leader within the retry budget")]
    NoLeader,
    /// A server could not be reached or answered UNAVAILABLE within the retry budget.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The body did not match the Content-MD5 the caller supplied; nothing was committed.
    #[error("the Content-MD5 you specified did not match what was received")]
    BadDigest,
    /// No replica of a chunk could be read and verified.
    #[error("no readable replica of chunk {sha256}")]
    ChunkUnavailable {
        /// Hex SHA-256 of the chunk.
        sha256: String,
    },
    /// Fewer chunkservers are available than the bucket's replication factor needs.
    #[error("need {need} chunkservers, have {have}")]
    InsufficientServers {
        /// Replication factor R.
        need: usize,
        /// Distinct servers that could be used.
        have: usize,
    },
    /// Reading the caller's body stream failed.
    #[error("reading the body: {0}")]
    Io(#[from] std::io::Error),
    /// A connection-level failure (bad address, TLS/HTTP2 error, reset).
    #[error("transport: {0}")]
    Transport(String),
    /// The caller passed something unusable (empty master list, bad range, ...), or a server
    /// answered INVALID_ARGUMENT without an error detail.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An operation did not finish within its time bound.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A gRPC status without an error detail that fits no other variant.
    #[error("rpc failed ({code:?}): {message}")]
    Status {
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// A server answered with something that breaks the protocol (missing field, wrong length),
    /// or an invariant of the client failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl ClientError {
    /// The code of this error in the shared vocabulary: the server's code for
    /// [`ClientError::Remote`], the nearest code for local failures.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Remote { code, .. } => *code,
            ClientError::NoLeader => ErrorCode::NotLeader,
            ClientError::Unavailable(_) | ClientError::Transport(_) => ErrorCode::Unavailable,
            ClientError::Timeout(_) => ErrorCode::Timeout,
            ClientError::InsufficientServers { .. } => ErrorCode::InsufficientServers,
            ClientError::BadDigest => ErrorCode::BadDigest,
            ClientError::Io(_) => ErrorCode::IncompleteBody,
            ClientError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            ClientError::ChunkUnavailable { .. } => ErrorCode::ChunkUnavailable,
            ClientError::Internal(_) => ErrorCode::Internal,
            ClientError::Status { code, .. } => match code {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ErrorCode::Unavailable,
                tonic::Code::ResourceExhausted => ErrorCode::Busy,
                _ => ErrorCode::Internal,
            },
        }
    }

    /// Whether retrying the same call later may succeed (the server or cluster was unreachable
    /// or short of capacity, as opposed to refusing the request).
    pub fn is_retryable(&self) -> bool {
        retryable(self.code())
    }

    /// Map a gRPC status to the client error, once. A status with an [`ErrorDetail`] maps by its
    /// code (one exhaustive match); one without (a transport failure) by its gRPC code.
    pub fn from_status(status: &tonic::Status) -> ClientError {
        match ErrorDetail::from_status(status) {
            Some(detail) => ClientError::from_detail(detail),
            None => ClientError::from_plain_status(status),
        }
    }

    /// Map a server's error detail. Exhaustive: a new code does not build until it is placed.
    pub fn from_detail(d: ErrorDetail) -> ClientError {
        use ErrorCode::*;
        let code = d.code();
        match code {
            NotLeader => ClientError::NoLeader,
            InsufficientServers => ClientError::InsufficientServers {
                need: d.need as usize,
                have: d.have as usize,
            },
            Unavailable => ClientError::Unavailable(d.message),
            Timeout => ClientError::Timeout(d.message),
            Unspecified
            | NoSuchBucket
            | BucketAlreadyExists
            | BucketAlreadyOwnedByYou
            | BucketNotEmpty
            | InvalidBucketName
            | NoSuchKey
            | KeyTooLong
            | MetadataTooLarge
            | NoSuchUpload
            | InvalidPart
            | InvalidPartOrder
            | EntityTooSmall
            | PreconditionFailed
            | InvalidArgument
            | ChunkGone
            | NoSuchAccessKey
            | AccessKeyExists
            | UnknownChunkserver
            | StaleEpoch
            | BadCommand
            | UnsupportedVersion
            | SessionExpired
            | QuotaExceeded
            | NoSuchUser
            | UserExists
            | UserNotEmpty
            | NoSuchVersion
            | InvalidBucketState
            | ObjectLocked
            | NoSuchConfiguration
            | MethodNotAllowed
            | NotMember
            | AlreadyMember
            | WouldLoseQuorum
            | ConfChangeRejected
            | Busy
            | Internal
            | BadDigest
            | NoSuchChunk
            | InsufficientStorage
            | CorruptChunk
            | IncompleteBody
            | ChunkUnavailable
            | PermissionDenied => ClientError::Remote {
                code,
                message: d.message,
                resource: d.resource,
            },
        }
    }

    /// A status without a detail: a transport failure or other gRPC software.
    fn from_plain_status(status: &tonic::Status) -> ClientError {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::Unavailable => ClientError::Unavailable(message),
            tonic::Code::DeadlineExceeded => ClientError::Timeout(message),
            tonic::Code::InvalidArgument => ClientError::InvalidArgument(message),
            code => ClientError::Status { code, message },
        }
    }
}

/// Whether an error with `code` may succeed when retried later. One exhaustive match.
pub fn retryable(code: ErrorCode) -> bool {
    use ErrorCode::*;
    match code {
        NotLeader | Busy | Unavailable | Timeout | InsufficientServers => true,
        Unspecified
        | NoSuchBucket
        | BucketAlreadyExists
        | BucketAlreadyOwnedByYou
        | BucketNotEmpty
        | InvalidBucketName
        | NoSuchKey
        | KeyTooLong
        | MetadataTooLarge
        | NoSuchUpload
        | InvalidPart
        | InvalidPartOrder
        | EntityTooSmall
        | PreconditionFailed
        | InvalidArgument
        | ChunkGone
        | NoSuchAccessKey
        | AccessKeyExists
        | UnknownChunkserver
        | StaleEpoch
        | BadCommand
        | UnsupportedVersion
        | SessionExpired
        | QuotaExceeded
        | NoSuchUser
        | UserExists
        | UserNotEmpty
        | NoSuchVersion
        | InvalidBucketState
        | ObjectLocked
        | NoSuchConfiguration
        | MethodNotAllowed
        | NotMember
        | AlreadyMember
        | WouldLoseQuorum
        | ConfChangeRejected
        | Internal
        | BadDigest
        | NoSuchChunk
        | InsufficientStorage
        | CorruptChunk
        | IncompleteBody
        | ChunkUnavailable
        | PermissionDenied => false,
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::from_status(&status)
    }
}

impl From<tonic::transport::Error> for ClientError {
    fn from(e: tonic::transport::Error) -> Self {
        ClientError::Transport(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coded(code: ErrorCode, message: &str) -> tonic::Status {
        ErrorDetail::new(code, message).to_status()
    }

    #[test]
    fn remote_code_from_the_detail() {
        let s = ErrorDetail::new(ErrorCode::NoSuchBucket, "no bucket b")
            .with_resource("b")
            .to_status();
        let e = ClientError::from_status(&s);
        assert!(
            matches!(&e, ClientError::Remote { code: ErrorCode::NoSuchBucket, message, resource } if message == "no bucket b" && resource == "b"),
            "{e:?}"
        );
        assert_eq!(e.code(), ErrorCode::NoSuchBucket);
        assert!(!e.is_retryable());
    }

    #[test]
    fn plain_statuses_map_by_grpc_code() {
        let table = [
            (tonic::Status::unavailable("down"), ErrorCode::Unavailable),
            (tonic::Status::deadline_exceeded("slow"), ErrorCode::Timeout),
            (
                tonic::Status::invalid_argument("bad"),
                ErrorCode::InvalidArgument,
            ),
            (tonic::Status::internal("oops"), ErrorCode::Internal),
            (tonic::Status::resource_exhausted("full"), ErrorCode::Busy),
            (tonic::Status::unknown("h2 reset"), ErrorCode::Internal),
        ];
        for (status, code) in table {
            assert_eq!(ClientError::from_status(&status).code(), code, "{status:?}");
        }
    }

    #[test]
    fn insufficient_servers_reads_need_and_have_from_fields() {
        // The message says nothing useful: the numbers come from the detail's fields.
        let s = ErrorDetail::new(ErrorCode::InsufficientServers, "not enough servers")
            .with_need_have(3, 2)
            .to_status();
        let e = ClientError::from_status(&s);
        assert!(
            matches!(e, ClientError::InsufficientServers { need: 3, have: 2 }),
            "{e:?}"
        );
        assert_eq!(e.code(), ErrorCode::InsufficientServers);
        assert!(e.is_retryable());
    }

    #[test]
    fn not_leader_and_availability_codes() {
        let nl = ErrorDetail::new(ErrorCode::NotLeader, "follower").with_leader(2, "a:1");
        assert!(matches!(
            ClientError::from_status(&nl.to_status()),
            ClientError::NoLeader
        ));
        let e = ClientError::from_status(&coded(ErrorCode::Unavailable, "raft timed out"));
        assert!(matches!(&e, ClientError::Unavailable(m) if m == "raft timed out"));
        let e = ClientError::from_status(&coded(ErrorCode::Timeout, "slow"));
        assert!(matches!(e, ClientError::Timeout(_)));
        let e = ClientError::from_status(&coded(ErrorCode::Busy, "queue full"));
        assert_eq!(e.code(), ErrorCode::Busy);
        assert!(e.is_retryable());
    }

    #[test]
    fn every_code_maps_back_to_itself() {
        for code in ErrorCode::ALL {
            let e = ClientError::from_status(&coded(code, "m"));
            assert_eq!(e.code(), code, "{e:?}");
        }
    }

    #[test]
    fn local_codes() {
        assert_eq!(ClientError::BadDigest.code(), ErrorCode::BadDigest);
        assert_eq!(ClientError::NoLeader.code(), ErrorCode::NotLeader);
        assert_eq!(
            ClientError::ChunkUnavailable {
                sha256: "ab".into()
            }
            .code(),
            ErrorCode::ChunkUnavailable
        );
        assert_eq!(
            ClientError::Transport("reset".into()).code(),
            ErrorCode::Unavailable
        );
        let io = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(ClientError::from(io).code(), ErrorCode::IncompleteBody);
    }
}
