//! Who may call what: node identities and the one authorization table of every gRPC method.
//!
//! A peer's identity comes from its TLS certificate (the URI SAN `anode://<role>/<id>`, parsed
//! by `anode-tls`); this module holds the pure parts: the roles, the identity syntax, the table
//! [`allowed`] over every RPC path, and the raft sender check [`check_raft_batch`]. The tower
//! layer in `anode-tls` calls [`allowed`] once per RPC before any handler runs.
//!
//! Architecture invariant: an RPC path missing from the table is denied (the unit test below
//! lists every RPC of `proto/proto/anode/v1/*.proto`, so a new RPC without a rule fails it).

use std::collections::BTreeSet;
use std::fmt;

/// The role a certificate grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A member of the raft group (id = its raft node id).
    Master,
    /// A chunkserver.
    Chunkserver,
    /// An S3 gateway.
    Gateway,
    /// A program using the client library (benchmarks, tools, applications).
    Client,
    /// An operator (`anode ctl`).
    Admin,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 5] = [
        Role::Master,
        Role::Chunkserver,
        Role::Gateway,
        Role::Client,
        Role::Admin,
    ];

    /// The role's name in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Chunkserver => "chunkserver",
            Role::Gateway => "gateway",
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }

    /// The role named `s` (exact, lower case).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The DNS name every certificate of this role carries (`master.anode`); a client checks
    /// the server's role by connecting with this name.
    pub fn dns_name(self) -> String {
        format!("{}.anode", self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an identity string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// Not `anode://<role>/<id>`.
    #[error("identity {0:?} is not anode://<role>/<id>")]
    Syntax(String),
    /// An unknown role name.
    #[error("unknown role {0:?} (master, chunkserver, gateway, client, admin)")]
    UnknownRole(String),
    /// An id that is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("bad id {0:?}: 1..=64 characters of A-Z a-z 0-9 _ . -")]
    BadId(String),
    /// A master id that is not a non-zero u64 (its raft node id).
    #[error("a master's id must be its non-zero raft node id, not {0:?}")]
    BadMasterId(String),
}

/// Longest id in a certificate.
pub const MAX_ID_CHARS: usize = 64;

/// A peer as its certificate names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// What the peer may do.
    pub role: Role,
    /// Its id within the role (a master's raft id, a chunkserver number, a name).
    pub id: String,
}

impl PeerIdentity {
    /// A checked identity: the id has 1..=64 characters of `[A-Za-z0-9_.-]`, and a master's id
    /// is a non-zero u64.
    pub fn new(role: Role, id: &str) -> Result<PeerIdentity, IdentityError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if id.is_empty() || id.len() > MAX_ID_CHARS || !id.chars().all(ok_char) {
            return Err(IdentityError::BadId(id.to_string()));
        }
        if role == Role::Master && !matches!(id.parse::<u64>(), Ok(n) if n != 0) {
            return Err(IdentityError::BadMasterId(id.to_string()));
        }
        Ok(PeerIdentity {
            role,
            id: id.to_string(),
        })
    }

    /// Parse the URI SAN form `anode://<role>/<id>`.
    pub fn from_uri(uri: &str) -> Result<PeerIdentity, IdentityError> {
        let rest = uri
            .strip_prefix("anode://")
            .ok_or_else(|| IdentityError::Syntax(uri.to_string()))?;
        let (role, id) = rest
            .split_once('/')
            .ok_or_else(|| IdentityError::Syntax(uri.to_string()))?;
        let role = Role::parse(role).ok_or_else(|| IdentityError::UnknownRole(role.to_string()))?;
        PeerIdentity::new(role, id)
    }

    /// The URI SAN form `anode://<role>/<id>`.
    pub fn uri(&self) -> String {
        format!("anode://{}/{}", self.role, self.id)
    }

    /// The certificate common name `<role>-<id>`.
    pub fn common_name(&self) -> String {
        format!("{}-{}", self.role, self.id)
    }

    /// A master's raft node id (`None` for other roles).
    pub fn master_id(&self) -> Option<u64> {
        match self.role {
            Role::Master => self.id.parse().ok(),
            _ => None,
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.role, self.id)
    }
}

use Role::{Admin, Chunkserver, Client, Gateway, Master};

/// The metadata API of the master used by writers and readers.
const DATA_USERS: &[Role] = &[Gateway, Client, Admin];
/// Every authenticated role.
const ANYONE: &[Role] = &[Master, Chunkserver, Gateway, Client, Admin];

/// The roles that may call the gRPC method at `path` (`/anode.v1.Master/CreateBucket`), or
/// `None` for a path the table does not know.
///
/// Decisions (docs/security.md has the matrix):
/// - raft transport: masters only (the raft handler then checks the sender against the
///   configuration, [`check_raft_batch`]);
/// - namespace, multipart and chunk placement: gateway, client, admin (admin for `anode ctl
///   buckets`);
/// - `PutObjects` (bulk loads): client and admin, not the gateway;
/// - registration and heartbeats: chunkservers; `ReportBadChunk`: the readers (gateway,
///   client) and chunkservers;
/// - keys, users, quotas, cluster changes and metadata backups: admin; `GetKey` (returns a
///   secret): the gateway only; `GetUser`, `ListUsers` (no secrets): gateway and admin;
/// - `JoinGroup`: masters (a starting member asking to be added; the handler checks that the
///   certificate's id is the member id asked for);
/// - access configuration (`SetBucketAccess`, `SetObjectAcl`: bucket policies and ACLs, which
///   the S3 gateway authorizes per request): gateway and admin, not the client role (a program
///   on the client library still writes an object's ACL with the object, as `PutObject` takes
///   the manifest whole);
/// - `Status`, `Leader`: anyone authenticated (the client probes `Leader`);
/// - chunkserver data API: gateway, client, and chunkservers (a chunkserver replicating a
///   chunk reads it from another one with `GetChunk`);
/// - metadata exports on chunkservers: `PutExport` from masters only; `ListExports` and
///   `GetExport` from admin (`anode ctl rebuild`) and masters.
pub fn roles_for(path: &str) -> Option<&'static [Role]> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    match service {
        "anode.v1.RaftTransport" => match method {
            "Send" | "SendSnapshot" => Some(&[Master]),
            _ => None,
        },
        "anode.v1.Chunkserver" => match method {
            "PutChunk" | "GetChunk" | "StatChunk" => Some(&[Gateway, Client, Chunkserver]),
            // Metadata exports: written by the master leader only, read by operators
            // (`anode ctl rebuild`) and masters.
            "PutExport" => Some(&[Master]),
            "ListExports" | "GetExport" => Some(&[Admin, Master]),
            _ => None,
        },
        "anode.v1.Master" => master_roles(method),
        _ => None,
    }
}

fn master_roles(method: &str) -> Option<&'static [Role]> {
    Some(match method {
        "CreateBucket"
        | "DeleteBucket"
        | "ListBuckets"
        | "GetBucket"
        | "PutObject"
        | "GetObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "ListObjects"
        | "ListObjectVersions"
        | "CreateMultipart"
        | "PutPart"
        | "CompleteMultipart"
        | "AbortMultipart"
        | "ListParts"
        | "ListMultipartUploads"
        | "AllocateChunks"
        | "LocateChunks" => DATA_USERS,
        "ReportBadChunk" => &[Gateway, Client, Chunkserver],
        // Bulk loads: tools on the client library and operators; no S3 request needs it.
        "PutObjects" => &[Client, Admin],
        "RegisterChunkserver" | "Heartbeat" => &[Chunkserver],
        "CreateKey" | "ListKeys" | "DeleteKey" | "SetKeyDisabled" | "CreateUser" | "DeleteUser"
        | "SetUserQuota" | "SetBucketQuota" | "AddMember" | "RemoveMember" | "TransferLeader"
        | "DrainChunkserver" | "Backup" => &[Admin],
        // A starting master asks to be added; the handler also checks that the certificate's
        // id is the member id asked for.
        "JoinGroup" => &[Master],
        "GetKey" => &[Gateway],
        // Users hold no secret: gateways read them to resolve principals, operators list them.
        "GetUser" | "ListUsers" => &[Gateway, Admin],
        "SetBucketAccess" | "SetObjectAcl" => &[Gateway, Admin],
        // Versioning, object lock and lifecycle configuration (issue 14): set by the gateway
        // for S3 principals it authorized, and by operators.
        "SetBucketVersioning" | "SetBucketObjectLock" | "SetBucketLifecycle" | "SetObjectLock" => {
            &[Gateway, Admin]
        }
        // CORS rules (issue 15): set by the gateway for S3 principals it authorized.
        "SetBucketCors" => &[Gateway, Admin],
        // Tagging (issue 15): object tags as objects are written (clients put objects, so
        // they tag them), bucket tags as bucket configuration.
        "SetObjectTagging" => &[Gateway, Client, Admin],
        "SetBucketTagging" => &[Gateway, Admin],
        // Event notifications (issue 15): bucket rules set by the gateway for S3 principals
        // it authorized; targets (where the leader sends events) by operators only; watches
        // by gateways (S3 listeners), clients (`Client::watch`) and operators.
        "SetBucketNotification" => &[Gateway, Admin],
        "SetNotificationTarget" | "ListNotificationTargets" => &[Admin],
        "Watch" => &[Gateway, Client, Admin],
        // Parquet indexes (issue 16): written by whoever writes objects.
        "SetParquetIndex" => &[Gateway, Client, Admin],
        "Status" | "Leader" => ANYONE,
        _ => return None,
    })
}

/// May `role` call the gRPC method at `path`? An unknown path is denied.
pub fn allowed(role: Role, path: &str) -> bool {
    roles_for(path).is_some_and(|roles| roles.contains(&role))
}

/// Why a raft batch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RaftRefusal {
    /// The certificate is not a master's.
    #[error("raft messages only from masters, not {0}")]
    NotMaster(String),
    /// A `from` field differs from the certificate's id.
    #[error("sender claims id {claimed} but its certificate says {cert}")]
    ForgedFrom {
        /// The id in the batch or message.
        claimed: u64,
        /// The certificate's id.
        cert: u64,
    },
    /// The sender is not a voter or learner of this member's current configuration.
    #[error("sender {0} is not a member of the current configuration")]
    NotMember(u64),
    /// A `to` field names another member.
    #[error("message for member {to} delivered to member {me}")]
    WrongRecipient {
        /// The recipient named in the batch or message.
        to: u64,
        /// This member.
        me: u64,
    },
}

/// The raft sender check: every `from` (the batch's and each message's) equals the
/// certificate's master id, that id is a member (voter or learner) of `members`, and every
/// `to` names `me`. Nothing of a refused batch reaches raft.
pub fn check_raft_batch(
    peer: &PeerIdentity,
    me: u64,
    members: &BTreeSet<u64>,
    from_to: impl IntoIterator<Item = (u64, u64)>,
) -> Result<(), RaftRefusal> {
    let cert = peer
        .master_id()
        .ok_or_else(|| RaftRefusal::NotMaster(peer.to_string()))?;
    if !members.contains(&cert) {
        return Err(RaftRefusal::NotMember(cert));
    }
    for (from, to) in from_to {
        if from != cert {
            return Err(RaftRefusal::ForgedFrom {
                claimed: from,
                cert,
            });
        }
        if to != me {
            return Err(RaftRefusal::WrongRecipient { to, me });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `rpc` of every service in the .proto files, as gRPC paths.
    fn proto_rpcs() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/proto/anode/v1");
        let mut out = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "proto"))
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut service = None;
            for line in text.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("service ") {
                    service = rest.split_whitespace().next().map(str::to_string);
                } else if let Some(rest) = line.strip_prefix("rpc ") {
                    let name = rest.split('(').next().unwrap().trim();
                    let svc = service.as_deref().expect("rpc outside a service");
                    out.push(format!("/anode.v1.{svc}/{name}"));
                }
            }
        }
        out
    }

    #[test]
    fn every_rpc_in_the_protos_has_a_rule() {
        let rpcs = proto_rpcs();
        assert!(rpcs.len() >= 35, "parsed only {} rpcs", rpcs.len());
        for path in &rpcs {
            assert!(roles_for(path).is_some(), "no access rule for {path}");
        }
    }

    #[test]
    fn the_matrix() {
        let cases: &[(&str, &[Role])] = &[
            ("/anode.v1.RaftTransport/Send", &[Master]),
            ("/anode.v1.RaftTransport/SendSnapshot", &[Master]),
            ("/anode.v1.Master/AddMember", &[Admin]),
            ("/anode.v1.Master/RemoveMember", &[Admin]),
            ("/anode.v1.Master/TransferLeader", &[Admin]),
            ("/anode.v1.Master/DrainChunkserver", &[Admin]),
            ("/anode.v1.Master/Backup", &[Admin]),
            ("/anode.v1.Master/JoinGroup", &[Master]),
            ("/anode.v1.Master/CreateKey", &[Admin]),
            ("/anode.v1.Master/ListKeys", &[Admin]),
            ("/anode.v1.Master/DeleteKey", &[Admin]),
            ("/anode.v1.Master/GetKey", &[Gateway]),
            ("/anode.v1.Master/CreateUser", &[Admin]),
            ("/anode.v1.Master/DeleteUser", &[Admin]),
            ("/anode.v1.Master/SetUserQuota", &[Admin]),
            ("/anode.v1.Master/SetBucketQuota", &[Admin]),
            ("/anode.v1.Master/SetKeyDisabled", &[Admin]),
            ("/anode.v1.Master/GetUser", &[Gateway, Admin]),
            ("/anode.v1.Master/ListUsers", &[Gateway, Admin]),
            ("/anode.v1.Master/SetBucketAccess", &[Gateway, Admin]),
            ("/anode.v1.Master/SetObjectAcl", &[Gateway, Admin]),
            ("/anode.v1.Master/SetBucketVersioning", &[Gateway, Admin]),
            ("/anode.v1.Master/SetBucketObjectLock", &[Gateway, Admin]),
            ("/anode.v1.Master/SetBucketLifecycle", &[Gateway, Admin]),
            ("/anode.v1.Master/SetBucketCors", &[Gateway, Admin]),
            ("/anode.v1.Master/SetObjectLock", &[Gateway, Admin]),
            (
                "/anode.v1.Master/SetObjectTagging",
                &[Gateway, Client, Admin],
            ),
            ("/anode.v1.Master/SetBucketTagging", &[Gateway, Admin]),
            ("/anode.v1.Master/SetBucketNotification", &[Gateway, Admin]),
            ("/anode.v1.Master/SetNotificationTarget", &[Admin]),
            ("/anode.v1.Master/ListNotificationTargets", &[Admin]),
            ("/anode.v1.Master/Watch", &[Gateway, Client, Admin]),
            (
                "/anode.v1.Master/SetParquetIndex",
                &[Gateway, Client, Admin],
            ),
            (
                "/anode.v1.Master/ListObjectVersions",
                &[Gateway, Client, Admin],
            ),
            ("/anode.v1.Master/PutObject", &[Gateway, Client, Admin]),
            ("/anode.v1.Master/PutObjects", &[Client, Admin]),
            ("/anode.v1.Master/AllocateChunks", &[Gateway, Client, Admin]),
            ("/anode.v1.Master/Heartbeat", &[Chunkserver]),
            ("/anode.v1.Master/RegisterChunkserver", &[Chunkserver]),
            (
                "/anode.v1.Master/ReportBadChunk",
                &[Gateway, Client, Chunkserver],
            ),
            ("/anode.v1.Master/Status", &Role::ALL),
            ("/anode.v1.Master/Leader", &Role::ALL),
            (
                "/anode.v1.Chunkserver/GetChunk",
                &[Gateway, Client, Chunkserver],
            ),
            (
                "/anode.v1.Chunkserver/PutChunk",
                &[Gateway, Client, Chunkserver],
            ),
            ("/anode.v1.Chunkserver/PutExport", &[Master]),
            ("/anode.v1.Chunkserver/ListExports", &[Admin, Master]),
            ("/anode.v1.Chunkserver/GetExport", &[Admin, Master]),
            ("/anode.v1.Master/NoSuchMethod", &[]),
            ("/anode.v1.Nope/Send", &[]),
            ("/grpc.health.v1.Health/Check", &[]),
            ("", &[]),
            ("/", &[]),
            ("no-slash", &[]),
        ];
        for (path, roles) in cases {
            for role in Role::ALL {
                assert_eq!(
                    allowed(role, path),
                    roles.contains(&role),
                    "{role} calling {path:?}"
                );
            }
        }
    }

    #[test]
    fn identities_parse_strictly() {
        let id = PeerIdentity::from_uri("anode://master/3").unwrap();
        assert_eq!(id.role, Master);
        assert_eq!(id.master_id(), Some(3));
        assert_eq!(id.common_name(), "master-3");
        assert_eq!(id.uri(), "anode://master/3");
        let g = PeerIdentity::from_uri("anode://gateway/gw-1.eu").unwrap();
        assert_eq!((g.role, g.id.as_str()), (Gateway, "gw-1.eu"));
        assert_eq!(g.master_id(), None);
        for bad in [
            "anode://master/0",
            "anode://master/x",
            "anode://root/1",
            "anode://admin/",
            "anode://admin/a/b",
            "anode://admin/a b",
            "https://admin/1",
            "anode://admin",
            "",
        ] {
            assert!(PeerIdentity::from_uri(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("anode://client/{}", "a".repeat(MAX_ID_CHARS + 1));
        assert!(PeerIdentity::from_uri(&long).is_err());
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn raft_senders_must_be_members_and_tell_the_truth() {
        let members: BTreeSet<u64> = [1, 2, 3].into();
        let m2 = PeerIdentity::new(Master, "2").unwrap();
        assert_eq!(check_raft_batch(&m2, 1, &members, [(2, 1), (2, 1)]), Ok(()));
        assert_eq!(
            check_raft_batch(&m2, 1, &members, [(2, 1), (3, 1)]),
            Err(RaftRefusal::ForgedFrom {
                claimed: 3,
                cert: 2
            })
        );
        assert_eq!(
            check_raft_batch(&m2, 1, &members, [(2, 3)]),
            Err(RaftRefusal::WrongRecipient { to: 3, me: 1 })
        );
        let m9 = PeerIdentity::new(Master, "9").unwrap();
        assert_eq!(
            check_raft_batch(&m9, 1, &members, [(9, 1)]),
            Err(RaftRefusal::NotMember(9))
        );
        let gw = PeerIdentity::new(Gateway, "2").unwrap();
        assert!(matches!(
            check_raft_batch(&gw, 1, &members, [(2, 1)]),
            Err(RaftRefusal::NotMaster(_))
        ));
    }
}
