//! Membership from the platform with real processes (docs/operations.md, "Adding masters"):
//! a 3-member group; a 4th master started with `--join-seeds` becomes a voter without any
//! `anode ctl` command; a 5th whose seed list starts with a dead address joins too, a 6th
//! through `--join-dns`; a restart of a joined member asks nothing; `JoinGroup` is refused to a certificate naming
//! another member and to a non-master role.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anode_proto::*;
use support::*;

/// The leader's own status, from whichever member leads.
async fn leader_status(addrs: &[String]) -> Option<StatusResponse> {
    for a in addrs {
        if let Some(st) = status_of(a).await {
            if st.leader_id != 0 && st.leader_id == st.id {
                return Some(st);
            }
        }
    }
    None
}

/// The voters (members that are not learners) the leader reports.
async fn voters(addrs: &[String]) -> Option<Vec<u64>> {
    let st = leader_status(addrs).await?;
    Some(
        st.members
            .iter()
            .filter(|m| m.role != "learner")
            .map(|m| m.id)
            .collect(),
    )
}

/// A master client on `addr` with the certificate of `role`-`id`.
async fn client_as(
    addr: &str,
    role: anode_tls::Role,
    id: &str,
) -> master_client::MasterClient<tonic::transport::Channel> {
    let ep = tls(role, id)
        .endpoint(addr, anode_tls::Role::Master)
        .unwrap()
        .timeout(Duration::from_secs(5));
    master_client::MasterClient::new(ep.connect().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn masters_join_from_a_seed_list_and_become_voters() {
    let (_keep, root) = test_dir();
    let ports: BTreeMap<u64, (u16, u16)> =
        (1..=6).map(|i| (i, (free_port(), free_port()))).collect();
    let addr = |i: u64| format!("127.0.0.1:{}", ports[&i].0);
    let peers = (1..=3)
        .map(|i| format!("{i}={}", addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs: BTreeMap<u64, Proc> = (1..=3)
        .map(|i| {
            let args = master_args(i, &root, ports[&i].0, ports[&i].1, &peers, false);
            (i, Proc::spawn(&root, &format!("master-{i}"), args))
        })
        .collect();
    let first3: Vec<String> = (1..=3).map(addr).collect();
    wait_for("a leader", Duration::from_secs(30), || {
        leader_status(&first3)
    })
    .await;
    // Some state for the new members to catch up on (past the compaction threshold of 50,
    // so they catch up from a snapshot).
    let masters = admin_masters(&first3);
    for i in 0..80 {
        let req = CreateBucketRequest {
            name: format!("bucket-{i:03}"),
            ..Default::default()
        };
        anode_master::ctl::call_leader(&masters, |mut c| {
            let req = req.clone();
            async move { c.create_bucket(req).await }
        })
        .await
        .unwrap();
    }

    // Refusals: a master certificate asking for another id, and an operator certificate.
    let la = {
        let st = leader_status(&first3).await.unwrap();
        addr(st.leader_id)
    };
    let mut forged = client_as(&la, anode_tls::Role::Master, "7").await;
    let err = forged
        .join_group(JoinGroupRequest {
            id: 8,
            addr: "127.0.0.1:1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let mut admin = client_as(&la, anode_tls::Role::Admin, "1").await;
    let err = admin
        .join_group(JoinGroupRequest {
            id: 9,
            addr: "127.0.0.1:1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert_eq!(voters(&first3).await.unwrap(), vec![1, 2, 3]);

    // Member 4 with the seed list: a voter without any ctl command.
    let join_args = |i: u64, seeds: &str| {
        let mut a = master_args(i, &root, ports[&i].0, ports[&i].1, "", false);
        a.extend([
            "--join-seeds".to_string(),
            seeds.to_string(),
            "--advertise".to_string(),
            addr(i),
        ]);
        a
    };
    procs.insert(
        4,
        Proc::spawn(&root, "master-4", join_args(4, &first3.join(","))),
    );
    let all: Vec<String> = (1..=6).map(addr).collect();
    wait_for("member 4 a voter", Duration::from_secs(60), || async {
        let v = voters(&all).await?;
        (v == vec![1, 2, 3, 4]).then_some(())
    })
    .await;

    // Member 5: the first seed is dead (nothing listens there).
    let dead = format!("127.0.0.1:{}", free_port());
    let seeds5 = format!("{dead},{}", addr(2));
    procs.insert(5, Proc::spawn(&root, "master-5", join_args(5, &seeds5)));
    wait_for("member 5 a voter", Duration::from_secs(60), || async {
        let v = voters(&all).await?;
        (v == vec![1, 2, 3, 4, 5]).then_some(())
    })
    .await;
    let log5 = std::fs::read_to_string(&procs[&5].log).unwrap();
    assert!(
        log5.contains("join: this member is a voter of the group"),
        "{log5}"
    );

    // Member 6 finds the group through DNS (`localhost` resolves to the loopback address
    // member 3 listens on, as a headless Service's name resolves to its pods).
    let mut a6 = master_args(6, &root, ports[&6].0, ports[&6].1, "", false);
    a6.extend([
        "--join-dns".to_string(),
        format!("localhost:{}", ports[&3].0),
        "--advertise".to_string(),
        addr(6),
    ]);
    procs.insert(6, Proc::spawn(&root, "master-6", a6));
    wait_for("member 6 a voter", Duration::from_secs(60), || async {
        let v = voters(&all).await?;
        (v == vec![1, 2, 3, 4, 5, 6]).then_some(())
    })
    .await;

    // A restart of a joined member asks nothing and stays a voter.
    let p4 = procs.get_mut(&4).unwrap();
    p4.kill9();
    p4.start();
    wait_for(
        "member 4 back in the group",
        Duration::from_secs(30),
        || async {
            let st = status_of(&addr(4)).await?;
            (st.leader_id != 0 && st.applied_index > 0).then_some(())
        },
    )
    .await;
    let log4 = std::fs::read_to_string(&procs[&4].log).unwrap();
    assert!(
        log4.contains("join: this member is a voter; nothing to ask"),
        "member 4 asked again after its restart"
    );
    assert_eq!(voters(&all).await.unwrap(), vec![1, 2, 3, 4, 5, 6]);

    // The new members hold the state: member 5's own status counts the buckets in its
    // local copy of the state machine.
    let st = leader_status(&all).await.unwrap();
    let target = st.commit_index;
    let st5 = wait_for("member 5 applied", Duration::from_secs(30), || async {
        let st = status_of(&addr(5)).await?;
        (st.applied_index >= target).then_some(st)
    })
    .await;
    assert_eq!(st5.buckets, 80);
    // Stop member 1 and 2: the 6-voter group keeps a quorum of 4 and commits.
    procs.get_mut(&1).unwrap().kill9();
    procs.get_mut(&2).unwrap().kill9();
    let rest: Vec<String> = (3..=6).map(addr).collect();
    let req = CreateBucketRequest {
        name: "after-join".into(),
        ..Default::default()
    };
    anode_master::ctl::call_leader(&admin_masters(&rest), |mut c| {
        let req = req.clone();
        async move { c.create_bucket(req).await }
    })
    .await
    .expect("the group with members 4 and 5 commits without 1 and 2");
}
