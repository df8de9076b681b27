//! Every `ErrorCode` from a server to an S3 client: a real tonic server on 127.0.0.1 refuses a
//! call with the code's `ErrorDetail` (built by the production helper), the client library maps
//! the received status to its `ClientError` (the production `from_status`), and the gateway maps
//! that to the S3 error code and HTTP status an S3 client sees.
//!
//! The table names the expected S3 answer of every code; it must list each code of
//! `ErrorCode::ALL` exactly once, so a new code fails here until its S3 answer is decided.

use std::collections::BTreeSet;
use std::pin::Pin;

use anode_client::{ClientError, ErrorCode, ErrorDetail};
use anode_gateway::S3Error;
use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::chunkserver_server::{Chunkserver, ChunkserverServer};
use anode_proto::{
    GetChunkRequest, GetChunkResponse, GetExportRequest, GetExportResponse, ListExportsRequest,
    ListExportsResponse, PutChunkRequest, PutChunkResponse, PutExportRequest, PutExportResponse,
    StatChunkRequest, StatChunkResponse,
};
use futures::Stream;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

/// The S3 answer each code must produce: (code, S3 `<Code>`, HTTP status).
const EXPECTED: [(ErrorCode, &str, u16); 49] = [
    (ErrorCode::Unspecified, "InternalError", 500),
    (ErrorCode::NoSuchBucket, "NoSuchBucket", 404),
    (ErrorCode::BucketAlreadyExists, "BucketAlreadyExists", 409),
    (
        ErrorCode::BucketAlreadyOwnedByYou,
        "BucketAlreadyOwnedByYou",
        409,
    ),
    (ErrorCode::BucketNotEmpty, "BucketNotEmpty", 409),
    (ErrorCode::InvalidBucketName, "InvalidBucketName", 400),
    (ErrorCode::NoSuchKey, "NoSuchKey", 404),
    (ErrorCode::KeyTooLong, "KeyTooLongError", 400),
    (ErrorCode::MetadataTooLarge, "MetadataTooLarge", 400),
    (ErrorCode::NoSuchUpload, "NoSuchUpload", 404),
    (ErrorCode::InvalidPart, "InvalidPart", 400),
    (ErrorCode::InvalidPartOrder, "InvalidPartOrder", 400),
    (ErrorCode::EntityTooSmall, "EntityTooSmall", 400),
    (ErrorCode::PreconditionFailed, "PreconditionFailed", 412),
    (ErrorCode::InvalidArgument, "InvalidArgument", 400),
    (ErrorCode::ChunkGone, "InternalError", 500),
    (ErrorCode::NoSuchAccessKey, "InvalidAccessKeyId", 403),
    (ErrorCode::AccessKeyExists, "InternalError", 500),
    (ErrorCode::UnknownChunkserver, "InternalError", 500),
    (ErrorCode::StaleEpoch, "InternalError", 500),
    (ErrorCode::BadCommand, "InternalError", 500),
    (ErrorCode::UnsupportedVersion, "InternalError", 500),
    (ErrorCode::SessionExpired, "InternalError", 500),
    (ErrorCode::QuotaExceeded, "QuotaExceeded", 403),
    (ErrorCode::NoSuchUser, "AccessDenied", 403),
    (ErrorCode::UserExists, "InternalError", 500),
    (ErrorCode::UserNotEmpty, "InternalError", 500),
    (ErrorCode::NoSuchVersion, "NoSuchVersion", 404),
    (ErrorCode::InvalidBucketState, "InvalidBucketState", 409),
    (ErrorCode::ObjectLocked, "AccessDenied", 403),
    (ErrorCode::NoSuchConfiguration, "InvalidRequest", 400),
    (ErrorCode::MethodNotAllowed, "MethodNotAllowed", 405),
    (ErrorCode::InsufficientServers, "ServiceUnavailable", 503),
    (ErrorCode::NotMember, "InternalError", 500),
    (ErrorCode::AlreadyMember, "InternalError", 500),
    (ErrorCode::WouldLoseQuorum, "InternalError", 500),
    (ErrorCode::ConfChangeRejected, "InternalError", 500),
    (ErrorCode::NotLeader, "ServiceUnavailable", 503),
    (ErrorCode::Busy, "SlowDown", 503),
    (ErrorCode::Unavailable, "ServiceUnavailable", 503),
    (ErrorCode::Timeout, "ServiceUnavailable", 503),
    (ErrorCode::Internal, "InternalError", 500),
    (ErrorCode::BadDigest, "BadDigest", 400),
    (ErrorCode::NoSuchChunk, "InternalError", 500),
    (ErrorCode::InsufficientStorage, "InternalError", 500),
    (ErrorCode::CorruptChunk, "InternalError", 500),
    (ErrorCode::IncompleteBody, "IncompleteBody", 400),
    (ErrorCode::ChunkUnavailable, "InternalError", 500),
    (ErrorCode::PermissionDenied, "AccessDenied", 403),
];

/// A data API that refuses every StatChunk with the code whose wire number is the request's
/// first byte, carrying structured fields the client must read without parsing text.
struct Refuser;

fn detail_for(code: ErrorCode) -> ErrorDetail {
    ErrorDetail::new(code, format!("refused with {code}"))
        .with_resource("res")
        .with_need_have(3, 1)
        .with_leader(2, "10.0.0.2:7001")
}

type GetStream = Pin<Box<dyn Stream<Item = Result<GetChunkResponse, Status>> + Send>>;
type ExportStream = Pin<Box<dyn Stream<Item = Result<GetExportResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Chunkserver for Refuser {
    async fn put_chunk(
        &self,
        _r: Request<Streaming<PutChunkRequest>>,
    ) -> Result<Response<PutChunkResponse>, Status> {
        Err(Status::unimplemented("put_chunk"))
    }

    type GetChunkStream = GetStream;

    async fn get_chunk(&self, _r: Request<GetChunkRequest>) -> Result<Response<GetStream>, Status> {
        Err(Status::unimplemented("get_chunk"))
    }

    async fn stat_chunk(
        &self,
        r: Request<StatChunkRequest>,
    ) -> Result<Response<StatChunkResponse>, Status> {
        let n = i32::from(r.into_inner().sha256.first().copied().unwrap_or(0));
        let code = ErrorCode::try_from(n).map_err(|_| Status::invalid_argument("no such code"))?;
        Err(detail_for(code).to_status())
    }

    async fn put_export(
        &self,
        _r: Request<Streaming<PutExportRequest>>,
    ) -> Result<Response<PutExportResponse>, Status> {
        Err(Status::unimplemented("put_export"))
    }

    async fn list_exports(
        &self,
        _r: Request<ListExportsRequest>,
    ) -> Result<Response<ListExportsResponse>, Status> {
        Err(Status::unimplemented("list_exports"))
    }

    type GetExportStream = ExportStream;

    async fn get_export(
        &self,
        _r: Request<GetExportRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        Err(Status::unimplemented("get_export"))
    }
}

/// Serve the refuser as a chunkserver with mutual TLS and the role check (as the real one
/// does), and connect to it as a gateway.
async fn serve(certs: &std::path::Path) -> ChunkserverClient<tonic::transport::Channel> {
    use anode_tls::Role;
    let dirs =
        anode_tls::certs::ensure_layout(certs, &[(Role::Chunkserver, "1"), (Role::Gateway, "1")])
            .unwrap();
    let (server_tls, client_tls) = (
        anode_tls::Tls::load(&dirs[0]).unwrap(),
        anode_tls::Tls::load(&dirs[1]).unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(
        server_tls
            .server_builder()
            .unwrap()
            .layer(server_tls.authz_layer())
            .add_service(ChunkserverServer::new(Refuser))
            .serve_with_incoming(TcpListenerStream::new(l)),
    );
    let channel = client_tls
        .endpoint(&addr, Role::Chunkserver)
        .unwrap()
        .connect()
        .await
        .unwrap();
    ChunkserverClient::new(channel)
}

#[test]
fn the_table_covers_every_code_once() {
    let listed: BTreeSet<i32> = EXPECTED.iter().map(|(c, ..)| *c as i32).collect();
    let all: BTreeSet<i32> = ErrorCode::ALL.iter().map(|c| *c as i32).collect();
    assert_eq!(listed, all);
    assert_eq!(listed.len(), EXPECTED.len(), "a code is listed twice");
}

#[tokio::test]
async fn every_code_round_trips_to_its_s3_answer() {
    let certs = tempfile::tempdir().unwrap();
    let mut client = serve(certs.path()).await;
    for (code, s3_code, http) in EXPECTED {
        let wire = u8::try_from(code as i32).expect("codes fit a byte");
        let status = client
            .stat_chunk(StatChunkRequest {
                sha256: vec![wire],
                touch: false,
            })
            .await
            .expect_err("the server refuses every call");
        assert_eq!(status.code(), anode_proto::grpc_code(code), "{code:?}");
        let e = ClientError::from_status(&status);
        assert_eq!(e.code(), code, "{code:?}: {e:?}");
        check_fields(code, &e);
        let s3 = S3Error::from_client_error(&e);
        assert_eq!(
            (s3.aws_code(), s3.http_status().as_u16()),
            (s3_code, http),
            "{code:?}: {e:?}"
        );
    }
}

/// The structured fields arrive as fields: need/have for InsufficientServers, the resource of
/// a definite refusal.
fn check_fields(code: ErrorCode, e: &ClientError) {
    match e {
        ClientError::InsufficientServers { need, have } => {
            assert_eq!(code, ErrorCode::InsufficientServers);
            assert_eq!((*need, *have), (3, 1));
        }
        ClientError::Remote {
            message, resource, ..
        } => {
            assert_eq!(message, &format!("refused with {code}"));
            assert_eq!(resource, "res");
        }
        ClientError::NoLeader => assert_eq!(code, ErrorCode::NotLeader),
        ClientError::Unavailable(m) | ClientError::Timeout(m) => {
            assert_eq!(m, &format!("refused with {code}"));
        }
        other => panic!("{code:?} became {other:?}"),
    }
}
