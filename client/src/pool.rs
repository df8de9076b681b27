//! Connections to chunkservers, and what the client has learned about them.

use std::collections::HashMap;
use std::time::Duration;

use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::ChunkserverInfo;
use parking_lot::Mutex;
use tonic::transport::Channel;

use crate::error::ClientError;
use crate::master::{lazy_channel, normalize_addr};

/// Largest gRPC message accepted from a chunkserver (GetChunk answers stream in smaller pieces).
pub const CHUNKSERVER_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Pooled, lazily connected channels to chunkservers keyed by address, plus a directory of the
/// servers (id -> address, epoch, rack) seen in master answers, used to resolve
/// `ChunkRef.servers` ids when the master cannot be asked.
pub(crate) struct ChunkPool {
    connect_timeout: Duration,
    tls: anode_tls::Tls,
    channels: Mutex<HashMap<String, Channel>>,
    directory: Mutex<HashMap<u64, ChunkserverInfo>>,
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
        let mut dir = self.directory.lock();
        for s in servers {
            if !s.addr.is_empty() {
                dir.insert(s.id, s.clone());
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
        self.directory.lock().get(&id).cloned()
    }
}
