//! Membership from the platform: a master started with `--join-seeds host:port,...` or
//! `--join-dns NAME:PORT` finds the group and asks its leader to add it (`Master/JoinGroup`:
//! learner, caught up, then voter), so a StatefulSet scales without `anode ctl members add`
//! (docs/operations.md, "Adding masters").
//!
//! The loop runs while this member is not a voter in its own configuration: on a first start
//! (empty data dir), and after a restart that came before the promotion. A voter never asks.
//! Each round resolves the seeds again (DNS records change as pods come and go), tries them
//! in turn (an unreachable seed costs one connect timeout), follows the `NotLeader` redirect
//! to the leader, and retries with a growing pause (up to 5 s) until it is a voter or the
//! process stops. The leader answers a voter at once, so retries and restarts are no-ops.

use std::time::Duration;

use anode_proto::JoinGroupRequest;
use tokio::sync::watch;

use crate::ctl::{call_leader, Masters};
use crate::node::NodeHandle;
use crate::server::MasterArgs;

/// Where to look for the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seeds {
    /// `host:port` addresses (`--join-seeds`).
    pub addrs: Vec<String>,
    /// `NAME:PORT` whose every A/AAAA record is a member (`--join-dns`).
    pub dns: Option<String>,
}

impl Seeds {
    /// The seeds the flags give, or `None` when neither `--join-seeds` nor `--join-dns` is set.
    pub fn from_args(args: &MasterArgs) -> Option<Seeds> {
        let addrs: Vec<String> = args
            .join_seeds
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let dns = args.join_dns.clone().filter(|d| !d.trim().is_empty());
        (!addrs.is_empty() || dns.is_some()).then_some(Seeds { addrs, dns })
    }

    /// Every address to try now: the seed list, then the DNS name's records (resolved again
    /// on every call), without `me` and without repeats.
    pub async fn resolve(&self, me: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |a: String| {
            if a != me && !out.contains(&a) {
                out.push(a);
            }
        };
        for a in &self.addrs {
            push(a.clone());
        }
        if let Some(name) = &self.dns {
            match tokio::net::lookup_host(name.as_str()).await {
                Ok(found) => {
                    for sa in found {
                        push(sa.to_string());
                    }
                }
                Err(e) => tracing::warn!(name = %name, error = %e, "join: DNS lookup failed"),
            }
        }
        out
    }
}

/// Longest pause between two rounds.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Ask the group to add this member until it is a voter (or `shutdown`).
pub async fn join_loop(
    node: NodeHandle,
    advertise: String,
    seeds: Seeds,
    tls: anode_tls::Tls,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = node.status().id;
    let mut pause = Duration::from_millis(500);
    loop {
        if node.status().voters.contains(&id) {
            tracing::info!(id, "join: this member is a voter; nothing to ask");
            return;
        }
        let addrs = seeds.resolve(&advertise).await;
        if addrs.is_empty() {
            tracing::warn!(?seeds, "join: no seed address to try");
        } else {
            tracing::info!(id, addr = %advertise, seeds = ?addrs, "join: asking the group to add this member");
            let masters = Masters::new(addrs, tls.clone());
            let r = call_leader(&masters, |mut c| {
                let req = JoinGroupRequest {
                    id,
                    addr: advertise.clone(),
                };
                async move { c.join_group(req).await }
            });
            let r = tokio::select! {
                r = r => r,
                _ = shutdown.wait_for(|v| *v) => return,
            };
            match r {
                Ok(resp) => {
                    tracing::info!(
                        id,
                        already_voter = resp.already_voter,
                        "join: this member is a voter of the group"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(id, error = %format!("{e:#}"), "join: not added yet; retrying")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seeds_resolve_in_order_without_self_and_repeats() {
        let s = Seeds {
            addrs: vec![
                "10.0.0.1:7001".into(),
                "10.0.0.2:7001".into(),
                "10.0.0.1:7001".into(),
            ],
            dns: Some("localhost:7001".into()),
        };
        let got = s.resolve("10.0.0.2:7001").await;
        assert_eq!(got[0], "10.0.0.1:7001");
        assert!(!got.contains(&"10.0.0.2:7001".to_string()));
        assert_eq!(got.iter().filter(|a| *a == "10.0.0.1:7001").count(), 1);
        // localhost resolves to at least one loopback record.
        assert!(
            got.iter()
                .any(|a| a == "127.0.0.1:7001" || a == "[::1]:7001"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_leaves_the_list() {
        let s = Seeds {
            addrs: vec!["10.0.0.1:7001".into()],
            dns: Some("no-such-host.invalid:7001".into()),
        };
        assert_eq!(s.resolve("x").await, vec!["10.0.0.1:7001".to_string()]);
    }
}
