//! The gateway's one error type, [`S3Error`], mapped to the wire once: [`S3Error::aws_code`],
//! [`S3Error::http_status`] and [`S3Error::to_xml`]. Errors of the rest of Anode enter through
//! [`S3Error::from_error_code`], one exhaustive match over the shared [`ErrorCode`] vocabulary
//! (client-library errors via [`S3Error::from_client_error`], validation errors via `From`).

use anode_client::{ClientError, ErrorCode};
use anode_meta::validate::ValidationError;
use http::StatusCode;

use crate::xml::XmlWriter;

/// The `<Message>` of every 500 answer (S3's own text).
pub const INTERNAL_ERROR_MESSAGE: &str = "We encountered an internal error. Please try again.";
/// The `<Message>` of every 503 ServiceUnavailable answer.
pub const SERVICE_UNAVAILABLE_MESSAGE: &str = "Please reduce your request rate.";

/// Every S3-visible failure. The `Display` text is the `<Message>` of the error document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    /// 403: refused (anonymous request, expired presigned URL, ...); the message says why.
    #[error("{0}")]
    AccessDenied(String),
    /// 403 AccessDenied: `x-amz-*` headers (listed) that the signature does not cover.
    #[error("There were headers present in the request which were not signed")]
    HeadersNotSigned(Vec<String>),
    /// 403: the signature we computed differs from the one given.
    #[error("The request signature we calculated does not match the signature you provided. Check your key and signing method.")]
    SignatureDoesNotMatch,
    /// 403 `QuotaExceeded`: the write would take the bucket's or its owner's live objects or
    /// bytes past a quota (Anode's code; MinIO answers `XMinioAdminBucketQuotaExceeded`, AWS
    /// has no quotas). Nothing was committed.
    #[error("The write would exceed the quota of the bucket or of its owner.")]
    QuotaExceeded,
    /// 403: unknown access key.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    /// 403: the request time is more than 15 minutes from ours.
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    /// 400: the Authorization header does not parse.
    #[error("The authorization header is malformed; {0}")]
    AuthorizationHeaderMalformed(String),
    /// 400: the presigned-URL query parameters do not parse.
    #[error("{0}")]
    AuthorizationQueryParametersError(String),
    /// 400: a required security header (x-amz-content-sha256, x-amz-date) is missing.
    #[error("Missing required header for this request: {0}")]
    MissingSecurityHeader(String),
    /// 400: the body's SHA-256 differs from `x-amz-content-sha256`.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    XAmzContentSHA256Mismatch,
    /// 404: no such bucket.
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    /// 404: no such key.
    #[error("The specified key does not exist.")]
    NoSuchKey,
    /// 404: no such multipart upload.
    #[error("The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")]
    NoSuchUpload,
    /// 404: a bucket sub-configuration that is never set here (`code` names it, e.g.
    /// `NoSuchBucketPolicy`).
    #[error("{message}")]
    NoSuchConfiguration {
        /// The S3 error code.
        code: &'static str,
        /// The message.
        message: &'static str,
    },
    /// 409: somebody else owns the bucket.
    #[error("The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.")]
    BucketAlreadyExists,
    /// 409: the caller already owns the bucket.
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    /// 409: the bucket still holds objects or uploads.
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// 400: the bucket name breaks the naming rules.
    #[error("The specified bucket is not valid.")]
    InvalidBucketName,
    /// 400: the body's MD5 differs from Content-MD5.
    #[error("The Content-MD5 you specified did not match what we received.")]
    BadDigest,
    /// 400: Content-MD5 is not base64 of 16 bytes.
    #[error("The Content-MD5 you specified is not valid.")]
    InvalidDigest,
    /// 416: the range does not overlap the object.
    #[error("The requested range is not satisfiable")]
    InvalidRange,
    /// 416: `partNumber` names a part the object does not have.
    #[error("The requested partnumber is not satisfiable")]
    InvalidPartNumber,
    /// 412: a precondition (If-Match, If-Unmodified-Since, copy-source conditions) failed.
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    /// 304: If-None-Match / If-Modified-Since say the caller's copy is current (no body).
    #[error("Not Modified")]
    NotModified,
    /// 400: a listed part is missing or its ETag differs.
    #[error("One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")]
    InvalidPart,
    /// 400: the parts are not in ascending order.
    #[error("The list of parts was not in ascending order. Parts must be ordered by part number.")]
    InvalidPartOrder,
    /// 400: a non-final part is under the minimum size.
    #[error("Your proposed upload is smaller than the minimum allowed object size.")]
    EntityTooSmall,
    /// 400: the body is over the maximum size.
    #[error("Your proposed upload exceeds the maximum allowed object size.")]
    EntityTooLarge,
    /// 400: user metadata over 2 KiB.
    #[error("Your metadata headers exceed the maximum allowed metadata size.")]
    MetadataTooLarge,
    /// 400: the XML body does not parse or does not validate.
    #[error("The XML you provided was not well-formed or did not validate against our published schema.")]
    MalformedXML,
    /// 400: an `AccessControlPolicy` body (PutBucketAcl, PutObjectAcl) does not parse or does
    /// not validate (unknown permission or grantee type, too many grants).
    #[error("The XML you provided was not well-formed or did not validate against our published schema.")]
    MalformedACLError,
    /// 400: a grant names a grantee by e-mail address (Anode has no e-mail addresses).
    #[error("The e-mail address you provided does not match any account on record.")]
    UnresolvableGrantByEmailAddress,
    /// 400: a body on a request that takes none (an ACL given by headers and a body at once).
    #[error("This request does not support content")]
    UnexpectedContent,
    /// 400: a bucket policy that does not parse or uses what Anode does not support (the
    /// message says what; nothing was stored).
    #[error("{0}")]
    MalformedPolicy(String),
    /// 400: the bucket's Object Ownership is BucketOwnerEnforced and the request sets an ACL
    /// other than the bucket owner's full control.
    #[error("The bucket does not allow ACLs")]
    AccessControlListNotSupported,
    /// 400: CreateBucket with BucketOwnerEnforced and an ACL other than the owner's full
    /// control.
    #[error("Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")]
    InvalidBucketAclWithObjectOwnership,
    /// 409: a conflicting change to the same configuration kept winning the race.
    #[error("A conflicting conditional operation is currently in progress against this resource. Please try again.")]
    OperationAborted,
    /// 400: an argument is invalid; the message says which.
    #[error("{0}")]
    InvalidArgument(String),
    /// 400: the request is invalid as a whole; the message says why.
    #[error("{0}")]
    InvalidRequest(String),
    /// 400: an `x-amz-security-token` was sent; Anode issues no temporary credentials, so
    /// no token is valid (refused rather than ignored).
    #[error("{0}")]
    InvalidToken(String),
    /// 400: a POST Object policy document is not valid (not base64 JSON, no expiration, no
    /// conditions, a malformed condition).
    #[error("{0}")]
    InvalidPolicyDocument(String),
    /// 400: a POST Object form is not a valid `multipart/form-data` body or lacks a field.
    #[error("{0}")]
    MalformedPOSTRequest(String),
    /// 400: the POST Object form fields before the file are over the limit.
    #[error("Your POST request fields preceeding the upload file was too large.")]
    MaxPostPreDataLengthExceeded,
    /// 400: a POST Object form without exactly one `file` field.
    #[error("POST requires exactly one file upload per request.")]
    IncorrectNumberOfFilesInPostRequest,
    /// 405: the method is not allowed on this resource.
    #[error("The specified method is not allowed against this resource.")]
    MethodNotAllowed,
    /// 501: a feature Anode does not implement.
    #[error("{0}")]
    NotImplemented(String),
    /// 500: an internal failure.
    #[error("We encountered an internal error. Please try again. ({0})")]
    InternalError(String),
    /// 503: the cluster cannot serve now (no leader, too few chunkservers, ...).
    #[error("Please reduce your request rate. ({0})")]
    ServiceUnavailable(String),
    /// 503: the gateway is at its concurrency limit.
    #[error("Please reduce your request rate.")]
    SlowDown,
    /// 400: the body ended early or its framing broke.
    #[error("You did not provide the number of bytes specified by the Content-Length HTTP header. ({0})")]
    IncompleteBody(String),
    /// 400: the client sent the body (or read the response) too slowly.
    #[error("Your socket connection to the server was not read from or written to within the timeout period.")]
    RequestTimeout,
    /// 411: a body without Content-Length.
    #[error("You must provide the Content-Length HTTP header.")]
    MissingContentLength,
    /// 400: the key is over 1024 bytes.
    #[error("Your key is too long")]
    KeyTooLongError,
    /// 404: the version id names no version of the key.
    #[error("The specified version does not exist.")]
    NoSuchVersion,
    /// 409: the bucket's state forbids the request (e.g. suspending versioning with object
    /// lock).
    #[error("{0}")]
    InvalidBucketState(String),
    /// 400: a default retention period that is not a positive number of days or years.
    #[error("{0}")]
    InvalidRetentionPeriod(String),
    /// 400 `InvalidStorageClass`: a storage class other than `STANDARD`.
    #[error(
        "The storage class you specified is not valid (Anode stores every object as STANDARD)"
    )]
    InvalidStorageClass,
    /// 400 `BadRequest`: a CORS preflight without `Origin` or `Access-Control-Request-Method`.
    #[error("{0}")]
    BadRequest(String),
    /// 403 `AccessForbidden`: a CORS preflight no rule of the bucket allows.
    #[error("{0}")]
    AccessForbidden(String),
    /// 400: a tag set over S3's limits (count, key or value length, duplicate keys, the
    /// reserved `aws:` prefix); the message says which.
    #[error("{0}")]
    InvalidTag(String),
    /// A GET or HEAD that met a delete marker: `NoSuchKey` (404, the newest version) or
    /// `MethodNotAllowed` (405, a version id), answered with `x-amz-delete-marker: true` and
    /// the marker's `x-amz-version-id`.
    #[error("{inner}")]
    DeleteMarker {
        /// The error answered.
        inner: Box<S3Error>,
        /// The marker's version id.
        version_id: String,
    },
}

impl S3Error {
    /// Extra response headers of this error (a delete marker's).
    pub fn extra_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            S3Error::DeleteMarker { version_id, .. } => vec![
                ("x-amz-delete-marker", "true".into()),
                ("x-amz-version-id", version_id.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// The S3 error code (`<Code>`).
    pub fn aws_code(&self) -> &'static str {
        use S3Error::*;
        match self {
            AccessDenied(_) | HeadersNotSigned(_) => "AccessDenied",
            SignatureDoesNotMatch => "SignatureDoesNotMatch",
            InvalidAccessKeyId => "InvalidAccessKeyId",
            QuotaExceeded => "QuotaExceeded",
            RequestTimeTooSkewed => "RequestTimeTooSkewed",
            AuthorizationHeaderMalformed(_) => "AuthorizationHeaderMalformed",
            AuthorizationQueryParametersError(_) => "AuthorizationQueryParametersError",
            MissingSecurityHeader(_) => "MissingSecurityHeader",
            XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
            NoSuchBucket => "NoSuchBucket",
            NoSuchKey => "NoSuchKey",
            NoSuchUpload => "NoSuchUpload",
            NoSuchConfiguration { code, .. } => code,
            BucketAlreadyExists => "BucketAlreadyExists",
            BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            BucketNotEmpty => "BucketNotEmpty",
            InvalidBucketName => "InvalidBucketName",
            BadDigest => "BadDigest",
            InvalidDigest => "InvalidDigest",
            InvalidRange => "InvalidRange",
            InvalidPartNumber => "InvalidPartNumber",
            PreconditionFailed => "PreconditionFailed",
            NotModified => "NotModified",
            InvalidPart => "InvalidPart",
            InvalidPartOrder => "InvalidPartOrder",
            EntityTooSmall => "EntityTooSmall",
            EntityTooLarge => "EntityTooLarge",
            MetadataTooLarge => "MetadataTooLarge",
            MalformedXML => "MalformedXML",
            MalformedACLError => "MalformedACLError",
            UnresolvableGrantByEmailAddress => "UnresolvableGrantByEmailAddress",
            UnexpectedContent => "UnexpectedContent",
            MalformedPolicy(_) => "MalformedPolicy",
            AccessControlListNotSupported => "AccessControlListNotSupported",
            InvalidBucketAclWithObjectOwnership => "InvalidBucketAclWithObjectOwnership",
            OperationAborted => "OperationAborted",
            InvalidArgument(_) => "InvalidArgument",
            InvalidRequest(_) => "InvalidRequest",
            InvalidToken(_) => "InvalidToken",
            InvalidPolicyDocument(_) => "InvalidPolicyDocument",
            MalformedPOSTRequest(_) => "MalformedPOSTRequest",
            MaxPostPreDataLengthExceeded => "MaxPostPreDataLengthExceeded",
            IncorrectNumberOfFilesInPostRequest => "IncorrectNumberOfFilesInPostRequest",
            MethodNotAllowed => "MethodNotAllowed",
            NotImplemented(_) => "NotImplemented",
            InternalError(_) => "InternalError",
            ServiceUnavailable(_) => "ServiceUnavailable",
            SlowDown => "SlowDown",
            IncompleteBody(_) => "IncompleteBody",
            RequestTimeout => "RequestTimeout",
            MissingContentLength => "MissingContentLength",
            KeyTooLongError => "KeyTooLongError",
            NoSuchVersion => "NoSuchVersion",
            InvalidBucketState(_) => "InvalidBucketState",
            DeleteMarker { inner, .. } => inner.aws_code(),
            InvalidRetentionPeriod(_) => "InvalidRetentionPeriod",
            BadRequest(_) => "BadRequest",
            InvalidStorageClass => "InvalidStorageClass",
            AccessForbidden(_) => "AccessForbidden",
            InvalidTag(_) => "InvalidTag",
        }
    }

    /// The HTTP status of the error response.
    pub fn http_status(&self) -> StatusCode {
        use S3Error::*;
        match self {
            DeleteMarker { inner, .. } => inner.http_status(),
            AccessDenied(_)
            | HeadersNotSigned(_)
            | SignatureDoesNotMatch
            | InvalidAccessKeyId
            | QuotaExceeded
            | AccessForbidden(_)
            | RequestTimeTooSkewed => StatusCode::FORBIDDEN,
            NoSuchBucket
            | NoSuchKey
            | NoSuchUpload
            | NoSuchConfiguration { .. }
            | NoSuchVersion => StatusCode::NOT_FOUND,
            BucketAlreadyExists
            | BucketAlreadyOwnedByYou
            | BucketNotEmpty
            | OperationAborted
            | InvalidBucketState(_) => StatusCode::CONFLICT,
            InvalidRange | InvalidPartNumber => StatusCode::RANGE_NOT_SATISFIABLE,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            NotModified => StatusCode::NOT_MODIFIED,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            InternalError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailable(_) | SlowDown => StatusCode::SERVICE_UNAVAILABLE,
            MissingContentLength => StatusCode::LENGTH_REQUIRED,
            AuthorizationHeaderMalformed(_)
            | AuthorizationQueryParametersError(_)
            | MissingSecurityHeader(_)
            | XAmzContentSHA256Mismatch
            | InvalidBucketName
            | BadDigest
            | InvalidDigest
            | InvalidPart
            | InvalidPartOrder
            | EntityTooSmall
            | EntityTooLarge
            | MetadataTooLarge
            | MalformedXML
            | MalformedACLError
            | UnresolvableGrantByEmailAddress
            | UnexpectedContent
            | MalformedPolicy(_)
            | AccessControlListNotSupported
            | InvalidBucketAclWithObjectOwnership
            | InvalidArgument(_)
            | InvalidRequest(_)
            | InvalidToken(_)
            | InvalidPolicyDocument(_)
            | MalformedPOSTRequest(_)
            | MaxPostPreDataLengthExceeded
            | IncorrectNumberOfFilesInPostRequest
            | InvalidRetentionPeriod(_)
            | BadRequest(_)
            | InvalidStorageClass
            | InvalidTag(_)
            | IncompleteBody(_)
            | RequestTimeout
            | KeyTooLongError => StatusCode::BAD_REQUEST,
        }
    }

    /// Whether the response carries an XML error document (304 never has a body).
    pub fn has_body(&self) -> bool {
        !matches!(self, S3Error::NotModified)
    }

    /// The `<Message>` a client sees. Server-side failures (5xx) carry fixed text: their
    /// detail (addresses, disks, peers) goes to the log under the request id, never to the
    /// client. Everything else is the `Display` text.
    pub fn public_message(&self) -> String {
        match self {
            S3Error::InternalError(_) => INTERNAL_ERROR_MESSAGE.to_string(),
            S3Error::ServiceUnavailable(_) => SERVICE_UNAVAILABLE_MESSAGE.to_string(),
            e => e.to_string(),
        }
    }

    /// The XML error document: `<Error><Code/><Message/><Resource/><RequestId/></Error>`
    /// (with [`S3Error::public_message`]).
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        let mut w = XmlWriter::new();
        w.open("Error");
        w.elem("Code", self.aws_code());
        w.elem("Message", &self.public_message());
        w.elem("Resource", resource);
        if let S3Error::HeadersNotSigned(names) = self {
            w.elem("HeadersNotSigned", &names.join(", "));
        }
        w.elem("RequestId", request_id);
        w.close("Error");
        w.finish()
    }

    /// Map a client-library error by its code (local failures have codes of the same
    /// vocabulary); the message is the server's for a server's refusal (without the code in
    /// front, which the S3 answer carries as its `Code`), else the error's text.
    pub fn from_client_error(e: &ClientError) -> S3Error {
        match e {
            ClientError::Remote { message, .. } => Self::from_error_code(e.code(), message),
            _ => Self::from_error_code(e.code(), &e.to_string()),
        }
    }

    /// The S3 error for an Anode error code, with its message for people. One exhaustive
    /// match: a new code does not build until it is given an S3 answer here.
    pub fn from_error_code(code: ErrorCode, message: &str) -> S3Error {
        use ErrorCode as C;
        use S3Error::*;
        match code {
            C::NoSuchBucket => NoSuchBucket,
            C::BucketAlreadyExists => BucketAlreadyExists,
            C::BucketAlreadyOwnedByYou => BucketAlreadyOwnedByYou,
            C::BucketNotEmpty => BucketNotEmpty,
            C::InvalidBucketName => InvalidBucketName,
            C::NoSuchKey => NoSuchKey,
            C::KeyTooLong => KeyTooLongError,
            C::MetadataTooLarge => MetadataTooLarge,
            C::NoSuchUpload => NoSuchUpload,
            C::InvalidPart => InvalidPart,
            C::InvalidPartOrder => InvalidPartOrder,
            C::EntityTooSmall => EntityTooSmall,
            C::PreconditionFailed => PreconditionFailed,
            C::InvalidArgument => InvalidArgument(message.to_string()),
            C::NoSuchAccessKey => InvalidAccessKeyId,
            C::BadDigest => BadDigest,
            C::IncompleteBody => IncompleteBody(message.to_string()),
            C::Busy => SlowDown,
            // A node refused this gateway's certificate role: the gateway may not do it.
            C::PermissionDenied => AccessDenied(message.to_string()),
            C::QuotaExceeded => QuotaExceeded,
            // The principal's user vanished between authentication and the write.
            C::NoSuchUser => AccessDenied("Access Denied".into()),
            C::NoSuchVersion => NoSuchVersion,
            C::InvalidBucketState => InvalidBucketState(message.to_string()),
            // A locked version: S3 answers AccessDenied to everyone, owners included.
            C::ObjectLocked => AccessDenied(message.to_string()),
            C::MethodNotAllowed => MethodNotAllowed,
            // The master's text names the configuration; the S3 code is chosen by the handler
            // that knows which one was asked for.
            C::NoSuchConfiguration => InvalidRequest(message.to_string()),
            C::NotLeader | C::Unavailable | C::Timeout | C::InsufficientServers => {
                ServiceUnavailable(message.to_string())
            }
            // Nothing an S3 client can act on: answered as before, 500.
            C::Unspecified
            | C::ChunkGone
            | C::AccessKeyExists
            | C::UnknownChunkserver
            | C::StaleEpoch
            | C::BadCommand
            | C::UnsupportedVersion
            | C::SessionExpired
            | C::UserExists
            | C::UserNotEmpty
            | C::NotMember
            | C::AlreadyMember
            | C::WouldLoseQuorum
            | C::ConfChangeRejected
            | C::Internal
            | C::NoSuchChunk
            | C::InsufficientStorage
            | C::CorruptChunk
            | C::ChunkUnavailable => InternalError(message.to_string()),
        }
    }
}

/// A name or size the shared validator refuses, as S3 answers it.
impl From<ValidationError> for S3Error {
    fn from(e: ValidationError) -> S3Error {
        S3Error::from_error_code(e.code(), &e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let table: Vec<(S3Error, &str, u16)> = vec![
            (
                S3Error::AccessDenied("Access Denied".into()),
                "AccessDenied",
                403,
            ),
            (S3Error::SignatureDoesNotMatch, "SignatureDoesNotMatch", 403),
            (S3Error::InvalidAccessKeyId, "InvalidAccessKeyId", 403),
            (S3Error::RequestTimeTooSkewed, "RequestTimeTooSkewed", 403),
            (S3Error::NoSuchBucket, "NoSuchBucket", 404),
            (S3Error::NoSuchKey, "NoSuchKey", 404),
            (S3Error::NoSuchUpload, "NoSuchUpload", 404),
            (S3Error::BucketAlreadyExists, "BucketAlreadyExists", 409),
            (
                S3Error::BucketAlreadyOwnedByYou,
                "BucketAlreadyOwnedByYou",
                409,
            ),
            (S3Error::BucketNotEmpty, "BucketNotEmpty", 409),
            (S3Error::InvalidBucketName, "InvalidBucketName", 400),
            (S3Error::BadDigest, "BadDigest", 400),
            (S3Error::InvalidDigest, "InvalidDigest", 400),
            (S3Error::InvalidRange, "InvalidRange", 416),
            (S3Error::InvalidPartNumber, "InvalidPartNumber", 416),
            (S3Error::PreconditionFailed, "PreconditionFailed", 412),
            (S3Error::NotModified, "NotModified", 304),
            (S3Error::InvalidPart, "InvalidPart", 400),
            (S3Error::InvalidPartOrder, "InvalidPartOrder", 400),
            (S3Error::EntityTooSmall, "EntityTooSmall", 400),
            (S3Error::EntityTooLarge, "EntityTooLarge", 400),
            (S3Error::MalformedXML, "MalformedXML", 400),
            (S3Error::MalformedACLError, "MalformedACLError", 400),
            (
                S3Error::UnresolvableGrantByEmailAddress,
                "UnresolvableGrantByEmailAddress",
                400,
            ),
            (S3Error::UnexpectedContent, "UnexpectedContent", 400),
            (S3Error::MalformedPolicy("x".into()), "MalformedPolicy", 400),
            (
                S3Error::AccessControlListNotSupported,
                "AccessControlListNotSupported",
                400,
            ),
            (
                S3Error::InvalidBucketAclWithObjectOwnership,
                "InvalidBucketAclWithObjectOwnership",
                400,
            ),
            (S3Error::OperationAborted, "OperationAborted", 409),
            (S3Error::InvalidArgument("x".into()), "InvalidArgument", 400),
            (S3Error::InvalidRequest("x".into()), "InvalidRequest", 400),
            (S3Error::InvalidToken("x".into()), "InvalidToken", 400),
            (
                S3Error::InvalidPolicyDocument("x".into()),
                "InvalidPolicyDocument",
                400,
            ),
            (
                S3Error::MalformedPOSTRequest("x".into()),
                "MalformedPOSTRequest",
                400,
            ),
            (
                S3Error::MaxPostPreDataLengthExceeded,
                "MaxPostPreDataLengthExceeded",
                400,
            ),
            (
                S3Error::IncorrectNumberOfFilesInPostRequest,
                "IncorrectNumberOfFilesInPostRequest",
                400,
            ),
            (S3Error::MethodNotAllowed, "MethodNotAllowed", 405),
            (S3Error::NotImplemented("x".into()), "NotImplemented", 501),
            (S3Error::InternalError("x".into()), "InternalError", 500),
            (
                S3Error::ServiceUnavailable("x".into()),
                "ServiceUnavailable",
                503,
            ),
            (S3Error::SlowDown, "SlowDown", 503),
            (S3Error::IncompleteBody("x".into()), "IncompleteBody", 400),
            (S3Error::MissingContentLength, "MissingContentLength", 411),
            (S3Error::RequestTimeout, "RequestTimeout", 400),
            (S3Error::KeyTooLongError, "KeyTooLongError", 400),
            (
                S3Error::XAmzContentSHA256Mismatch,
                "XAmzContentSHA256Mismatch",
                400,
            ),
        ];
        for (e, code, status) in table {
            assert_eq!(e.aws_code(), code, "{e:?}");
            assert_eq!(e.http_status().as_u16(), status, "{e:?}");
            assert_eq!(e.has_body(), status != 304);
        }
    }

    #[test]
    fn xml_document() {
        let xml = S3Error::NoSuchKey.to_xml("/b/a&b", "REQ1");
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
             <Message>The specified key does not exist.</Message>\
             <Resource>/b/a&amp;b</Resource><RequestId>REQ1</RequestId></Error>"
        );
    }

    #[test]
    fn server_errors_show_no_detail() {
        let e = S3Error::InternalError("chunkserver 10.0.0.7:7101: EIO on /srv/d3".into());
        let xml = e.to_xml("/b/k", "REQ9");
        assert!(
            xml.contains("<Message>We encountered an internal error. Please try again.</Message>")
                && xml.contains("<RequestId>REQ9</RequestId>")
                && !xml.contains("10.0.0.7"),
            "{xml}"
        );
        assert!(
            e.to_string().contains("10.0.0.7"),
            "the log keeps the detail"
        );
        let xml =
            S3Error::ServiceUnavailable("need 3 chunkservers, have 1".into()).to_xml("/", "R");
        assert!(
            xml.contains("<Message>Please reduce your request rate.</Message>")
                && !xml.contains("chunkservers"),
            "{xml}"
        );
        let xml = S3Error::InvalidArgument("bad max-keys".into()).to_xml("/", "R");
        assert!(xml.contains("<Message>bad max-keys</Message>"), "{xml}");
    }

    #[test]
    fn client_errors_map_by_code() {
        let remote = |code: ErrorCode| ClientError::Remote {
            code,
            message: "m".into(),
            resource: String::new(),
        };
        let table = [
            (remote(ErrorCode::NoSuchBucket), S3Error::NoSuchBucket),
            (remote(ErrorCode::BucketNotEmpty), S3Error::BucketNotEmpty),
            (
                remote(ErrorCode::NoSuchAccessKey),
                S3Error::InvalidAccessKeyId,
            ),
            (remote(ErrorCode::Busy), S3Error::SlowDown),
            (ClientError::BadDigest, S3Error::BadDigest),
        ];
        for (e, want) in table {
            assert_eq!(S3Error::from_client_error(&e), want, "{e:?}");
        }
        let code = |e: &ClientError| S3Error::from_client_error(e).aws_code();
        assert_eq!(code(&remote(ErrorCode::StaleEpoch)), "InternalError");
        assert_eq!(code(&ClientError::NoLeader), "ServiceUnavailable");
        assert_eq!(
            code(&ClientError::InsufficientServers { need: 3, have: 1 }),
            "ServiceUnavailable"
        );
        let io = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(code(&ClientError::Io(io)), "IncompleteBody");
        assert_eq!(
            code(&ClientError::ChunkUnavailable {
                sha256: "ab".into()
            }),
            "InternalError"
        );
    }

    #[test]
    fn validation_errors_map_like_s3() {
        use anode_meta::validate;
        let table: [(Result<(), ValidationError>, &str, u16); 5] = [
            (validate::bucket_name("a.-b"), "InvalidBucketName", 400),
            (
                validate::object_key(&"k".repeat(1025)),
                "KeyTooLongError",
                400,
            ),
            (validate::part_number(0), "InvalidArgument", 400),
            (validate::user_metadata_bytes(2049), "MetadataTooLarge", 400),
            (validate::upload_id("a/b"), "NoSuchUpload", 404),
        ];
        for (res, code, status) in table {
            let e = S3Error::from(res.unwrap_err());
            assert_eq!((e.aws_code(), e.http_status().as_u16()), (code, status));
        }
    }
}
