//! Rendezvous (highest-random-weight) placement of chunks on chunkservers. Pure: no IO, no
//! clock, no process-random state; the same inputs give the same answer on every node and every
//! run, whatever order the candidates come in.
//!
//! Each candidate's score for a chunk is `SipHash-2-4(PLACEMENT_KEY, chunk || id_le)`, optionally
//! weighted (`-weight / ln(u)`, `u` the hash mapped into (0, 1)). [`rank`] orders candidates by
//! score; [`place`] takes the best `r`, at most one per rack until every rack holds a copy.
//!
//! Properties (proptested below): the result has `min(r, candidates)` distinct ids; copies spread
//! over `min(r, racks)` racks; removing a server changes only the placements that held it (and
//! keeps their other members); adding a server changes only the placements it joins, about
//! `r / (n + 1)` of them.

use std::collections::HashSet;

/// The fixed SipHash key of placement scores ("anode-placement1"). Changing it moves every chunk:
/// never do that.
pub const PLACEMENT_KEY: (u64, u64) = (0x6c70_2d65_646f_6e61, 0x3174_6e65_6d65_6361);

/// A server that may hold a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Chunkserver id.
    pub id: u64,
    /// Failure domain; servers sharing a rack string share a rack. The empty string is one rack.
    pub rack: String,
    /// Relative weight (e.g. free GiB). `None` weighs 1. `Some(0)` ranks below every positive
    /// weight, but is still used when nothing else is left.
    pub weight: Option<u64>,
}

impl Candidate {
    /// An unweighted candidate.
    pub fn new(id: u64, rack: impl Into<String>) -> Self {
        Candidate {
            id,
            rack: rack.into(),
            weight: None,
        }
    }
}

/// The raw 64-bit rendezvous hash of `(chunk, server id)`.
pub fn score_hash(chunk: &[u8], id: u64) -> u64 {
    let mut msg = Vec::with_capacity(chunk.len() + 8);
    msg.extend_from_slice(chunk);
    msg.extend_from_slice(&id.to_le_bytes());
    siphash24(PLACEMENT_KEY.0, PLACEMENT_KEY.1, &msg)
}

/// Weighted score: `-w / ln(u)` with `u` in (0, 1) from the hash; monotonic in the hash for a
/// fixed weight, so unweighted ranking is pure hash order.
fn weighted_score(hash: u64, weight: u64) -> f64 {
    if weight == 0 {
        return 0.0;
    }
    let u = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -(weight as f64) / u.ln()
}

/// Every candidate id (first occurrence of duplicates), best first, for `chunk`. Ties (same
/// weighted score) break on the raw hash, then on the id.
pub fn rank(chunk: &[u8], servers: &[Candidate]) -> Vec<u64> {
    ranked(chunk, servers).into_iter().map(|c| c.id).collect()
}

fn ranked<'a>(chunk: &[u8], servers: &'a [Candidate]) -> Vec<&'a Candidate> {
    let mut seen = HashSet::new();
    let mut scored: Vec<(f64, u64, &Candidate)> = servers
        .iter()
        .filter(|c| seen.insert(c.id))
        .map(|c| {
            let h = score_hash(chunk, c.id);
            (weighted_score(h, c.weight.unwrap_or(1)), h, c)
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(a.2.id.cmp(&b.2.id))
    });
    scored.into_iter().map(|(_, _, c)| c).collect()
}

/// Up to `r` distinct server ids for `chunk`, in preference order: first the best server of each
/// rack in score order (one copy per rack while racks without a copy remain), then, if there are
/// fewer racks than `r`, the best remaining servers.
pub fn place(chunk: &[u8], servers: &[Candidate], r: usize) -> Vec<u64> {
    let order = ranked(chunk, servers);
    let mut chosen: Vec<u64> = Vec::with_capacity(r.min(order.len()));
    let mut racks: HashSet<&str> = HashSet::new();
    for c in &order {
        if chosen.len() == r {
            return chosen;
        }
        if racks.insert(c.rack.as_str()) {
            chosen.push(c.id);
        }
    }
    for c in &order {
        if chosen.len() == r {
            break;
        }
        if !chosen.contains(&c.id) {
            chosen.push(c.id);
        }
    }
    chosen
}

/// SipHash-2-4 of `msg` under the key `(k0, k1)` (the reference algorithm, little-endian).
pub fn siphash24(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut blocks = msg.chunks_exact(8);
    for block in &mut blocks {
        let m = u64::from_le_bytes(block.try_into().expect("chunks_exact(8)"));
        compress(&mut v, m);
    }
    let mut last = [0u8; 8];
    let rest = blocks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    let m = u64::from_le_bytes(last) | ((msg.len() as u64) << 56);
    compress(&mut v, m);
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// The replication factor of a bucket (DESIGN.md): its configured R, or min(3, live
/// chunkservers) when it has none.
pub fn effective_replication(configured: u32, live: usize) -> u32 {
    if configured > 0 {
        configured
    } else {
        live.min(3) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A chunk id for test chunk `i` (any 32 bytes do; placement never assumes a real SHA-256).
    fn chunk(i: u64) -> [u8; 32] {
        let mut c = [0u8; 32];
        for (j, b) in c.chunks_exact_mut(8).enumerate() {
            b.copy_from_slice(&siphash24(i, j as u64, b"test-chunk").to_le_bytes());
        }
        c
    }

    fn servers(n: usize, racks: usize) -> Vec<Candidate> {
        (0..n as u64)
            .map(|id| Candidate::new(id + 1, format!("r{}", id as usize % racks.max(1))))
            .collect()
    }

    fn racks_of(ids: &[u64], servers: &[Candidate]) -> BTreeSet<String> {
        ids.iter()
            .map(|id| servers.iter().find(|c| c.id == *id).unwrap().rack.clone())
            .collect()
    }

    #[test]
    fn siphash_reference_vectors() {
        let (k0, k1) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash24(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    const GOLDEN_PLACEMENTS: [[u64; 3]; 4] = [[6, 5, 4], [6, 4, 5], [1, 2, 6], [2, 1, 6]];
    const GOLDEN_SCORE: u64 = 0xeb18_ee82_6bf1_46a0;

    #[test]
    fn placement_is_pinned() {
        // Golden values: if these change, every stored chunk "moves". Never update lightly.
        let s = servers(6, 3);
        let got: Vec<Vec<u64>> = (0..4).map(|i| place(&chunk(i), &s, 3)).collect();
        assert_eq!(got, GOLDEN_PLACEMENTS);
        assert_eq!(score_hash(&[0u8; 32], 1), GOLDEN_SCORE);
    }

    /// Table: (servers as (id, rack), r, property of the answer).
    #[test]
    fn table() {
        let mk = |v: &[(u64, &str)]| {
            v.iter()
                .map(|(id, r)| Candidate::new(*id, *r))
                .collect::<Vec<_>>()
        };
        let c = chunk(42);
        // No servers, or r = 0: nothing.
        assert!(place(&c, &[], 3).is_empty());
        assert!(place(&c, &mk(&[(1, "a")]), 0).is_empty());
        // Fewer servers than r: all of them.
        let two = mk(&[(1, "a"), (2, "a")]);
        assert_eq!(place(&c, &two, 3).iter().collect::<BTreeSet<_>>().len(), 2);
        // Three racks, r = 3: one copy per rack, whatever the scores.
        let s = mk(&[(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c")]);
        for i in 0..50 {
            let p = place(&chunk(i), &s, 3);
            assert_eq!(racks_of(&p, &s).len(), 3, "{p:?}");
        }
        // Duplicate ids count once.
        let dup = mk(&[(1, "a"), (1, "b"), (2, "c")]);
        let p = place(&c, &dup, 3);
        assert_eq!(p.len(), 2);
        // A zero-weight server is used only when nothing else is left.
        let mut w = mk(&[(1, "a"), (2, "b"), (3, "c")]);
        w[0].weight = Some(0);
        for i in 0..50 {
            assert_eq!(
                place(&chunk(i), &w, 2)
                    .iter()
                    .filter(|id| **id == 1)
                    .count(),
                0
            );
            assert_eq!(place(&chunk(i), &w, 3).last(), Some(&1));
        }
    }

    #[test]
    fn weights_bias_the_share() {
        let mut s = servers(2, 2);
        s[1].weight = Some(3);
        let n = 4000;
        let heavy = (0..n).filter(|i| place(&chunk(*i), &s, 1) == [2]).count();
        let share = heavy as f64 / n as f64;
        assert!(
            (0.70..0.80).contains(&share),
            "weight 3 vs 1 should take ~75%, got {share}"
        );
    }

    #[test]
    fn adding_a_server_moves_about_r_over_n_plus_one() {
        for (n, r, racks) in [(10usize, 3usize, 10usize), (7, 2, 7), (12, 3, 1)] {
            let before = servers(n, racks);
            let after = servers(n + 1, racks);
            let chunks = 3000u64;
            let moved = (0..chunks)
                .filter(|i| place(&chunk(*i), &before, r) != place(&chunk(*i), &after, r))
                .count();
            let frac = moved as f64 / chunks as f64;
            let want = r as f64 / (n + 1) as f64;
            assert!(
                (frac - want).abs() < 0.05,
                "n={n} r={r}: moved {frac:.3}, expected about {want:.3}"
            );
        }
    }

    fn cluster() -> impl Strategy<Value = (Vec<Candidate>, usize)> {
        (1usize..12, 1usize..5, 1usize..5).prop_map(|(n, racks, r)| (servers(n, racks), r))
    }

    proptest! {
        #[test]
        fn matches_std_siphash(k0 in any::<u64>(), k1 in any::<u64>(), msg in proptest::collection::vec(any::<u8>(), 0..40)) {
            #[allow(deprecated)]
            let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
            std::hash::Hasher::write(&mut h, &msg);
            prop_assert_eq!(siphash24(k0, k1, &msg), std::hash::Hasher::finish(&h));
        }

        #[test]
        fn distinct_ids_and_rack_spread((s, r) in cluster(), i in any::<u64>(), rot in 0usize..12) {
            let c = chunk(i);
            let p = place(&c, &s, r);
            prop_assert_eq!(p.len(), r.min(s.len()));
            prop_assert_eq!(p.iter().collect::<BTreeSet<_>>().len(), p.len());
            prop_assert!(p.iter().all(|id| s.iter().any(|c| c.id == *id)));
            let all_racks = s.iter().map(|c| c.rack.clone()).collect::<BTreeSet<_>>().len();
            prop_assert_eq!(racks_of(&p, &s).len(), p.len().min(all_racks));
            // The first min(r, racks) copies are on distinct racks.
            let k = p.len().min(all_racks);
            prop_assert_eq!(racks_of(&p[..k], &s).len(), k);
            // Input order does not matter.
            let mut rotated = s.clone();
            rotated.rotate_left(rot % s.len());
            prop_assert_eq!(place(&c, &rotated, r), p);
        }

        #[test]
        fn removing_a_server_moves_only_its_placements((s, r) in cluster(), i in any::<u64>(), victim in any::<prop::sample::Index>()) {
            let c = chunk(i);
            let before = place(&c, &s, r);
            let gone = s[victim.index(s.len())].id;
            let rest: Vec<Candidate> = s.iter().filter(|c| c.id != gone).cloned().collect();
            let after = place(&c, &rest, r);
            if before.contains(&gone) {
                let kept: BTreeSet<u64> = before.iter().copied().filter(|id| *id != gone).collect();
                let now: BTreeSet<u64> = after.iter().copied().collect();
                prop_assert!(kept.is_subset(&now), "before {:?} after {:?}", before, after);
                prop_assert_eq!(after.len(), r.min(rest.len()));
            } else {
                prop_assert_eq!(after, before);
            }
        }

        #[test]
        fn adding_a_server_moves_only_onto_it((s, r) in cluster(), i in any::<u64>(), rack in 0usize..6) {
            let c = chunk(i);
            let before = place(&c, &s, r);
            let new_id = 1000;
            let mut more = s.clone();
            more.push(Candidate::new(new_id, format!("r{rack}")));
            let after = place(&c, &more, r);
            if after.contains(&new_id) {
                let old: BTreeSet<u64> = before.iter().copied().collect();
                let moved: Vec<u64> = after.iter().copied().filter(|id| *id != new_id && !old.contains(id)).collect();
                prop_assert!(moved.is_empty(), "before {:?} after {:?}", before, after);
            } else {
                prop_assert_eq!(after, before);
            }
        }
    }
}
