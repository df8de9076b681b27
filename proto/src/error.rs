//! The error vocabulary shared by every process: [`ErrorCode`] (a protobuf enum, so its numbers
//! are the stable wire form) and [`ErrorDetail`] (the code plus the structured fields callers
//! act on), both defined in `anode/v1/error.proto`.
//!
//! An error crosses a process as an [`ErrorDetail`] encoded in the gRPC status details
//! ([`grpc`], behind the `grpc` feature): producers build one, receivers read
//! [`ErrorDetail::from_status`] and decide on [`ErrorDetail::code`] and the fields. The message
//! text is for people only; nothing parses it.
//!
//! Every edge maps codes with one exhaustive `match` (no `_` arm), so a new code does not build
//! until each edge decides what it means. [`ErrorCode::ALL`] lists every code for table tests;
//! [`ErrorCode::position`] (an exhaustive match) keeps it complete.

use std::fmt;

use crate::v1::{ErrorCode, ErrorDetail};

impl ErrorCode {
    /// Every code, in wire-number order. Its completeness is checked: [`ErrorCode::position`]
    /// names every variant (the compiler insists), and a test checks that each number the
    /// generated enum accepts sits in this list at its position.
    pub const ALL: [ErrorCode; 49] = [
        ErrorCode::Unspecified,
        ErrorCode::NoSuchBucket,
        ErrorCode::BucketAlreadyExists,
        ErrorCode::BucketAlreadyOwnedByYou,
        ErrorCode::BucketNotEmpty,
        ErrorCode::InvalidBucketName,
        ErrorCode::NoSuchKey,
        ErrorCode::KeyTooLong,
        ErrorCode::MetadataTooLarge,
        ErrorCode::NoSuchUpload,
        ErrorCode::InvalidPart,
        ErrorCode::InvalidPartOrder,
        ErrorCode::EntityTooSmall,
        ErrorCode::PreconditionFailed,
        ErrorCode::InvalidArgument,
        ErrorCode::ChunkGone,
        ErrorCode::NoSuchAccessKey,
        ErrorCode::AccessKeyExists,
        ErrorCode::UnknownChunkserver,
        ErrorCode::StaleEpoch,
        ErrorCode::BadCommand,
        ErrorCode::UnsupportedVersion,
        ErrorCode::SessionExpired,
        ErrorCode::QuotaExceeded,
        ErrorCode::NoSuchUser,
        ErrorCode::UserExists,
        ErrorCode::UserNotEmpty,
        ErrorCode::NoSuchVersion,
        ErrorCode::InvalidBucketState,
        ErrorCode::ObjectLocked,
        ErrorCode::InsufficientServers,
        ErrorCode::NoSuchConfiguration,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotMember,
        ErrorCode::AlreadyMember,
        ErrorCode::WouldLoseQuorum,
        ErrorCode::ConfChangeRejected,
        ErrorCode::NotLeader,
        ErrorCode::Busy,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::BadDigest,
        ErrorCode::NoSuchChunk,
        ErrorCode::InsufficientStorage,
        ErrorCode::CorruptChunk,
        ErrorCode::IncompleteBody,
        ErrorCode::ChunkUnavailable,
        ErrorCode::PermissionDenied,
    ];

    /// The index of this code in [`ErrorCode::ALL`]. An exhaustive match: adding a code to
    /// error.proto breaks the build here until it is placed in `ALL`.
    pub const fn position(self) -> usize {
        use ErrorCode::*;
        match self {
            Unspecified => 0,
            NoSuchBucket => 1,
            BucketAlreadyExists => 2,
            BucketAlreadyOwnedByYou => 3,
            BucketNotEmpty => 4,
            InvalidBucketName => 5,
            NoSuchKey => 6,
            KeyTooLong => 7,
            MetadataTooLarge => 8,
            NoSuchUpload => 9,
            InvalidPart => 10,
            InvalidPartOrder => 11,
            EntityTooSmall => 12,
            PreconditionFailed => 13,
            InvalidArgument => 14,
            ChunkGone => 15,
            NoSuchAccessKey => 16,
            AccessKeyExists => 17,
            UnknownChunkserver => 18,
            StaleEpoch => 19,
            BadCommand => 20,
            UnsupportedVersion => 21,
            SessionExpired => 22,
            QuotaExceeded => 23,
            NoSuchUser => 24,
            UserExists => 25,
            UserNotEmpty => 26,
            NoSuchVersion => 27,
            InvalidBucketState => 28,
            ObjectLocked => 29,
            NoSuchConfiguration => 31,
            MethodNotAllowed => 32,
            InsufficientServers => 30,
            NotMember => 33,
            AlreadyMember => 34,
            WouldLoseQuorum => 35,
            ConfChangeRejected => 36,
            NotLeader => 37,
            Busy => 38,
            Unavailable => 39,
            Timeout => 40,
            Internal => 41,
            BadDigest => 42,
            NoSuchChunk => 43,
            InsufficientStorage => 44,
            CorruptChunk => 45,
            IncompleteBody => 46,
            ChunkUnavailable => 47,
            PermissionDenied => 48,
        }
    }
}

/// The code's name as written in Rust (`NoSuchBucket`), for logs and `anode ctl`.
impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl ErrorDetail {
    /// A detail with `code` and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorDetail {
        ErrorDetail {
            code: code as i32,
            message: message.into(),
            ..Default::default()
        }
    }

    /// The same detail naming the thing it is about (bucket, key, upload id, chunk, member).
    pub fn with_resource(mut self, resource: impl Into<String>) -> ErrorDetail {
        self.resource = resource.into();
        self
    }

    /// The same detail with `need` and `have` (INSUFFICIENT_SERVERS).
    pub fn with_need_have(mut self, need: u64, have: u64) -> ErrorDetail {
        self.need = need;
        self.have = have;
        self
    }

    /// The same detail naming the leader (NOT_LEADER); 0 and "" mean unknown.
    pub fn with_leader(mut self, leader_id: u64, leader_addr: impl Into<String>) -> ErrorDetail {
        self.leader_id = leader_id;
        self.leader_addr = leader_addr.into();
        self
    }
}

/// `Code: message`, for logs.
/// What a caller of the master API does with a refusal: follow a redirect, try another master
/// later, or take the answer as final. Shared by the client library's retry policy and
/// `anode ctl`, so the two cannot drift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A follower named the leader's address: call it at once.
    Redirect(String),
    /// This master cannot serve now (not leader and no leader known, busy, unavailable, timed
    /// out): back off and try the next master.
    TryNext,
    /// A definite answer: return it, never retry.
    Final,
}

impl ErrorDetail {
    /// The [`Refusal`] this detail asks of a master caller. One exhaustive match.
    pub fn refusal(&self) -> Refusal {
        use ErrorCode::*;
        match self.code() {
            NotLeader if !self.leader_addr.is_empty() => {
                Refusal::Redirect(self.leader_addr.clone())
            }
            NotLeader | Busy | Unavailable | Timeout => Refusal::TryNext,
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
            | InsufficientServers
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
            | PermissionDenied => Refusal::Final,
        }
    }
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

/// The tonic side: an [`ErrorDetail`] in gRPC status details, and the gRPC status code of each
/// [`ErrorCode`].
#[cfg(feature = "grpc")]
pub mod grpc {
    use prost::Message;

    use crate::v1::{ErrorCode, ErrorDetail};

    /// The gRPC status code an error travels with (for generic gRPC tooling and for peers that
    /// see no detail). One exhaustive match.
    pub fn grpc_code(code: ErrorCode) -> tonic::Code {
        use tonic::Code;
        use ErrorCode::*;
        match code {
            NoSuchBucket | NoSuchKey | NoSuchUpload | NoSuchAccessKey | UnknownChunkserver
            | NotMember | NoSuchChunk | NoSuchUser | NoSuchVersion | NoSuchConfiguration => {
                Code::NotFound
            }
            BucketAlreadyExists
            | BucketAlreadyOwnedByYou
            | AccessKeyExists
            | AlreadyMember
            | UserExists => Code::AlreadyExists,
            BucketNotEmpty | UserNotEmpty | PreconditionFailed | StaleEpoch | WouldLoseQuorum
            | ChunkGone | NotLeader | InvalidBucketState | MethodNotAllowed => {
                Code::FailedPrecondition
            }
            InvalidBucketName | KeyTooLong | MetadataTooLarge | InvalidPart | InvalidPartOrder
            | EntityTooSmall | InvalidArgument | BadCommand | UnsupportedVersion | BadDigest
            | IncompleteBody => Code::InvalidArgument,
            InsufficientServers | Busy | InsufficientStorage | QuotaExceeded => {
                Code::ResourceExhausted
            }
            Unavailable | ChunkUnavailable => Code::Unavailable,
            Timeout => Code::DeadlineExceeded,
            PermissionDenied | ObjectLocked => Code::PermissionDenied,
            SessionExpired => Code::Aborted,
            CorruptChunk => Code::DataLoss,
            Unspecified | ConfChangeRejected | Internal => Code::Internal,
        }
    }

    impl ErrorDetail {
        /// The gRPC status carrying this detail: code from [`grpc_code`], the message, and the
        /// encoded detail as the status details.
        pub fn to_status(&self) -> tonic::Status {
            tonic::Status::with_details(
                grpc_code(self.code()),
                self.message.clone(),
                self.encode_to_vec().into(),
            )
        }

        /// The detail a status carries, if it carries one (statuses from transport failures or
        /// from other gRPC software carry none).
        pub fn from_status(status: &tonic::Status) -> Option<ErrorDetail> {
            let bytes = status.details();
            if bytes.is_empty() {
                return None;
            }
            let mut d = ErrorDetail::decode(bytes).ok()?;
            if d.message.is_empty() {
                d.message = status.message().to_string();
            }
            Some(d)
        }
    }

    impl From<ErrorDetail> for tonic::Status {
        fn from(d: ErrorDetail) -> tonic::Status {
            d.to_status()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number the generated enum accepts is in `ALL` at its `position`, and `ALL` is in
    /// wire-number order without repeats.
    #[test]
    fn all_lists_every_code_once() {
        let mut seen = 0;
        for n in 0..1000 {
            if let Ok(code) = ErrorCode::try_from(n) {
                assert_eq!(ErrorCode::ALL.get(code.position()), Some(&code), "{code:?}");
                seen += 1;
            }
        }
        assert_eq!(seen, ErrorCode::ALL.len());
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.position(), i, "{code:?}");
        }
        assert!(ErrorCode::ALL
            .windows(2)
            .all(|w| (w[0] as i32) < (w[1] as i32)));
    }

    #[test]
    fn detail_builders_and_display() {
        let d = ErrorDetail::new(ErrorCode::InsufficientServers, "need 3, have 2")
            .with_need_have(3, 2)
            .with_resource("b")
            .with_leader(2, "10.0.0.2:7001");
        assert_eq!(d.code(), ErrorCode::InsufficientServers);
        assert_eq!((d.need, d.have, d.resource.as_str()), (3, 2, "b"));
        assert_eq!((d.leader_id, d.leader_addr.as_str()), (2, "10.0.0.2:7001"));
        assert_eq!(d.to_string(), "InsufficientServers: need 3, have 2");
        // An unknown number (a newer peer's code) reads as Unspecified.
        let newer = ErrorDetail {
            code: 999,
            ..Default::default()
        };
        assert_eq!(newer.code(), ErrorCode::Unspecified);
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn status_round_trip() {
        for code in ErrorCode::ALL {
            let d = ErrorDetail::new(code, "m").with_leader(3, "a:1");
            let st = d.to_status();
            assert_eq!(st.code(), grpc::grpc_code(code));
            assert_eq!(ErrorDetail::from_status(&st), Some(d));
        }
        assert_eq!(
            ErrorDetail::from_status(&tonic::Status::internal("x")),
            None
        );
        let junk = tonic::Status::with_details(tonic::Code::Internal, "x", vec![0xff].into());
        assert_eq!(ErrorDetail::from_status(&junk), None);
    }
}
