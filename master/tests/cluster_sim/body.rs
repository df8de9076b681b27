//! Object values and their bodies. A value names its body exactly, so every read is checked
//! byte for byte, and bodies share chunks from a small pool, so chunks are deduplicated,
//! referenced by several objects, collected and re-uploaded (resurrected) during a run.
//!
//! Value forms: `v<id>-i` is a small inline body; `v<id>-c<pool>x<n>` is `n` shared chunks
//! starting at pool index `pool`, then a unique tail chunk that starts with the value.

use sha2::{Digest, Sha256};

use crate::net::{CHUNK_BYTES, INLINE_MAX};

/// Shared chunks in the pool.
pub const POOL: u64 = 5;
/// Most shared chunks in one body.
pub const MAX_SHARED: u64 = 2;

/// A value for operation `id`: the shape is drawn from `pick` (0..100).
pub fn value_for(id: u64, pick: u64, pool: u64) -> String {
    if pick < 25 {
        format!("v{id}-i")
    } else {
        format!("v{id}-c{}x{}", pool % POOL, pick % (MAX_SHARED + 1))
    }
}

fn shared_chunk(i: u64) -> Vec<u8> {
    let seed = Sha256::digest(format!("shared-{i}").as_bytes());
    seed.iter().copied().cycle().take(CHUNK_BYTES).collect()
}

fn filler(prefix: &str, len: usize) -> Vec<u8> {
    let mut v = format!("{prefix}\n").into_bytes();
    let mut i = 0u8;
    while v.len() < len {
        v.push(b'a' + i % 26);
        i = i.wrapping_add(7);
    }
    v
}

/// The body a value stands for. Panics on a malformed value (only this module makes them).
pub fn body_of(value: &str) -> Vec<u8> {
    try_body_of(value).expect("well-formed value")
}

fn try_body_of(value: &str) -> Option<Vec<u8>> {
    let (id, shape) = value.strip_prefix('v')?.split_once('-')?;
    let id: u64 = id.parse().ok()?;
    if shape == "i" {
        return Some(filler(value, 40 + (id as usize * 13) % 100));
    }
    let (pool, n) = shape.strip_prefix('c')?.split_once('x')?;
    let (pool, n): (u64, u64) = (pool.parse().ok()?, n.parse().ok()?);
    if n > MAX_SHARED {
        return None;
    }
    let mut body = Vec::new();
    for j in 0..n {
        body.extend(shared_chunk((pool + j) % POOL));
    }
    body.extend(filler(value, INLINE_MAX + 50 + (id as usize * 37) % 1500));
    Some(body)
}

/// The value a body stands for, if it is exactly the body of some value.
pub fn value_of(body: &[u8]) -> Option<String> {
    (0..=MAX_SHARED as usize).find_map(|n| {
        let rest = body.get(n * CHUNK_BYTES..)?;
        let end = rest.iter().position(|b| *b == b'\n')?;
        let v = std::str::from_utf8(&rest[..end]).ok()?;
        (try_body_of(v)? == body).then(|| v.to_string())
    })
}

#[test]
fn bodies_name_their_values() {
    for id in 0..40 {
        for pick in [0, 30, 31, 32] {
            let v = value_for(id, pick, id);
            let b = body_of(&v);
            assert_eq!(value_of(&b).as_deref(), Some(v.as_str()));
            assert_eq!(b.len() <= INLINE_MAX, v.ends_with("-i"), "{v}");
        }
    }
}
