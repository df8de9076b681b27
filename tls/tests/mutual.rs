//! Mutual TLS and the role check through a real tonic server on loopback: a trust bundle of two
//! CAs (CA rotation), a stranger CA, the server's role checked by name, and the authz layer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anode_proto::raft_transport_client::RaftTransportClient;
use anode_proto::raft_transport_server::{RaftTransport, RaftTransportServer};
use anode_proto::{ErrorCode, ErrorDetail, RaftAck, RaftBatch};
use anode_tls::{PeerIdentity, Role, Tls};
use tokio_stream::wrappers::TcpListenerStream;

/// Accepts `Send` when the handler sees a master identity in the request extensions (put
/// there by the authz layer), refuses with INTERNAL otherwise.
struct Echo;

#[tonic::async_trait]
impl RaftTransport for Echo {
    async fn send(
        &self,
        req: tonic::Request<RaftBatch>,
    ) -> Result<tonic::Response<RaftAck>, tonic::Status> {
        match req.extensions().get::<PeerIdentity>() {
            Some(id) if id.role == Role::Master => Ok(tonic::Response::new(RaftAck {})),
            other => Err(tonic::Status::internal(format!("handler saw {other:?}"))),
        }
    }

    async fn send_snapshot(
        &self,
        _req: tonic::Request<tonic::Streaming<anode_proto::SnapshotPiece>>,
    ) -> Result<tonic::Response<RaftAck>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this test"))
    }
}

fn certs(dir: &Path, nodes: &[(Role, &str)]) -> Vec<PathBuf> {
    anode_tls::certs::ensure_layout(dir, nodes).unwrap()
}

/// Replace `dir/ca.crt` with the concatenation of `cas`.
fn bundle(dir: &Path, cas: &[&Path]) {
    let pem: Vec<u8> = cas
        .iter()
        .flat_map(|c| std::fs::read(c.join("ca").join("ca.crt")).unwrap())
        .collect();
    std::fs::write(dir.join("ca.crt"), pem).unwrap();
}

async fn serve(tls: &Tls) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let router = tls
        .server_builder()
        .unwrap()
        .layer(tls.authz_layer())
        .add_service(RaftTransportServer::new(Echo));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(l)));
    addr
}

async fn call(tls: &Tls, addr: &str, as_role: Role) -> Result<(), tonic::Status> {
    let ep = tls
        .endpoint(addr, as_role)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let ch = ep
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    RaftTransportClient::new(ch)
        .send(RaftBatch::default())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn bundles_strangers_server_roles_and_the_role_check() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (old, new, stranger) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let server = certs(old.path(), &[(Role::Master, "1")]).remove(0);
        let peer_new = certs(new.path(), &[(Role::Master, "2")]).remove(0);
        let gw_old = certs(old.path(), &[(Role::Gateway, "1")]).remove(0);
        let evil = certs(stranger.path(), &[(Role::Master, "3")]).remove(0);
        // Mid-rotation: both sides trust the old and the new CA.
        bundle(&server, &[old.path(), new.path()]);
        bundle(&peer_new, &[old.path(), new.path()]);
        let server_tls = Tls::load(&server).unwrap();
        let addr = serve(&server_tls).await;

        // A master of the new CA is trusted through the bundle, and the handler sees its
        // identity.
        call(&Tls::load(&peer_new).unwrap(), &addr, Role::Master)
            .await
            .expect("bundle trusts the new CA");
        // The same peer, expecting a chunkserver at that address, refuses the master's
        // certificate (server role checked by name).
        assert!(
            call(&Tls::load(&peer_new).unwrap(), &addr, Role::Chunkserver)
                .await
                .is_err()
        );
        // A certificate of a stranger CA: refused (the stranger also trusts our CA, so only
        // the server's check can stop it).
        bundle(&evil, &[old.path(), stranger.path()]);
        assert!(call(&Tls::load(&evil).unwrap(), &addr, Role::Master)
            .await
            .is_err());
        // A gateway of the right CA: the role check refuses Send before the handler.
        let st = call(&Tls::load(&gw_old).unwrap(), &addr, Role::Master)
            .await
            .expect_err("gateway may not send raft messages");
        assert_eq!(st.code(), tonic::Code::PermissionDenied);
        let d = ErrorDetail::from_status(&st).expect("detail");
        assert_eq!(d.code(), ErrorCode::PermissionDenied);
        assert_eq!(d.resource, "/anode.v1.RaftTransport/Send");
        // Without TLS the layer passes calls through, and handlers see no identity.
        let plain = serve(&Tls::Insecure).await;
        let st = call(&Tls::Insecure, &plain, Role::Master)
            .await
            .expect_err("no identity without TLS");
        assert_eq!(st.code(), tonic::Code::Internal);
    })
    .await
    .expect("bounded");
}
