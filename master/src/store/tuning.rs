//! RocksDB options of the master's store, each with the reason for its value
//! (docs/architecture.md, "Master storage budget").
//!
//! The write pattern they are tuned for: every committed command writes its raft entry to
//! `log` (synced), then its state machine mutations to `sm` and the applied index to `meta`
//! (one unsynced batch, made durable by the next synced write). The log is compacted behind
//! the applied index ([`crate::node::NodeConfig::compact_threshold_entries`]), so `log` holds
//! a short, moving window; `meta` holds a handful of keys overwritten at every apply; `sm`
//! holds the namespace and grows with it.
//!
//! Why disk grew to ~3.3 GB per million 1 KiB inline objects with RocksDB's defaults: a WAL
//! file is deleted only once every column family with data in it has flushed, and with
//! 64 MiB memtables `meta` (a few dozen bytes per apply) flushed about once per million
//! commands, so it kept every WAL file alive up to the default `max_total_wal_size`
//! (4 x the sum of all memtables, ~1.5 GiB); the raft log's deleted entries stayed in SST
//! files until compaction reached their range tombstones; and `sm` was compressed with LZ4
//! at every level under the default (non-dynamic) level sizes, which keep more obsolete
//! versions.

use rocksdb::{BlockBasedIndexType, BlockBasedOptions, Cache, DBCompressionType, Options};

/// Bound on the live WAL files. When the WAL grows past it, RocksDB flushes the column
/// families that pin the oldest WAL file (in practice `meta` and `log`), so the WAL stays
/// about this size whatever the write rate. 64 MiB is ~25 k commands of 1 KiB inline objects
/// (each writes its entry twice: to `log` and to `sm`), several seconds of the best write
/// rate measured, so the flushes it forces are rare and cheap (`meta` is a few KiB).
pub const MAX_TOTAL_WAL_BYTES: u64 = 64 << 20;

/// Memtable of `sm`: the only column family whose data lives on, so the only one where a
/// larger memtable pays (fewer, larger L0 files). Two of them at most (RocksDB's default
/// `max_write_buffer_number`), 128 MiB of memory at worst.
pub const SM_WRITE_BUFFER_BYTES: usize = 64 << 20;

/// Memtable of `log`: entries live for one compaction window, typically a few MiB to a few
/// tens of MiB; a flush at 32 MiB writes them once to L0, where the range tombstone of the
/// next log compaction removes them (and [`crate::store::RaftStore::compact`] drops files
/// wholly behind the truncation point at once).
pub const LOG_WRITE_BUFFER_BYTES: usize = 32 << 20;

/// Memtable of `meta`: a few keys rewritten at every apply; small so that it flushes often
/// and never pins old WAL files (the cause of the WAL growth before this bound).
pub const META_WRITE_BUFFER_BYTES: usize = 4 << 20;

/// Block cache shared by the column families (index, filter and data blocks of `sm`).
/// LIST pages and manifest lookups hit it; the OS page cache backs it (holding compressed
/// blocks: a miss costs a `pread` and a decompression, ~15-20 us for a 16 KiB Zstandard
/// block). 256 MiB: a delimiter page over a 10 M-key bucket seeks once per common prefix,
/// each into a block of its own; with 64 MiB those blocks were evicted between pages
/// (p99 36 ms at 1 in flight, 491 ms at 16).
pub const BLOCK_CACHE_BYTES: usize = 256 << 20;

/// Data block size of `sm`. 16 KiB (RocksDB's default is 4 KiB) compresses better (more
/// context per block) and halves the index for the same data; a LIST page of 1,000 keys
/// reads whole blocks in order anyway, and a point lookup reads one block either way.
pub const SM_BLOCK_BYTES: usize = 16 << 10;

/// Size of one index or filter partition of `sm` (see [`sm_cf`]).
pub const SM_METADATA_BLOCK_BYTES: usize = 4 << 10;

/// RocksDB's info log (`LOG`, `LOG.old.*`): bounded to a few files of a few MiB, where the
/// default keeps 1,000 files, one per restart, unbounded in size.
const INFO_LOG_FILES_KEPT: usize = 4;
const INFO_LOG_FILE_BYTES: usize = 8 << 20;

/// Options of the database as a whole.
pub fn db() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    o.set_keep_log_file_num(INFO_LOG_FILES_KEPT);
    o.set_max_log_file_size(INFO_LOG_FILE_BYTES);
    // Two background jobs (flush + compaction) are RocksDB's default and right for the
    // 2-core machines the masters are sized for; writes stall rather than grow L0 forever.
    o.set_max_background_jobs(2);
    // Write back SST and WAL data in 1 MiB steps instead of in one burst at fsync time, so a
    // flush does not stall the synced raft appends behind it.
    o.set_bytes_per_sync(1 << 20);
    o.set_wal_bytes_per_sync(1 << 20);
    // No atomic_flush: it is for column families written without a WAL. Ours share one WAL,
    // whose replay restores all three to the same point after a crash (store.rs, durability
    // order), whatever each had flushed.
    o
}

/// `log`: raft entries, written once and deleted by range within a compaction window.
/// No compression: most entries die before a compaction would rewrite them, and the ones
/// that reach an SST are dropped with their file.
pub fn log_cf() -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(LOG_WRITE_BUFFER_BYTES);
    o.set_compression_type(DBCompressionType::None);
    o
}

/// `meta`: a handful of small keys.
pub fn meta_cf() -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(META_WRITE_BUFFER_BYTES);
    o.set_compression_type(DBCompressionType::None);
    o
}

/// `sm`: the namespace (manifests, buckets, chunk references), the bulk of the disk.
pub fn sm_cf(cache: &Cache) -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(SM_WRITE_BUFFER_BYTES);
    // Level sizes derived from the last level: ~90 % of the data sits in the last level,
    // so space amplification from not-yet-compacted overwrites and deletes stays near 1.1x
    // (static level sizes can leave the last level far from full and amplify much more).
    o.set_level_compaction_dynamic_level_bytes(true);
    // LZ4 where data is rewritten soon (cheap on the write path), Zstandard in the last
    // level where it stays (~10-20 % smaller than LZ4 on manifests, decoded at LZ4-like
    // speed). Both are linked into Debian's librocksdb (ldd lists liblz4 and libzstd); RocksDB
    // refuses to open a column family with a compression it lacks, so a build without them
    // fails at start-up, not silently.
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    t.set_block_size(SM_BLOCK_BYTES);
    // Bloom filters (10 bits/key, ~1 % false positives): most point lookups of a PUT are
    // for keys that do not exist yet (the new object, its chunk references), and a filter
    // answers them without reading a data block.
    t.set_bloom_filter(10.0, false);
    // Partitioned index and filters: a whole-file filter is ~1.2 bytes per key, over 1 MiB
    // for an SST of a million small manifests; with filters in the block cache, data blocks
    // evicted them and every point lookup re-read a whole filter block (measured: a 1-master
    // bulk fill fell from 43 k to 2.4 k objects/s past 2 M keys, 40 % of the master's CPU in
    // `pread` of filter blocks). Partitions of `SM_METADATA_BLOCK_BYTES` load only the piece a
    // lookup needs; the small top-level index of each file stays pinned (index and filter
    // blocks go to the high-priority pool, RocksDB's default).
    t.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    t.set_partition_filters(true);
    t.set_metadata_block_size(SM_METADATA_BLOCK_BYTES);
    t.set_cache_index_and_filter_blocks(true);
    t.set_pin_top_level_index_and_filter(true);
    t.set_pin_l0_filter_and_index_blocks_in_cache(true);
    o.set_block_based_table_factory(&t);
    o
}
