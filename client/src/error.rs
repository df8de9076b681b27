//! The client's one error type, and its mapping from `tonic::Status` (done once, here).

use anode_proto::{ERROR_CODE_METADATA_KEY, LEADER_METADATA_KEY};

/// Everything that can go wrong in the client library.
///
/// [`ClientError::code`] gives a stable, S3-flavoured code for each variant so the gateway can map
/// it to an HTTP answer in one place.
#[derive(thiserror::Error, Debug)]
pub enum ClientError {
    /// The master (or a chunkserver) refused the request with a stable error code, taken from the
    /// `anode-error-code` gRPC metadata (e.g. `NoSuchBucket`, `NoSuchKey`, `PreconditionFailed`).
    /// Never retried.
    #[error("{code}: {message}")]
    Remote {
        /// Stable error code (`NoSuchBucket`, ...).
        code: String,
        /// Human-readable message from the server.
        message: String,
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
    /// answered INVALID_ARGUMENT without an Anode error code.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An operation did not finish within its time bound.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A gRPC status without an Anode error code that fits no other variant.
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
    /// A stable code for this error: the server's code for [`ClientError::Remote`], otherwise a
    /// local one (`ServiceUnavailable`, `BadDigest`, `InternalError`, `IncompleteBody`,
    /// `InvalidArgument`, `SlowDown`).
    pub fn code(&self) -> &str {
        match self {
            ClientError::Remote { code, .. } => code,
            ClientError::NoLeader
            | ClientError::Unavailable(_)
            | ClientError::Transport(_)
            | ClientError::Timeout(_)
            | ClientError::InsufficientServers { .. } => "ServiceUnavailable",
            ClientError::BadDigest => "BadDigest",
            ClientError::Io(_) => "IncompleteBody",
            ClientError::InvalidArgument(_) => "InvalidArgument",
            ClientError::Status { code, .. } => match code {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => "ServiceUnavailable",
                tonic::Code::ResourceExhausted => "SlowDown",
                _ => "InternalError",
            },
            ClientError::ChunkUnavailable { .. } | ClientError::Internal(_) => "InternalError",
        }
    }

    /// Whether retrying the same call later may succeed (the server or cluster was unreachable
    /// or short of capacity, as opposed to refusing the request).
    pub fn is_retryable(&self) -> bool {
        self.code() == "ServiceUnavailable" || self.code() == "SlowDown"
    }

    /// Map a gRPC status to the client error, once. A status carrying `anode-error-code` becomes
    /// [`ClientError::Remote`]; otherwise the gRPC code decides.
    pub fn from_status(status: &tonic::Status) -> ClientError {
        if is_not_leader(status) {
            return ClientError::NoLeader;
        }
        if let Some(code) = metadata_str(status, ERROR_CODE_METADATA_KEY) {
            if code == "InsufficientServers" {
                let (need, have) = parse_need_have(status.message());
                return ClientError::InsufficientServers { need, have };
            }
            return ClientError::Remote {
                code,
                message: status.message().to_string(),
            };
        }
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::Unavailable => ClientError::Unavailable(message),
            tonic::Code::DeadlineExceeded => ClientError::Timeout(message),
            tonic::Code::InvalidArgument => ClientError::InvalidArgument(message),
            code => ClientError::Status { code, message },
        }
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

/// The numbers in a master's "need N live chunkservers, have M" message (0 when absent).
fn parse_need_have(message: &str) -> (usize, usize) {
    let number_after = |word: &str| {
        message
            .split(word)
            .nth(1)
            .map(|rest| {
                rest.trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(0)
    };
    (number_after("need "), number_after("have "))
}

/// A string value of gRPC metadata `key`, if present and printable.
pub(crate) fn metadata_str(status: &tonic::Status, key: &str) -> Option<String> {
    status
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

/// Error codes a master may use to say "not the leader" (retried elsewhere, never surfaced as
/// [`ClientError::Remote`]).
const NOT_LEADER_CODES: [&str; 2] = ["NotLeader", "NoLeader"];

/// A follower's "not the leader" answer: FAILED_PRECONDITION carrying an `anode-leader` hint or
/// no Anode error code at all, or any status whose Anode code is `NotLeader` / `NoLeader`.
pub(crate) fn is_not_leader(status: &tonic::Status) -> bool {
    let code = metadata_str(status, ERROR_CODE_METADATA_KEY);
    if code
        .as_deref()
        .is_some_and(|c| NOT_LEADER_CODES.contains(&c))
    {
        return true;
    }
    status.code() == tonic::Code::FailedPrecondition
        && (code.is_none() || metadata_str(status, LEADER_METADATA_KEY).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_meta(mut s: tonic::Status, key: &'static str, v: &str) -> tonic::Status {
        s.metadata_mut().insert(key, v.parse().unwrap());
        s
    }

    #[test]
    fn remote_code_from_metadata() {
        let s = with_meta(
            tonic::Status::not_found("no bucket b"),
            ERROR_CODE_METADATA_KEY,
            "NoSuchBucket",
        );
        let e = ClientError::from_status(&s);
        assert!(
            matches!(&e, ClientError::Remote { code, message } if code == "NoSuchBucket" && message == "no bucket b")
        );
        assert_eq!(e.code(), "NoSuchBucket");
        assert!(!e.is_retryable());
    }

    #[test]
    fn plain_codes_map_to_local_errors() {
        let table = [
            (tonic::Status::unavailable("down"), "ServiceUnavailable"),
            (
                tonic::Status::deadline_exceeded("slow"),
                "ServiceUnavailable",
            ),
            (tonic::Status::invalid_argument("bad"), "InvalidArgument"),
            (tonic::Status::internal("oops"), "InternalError"),
            (tonic::Status::resource_exhausted("full"), "SlowDown"),
            (
                tonic::Status::failed_precondition("not leader"),
                "ServiceUnavailable",
            ),
        ];
        for (status, code) in table {
            assert_eq!(ClientError::from_status(&status).code(), code, "{status:?}");
        }
    }

    #[test]
    fn insufficient_servers_from_the_master() {
        let s = with_meta(
            tonic::Status::resource_exhausted("need 3 live chunkservers, have 2"),
            ERROR_CODE_METADATA_KEY,
            "InsufficientServers",
        );
        let e = ClientError::from_status(&s);
        assert!(
            matches!(e, ClientError::InsufficientServers { need: 3, have: 2 }),
            "{e:?}"
        );
        assert_eq!(e.code(), "ServiceUnavailable");
        assert_eq!(parse_need_have("whatever"), (0, 0));
    }

    #[test]
    fn local_codes() {
        assert_eq!(ClientError::BadDigest.code(), "BadDigest");
        assert_eq!(ClientError::NoLeader.code(), "ServiceUnavailable");
        assert_eq!(
            ClientError::ChunkUnavailable {
                sha256: "ab".into()
            }
            .code(),
            "InternalError"
        );
        assert_eq!(
            ClientError::InsufficientServers { need: 3, have: 2 }.code(),
            "ServiceUnavailable"
        );
        let io = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(ClientError::from(io).code(), "IncompleteBody");
    }

    #[test]
    fn precondition_with_error_code_is_remote_not_leader() {
        let s = with_meta(
            tonic::Status::failed_precondition("etag differs"),
            ERROR_CODE_METADATA_KEY,
            "PreconditionFailed",
        );
        assert!(!is_not_leader(&s));
        assert_eq!(ClientError::from_status(&s).code(), "PreconditionFailed");
        let s = with_meta(
            tonic::Status::failed_precondition("not leader"),
            LEADER_METADATA_KEY,
            "127.0.0.1:7002",
        );
        assert!(is_not_leader(&s));
    }
}
