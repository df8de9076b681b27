//! Connections to chunkservers, and what the client has learned about them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::{ChunkserverInfo, ChunkserverState};
use parking_lot::Mutex;
use tonic::transport::Channel;

use crate::error::ClientError;
use crate::master::{lazy_channel, normalize_addr};

/// Largest gRPC message accepted from a chunkserver (GetChunk answers stream in smaller pieces).
pub const CHUNKSERVER_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How long a directory entry is trusted to resolve a manifest's `ChunkRef.servers` without
/// asking the master (`LocateChunks`): older entries make the reader ask, which refreshes them.
pub const DIRECTORY_FRESH_FOR: Duration = Duration::from_secs(5);

/// Pooled, lazily connected channels to chunkservers keyed by address, plus a directory of the
/// servers (id -> address, epoch, rack, state, when learned) seen in master answers, used to
/// resolve `ChunkRef.servers` ids: a read trusts the manifest's servers while their entries
/// are fresh ([`DIRECTORY_FRESH_FOR`]) and asks the master otherwise.
pub(crate) struct ChunkPool {
    connect_timeout: Duration,
    tls: anode_tls::Tls,
    channels: Mutex<HashMap<String, Channel>>,
    directory: Mutex<HashMap<u64, (ChunkserverInfo, Instant)>>,
    /// Chunk reads in flight from this client, per server id (replica choice).
    reads: Mutex<HashMap<u64, usize>>,
}

/// One read in flight from a server; counted until dropped.
pub(crate) struct ReadGuard<'a> {
    pool: &'a ChunkPool,
    id: u64,
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        let mut reads = self.pool.reads.lock();
        if let Some(n) = reads.get_mut(&self.id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                reads.remove(&self.id);
            }
        }
    }
}

impl ChunkPool {
    pub(crate) fn new(connect_timeout: Duration, tls: anode_tls::Tls) -> Self {
        ChunkPool {
            connect_timeout,
            tls,
            channels: Mutex::new(HashMap::new()),
            directory: Mutex::new(HashMap::new()),
            reads: Mutex::new(HashMap::new()),
        }
    }

    /// A client on the chunkserver at `addr` (a pooled channel; cheap).
    pub(crate) fn client(
        &self,
        addr: &str,
    ) -> Result<ChunkserverClient<crate::trace::TracedChannel>, ClientError> {
        let key = normalize_addr(addr);
        let channel = {
            let mut channels = self.channels.lock();
            match channels.get(&key) {
                Some(ch) => ch.clone(),
                None => {
                    let ch = lazy_channel(
                        &key,
                        self.connect_timeout,
                        &self.tls,
                        anode_tls::Role::Chunkserver,
                    )?;
                    channels.insert(key, ch.clone());
                    ch
                }
            }
        };
        Ok(ChunkserverClient::new(crate::trace::Traced(channel))
            .max_decoding_message_size(CHUNKSERVER_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(CHUNKSERVER_MAX_MESSAGE_BYTES))
    }

    /// Remember servers seen in a master answer.
    pub(crate) fn learn<'a>(&self, servers: impl IntoIterator<Item = &'a ChunkserverInfo>) {
        let now = Instant::now();
        let mut dir = self.directory.lock();
        for s in servers {
            if !s.addr.is_empty() {
                dir.insert(s.id, (s.clone(), now));
            }
        }
    }

    /// This client could not reach server `id`: order it after the others until the master's
    /// next answer about it (the entry keeps its age, so it is refreshed as soon as it is due).
    pub(crate) fn mark_suspect(&self, id: u64) {
        if let Some((info, _)) = self.directory.lock().get_mut(&id) {
            if info.state == ChunkserverState::Alive as i32 {
                info.state = ChunkserverState::Suspect as i32;
            }
        }
    }

    /// Chunk reads in flight from server `id`.
    pub(crate) fn read_load(&self, id: u64) -> usize {
        self.reads.lock().get(&id).copied().unwrap_or(0)
    }

    /// Count a read from server `id` until the guard is dropped.
    pub(crate) fn reading(&self, id: u64) -> ReadGuard<'_> {
        *self.reads.lock().entry(id).or_insert(0) += 1;
        ReadGuard { pool: self, id }
    }

    /// The known server with id `id`.
    pub(crate) fn lookup(&self, id: u64) -> Option<ChunkserverInfo> {
        self.directory.lock().get(&id).map(|(info, _)| info.clone())
    }

    /// The servers `ids` if every one is known and was learned from the master less than
    /// [`DIRECTORY_FRESH_FOR`] ago, and at least one is alive; else `None` (ask the master).
    pub(crate) fn lookup_fresh(&self, ids: &[u64]) -> Option<Vec<ChunkserverInfo>> {
        self.lookup_fresh_at(ids, Instant::now())
    }

    /// [`ChunkPool::lookup_fresh`] at `now`.
    fn lookup_fresh_at(&self, ids: &[u64], now: Instant) -> Option<Vec<ChunkserverInfo>> {
        let dir = self.directory.lock();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let (info, learned) = dir.get(id)?;
            if now.saturating_duration_since(*learned) >= DIRECTORY_FRESH_FOR {
                return None;
            }
            out.push(info.clone());
        }
        out.iter()
            .any(|s| s.state == ChunkserverState::Alive as i32)
            .then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64, state: ChunkserverState) -> ChunkserverInfo {
        ChunkserverInfo {
            id,
            addr: format!("127.0.0.1:{}", 7000 + id),
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn the_manifests_servers_are_trusted_only_while_fresh_known_and_alive() {
        let pool = ChunkPool::new(Duration::from_secs(1), anode_tls::Tls::insecure());
        let t0 = Instant::now();
        pool.learn(&[
            info(1, ChunkserverState::Alive),
            info(2, ChunkserverState::Alive),
            info(3, ChunkserverState::Dead),
        ]);
        let ids =
            |v: Option<Vec<ChunkserverInfo>>| v.map(|v| v.iter().map(|s| s.id).collect::<Vec<_>>());
        assert_eq!(
            ids(pool.lookup_fresh_at(&[2, 1, 3], t0)),
            Some(vec![2, 1, 3])
        );
        // An unknown id, or no live one among them: ask the master.
        assert_eq!(ids(pool.lookup_fresh_at(&[1, 4], t0)), None);
        assert_eq!(ids(pool.lookup_fresh_at(&[3], t0)), None);
        assert_eq!(ids(pool.lookup_fresh_at(&[], t0)), None);
        // Too old: ask the master; learning again refreshes.
        let later = Instant::now() + DIRECTORY_FRESH_FOR;
        assert_eq!(ids(pool.lookup_fresh_at(&[1], later)), None);
        // A server this client could not reach is suspect until the master says otherwise.
        pool.mark_suspect(1);
        assert_eq!(ids(pool.lookup_fresh_at(&[1], t0)), None);
        assert_eq!(ids(pool.lookup_fresh_at(&[1, 2], t0)), Some(vec![1, 2]));
        pool.learn(&[info(1, ChunkserverState::Alive)]);
        assert_eq!(ids(pool.lookup_fresh_at(&[1], t0)), Some(vec![1]));
    }
}
