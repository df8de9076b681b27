//! TEMPORARY SHIM (lead's tree only; replaced by the pq branch).
use anode_proto::*;
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_tail: u64,
    pub window: u64,
    pub max_stats: usize,
    pub max_bytes_stat: usize,
}
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tail: 4 << 20,
            window: 64 << 10,
            max_stats: 1 << 20,
            max_bytes_stat: 64,
        }
    }
}
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IndexError(pub String);
pub fn index_tail(
    tail: &[u8],
    size: u64,
    head_is_par1: bool,
    limits: &Limits,
) -> Result<Option<ParquetIndex>, IndexError> {
    let n = tail.len();
    if !head_is_par1 || n < 8 || &tail[n - 4..] != b"PAR1" {
        return Ok(None);
    }
    let footer_len =
        u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]) as u64;
    if footer_len + 8 > limits.max_tail || footer_len + 8 > n as u64 {
        return Ok(None);
    }
    let want = ((footer_len + 8).max(limits.window.min(size)))
        .min(limits.max_tail)
        .min(n as u64) as usize;
    let t = tail[n - want..].to_vec();
    Ok(Some(ParquetIndex {
        info: Some(ParquetInfo {
            tail_len: t.len() as u64,
            footer_len: footer_len as u32,
            num_rows: 0,
            num_row_groups: 0,
            schema_hash: vec![],
            has_stats: false,
        }),
        tail: t,
        stats: None,
    }))
}
