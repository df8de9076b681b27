//! Blob files written around the page cache (`O_DIRECT`), issue 18.
//!
//! A buffered `write(2)` copies every byte into the page cache, and the kernel writes it back
//! later; on this kind of machine that copy (`copy_folio_from_iter_atomic`) was 31 % of the
//! whole cluster's CPU during 16 MiB PUTs (three copies of every byte, one per chunkserver),
//! more than all SHA-256s together (BENCHMARKS.md, "The write path"). `dd` of 1 GiB in 256 KiB
//! writes: 1.15-1.67 s of system time buffered, 0.21 s with `O_DIRECT`.
//!
//! `O_DIRECT` wants the buffer address, the file offset and the length aligned to the device's
//! logical block size. [`DirectFile`] gathers the incoming pieces in an aligned buffer
//! ([`AlignedBuf`], the pure part) of [`DIRECT_BUF_BYTES`] and writes it whole; at the end it
//! writes the aligned part of what is left directly and the last partial block (under
//! [`DIRECT_ALIGN`] bytes) through the page cache, after clearing `O_DIRECT` on the file
//! (`fcntl(F_SETFL)`), so the file has exactly the blob's length. Durability is unchanged: the
//! caller fsyncs the file once before the rename (the fsync also flushes the device's write
//! cache), and acknowledges only after the directory fsync.
//!
//! Where `O_DIRECT` is refused (tmpfs refuses the open; a device with larger blocks may refuse
//! a write with `EINVAL`) the file falls back to buffered writes from that byte on, so a blob
//! is never lost to the optimisation, only slower.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Alignment of `O_DIRECT` buffers, offsets and lengths: 4096 covers devices with 512- and
/// 4096-byte logical blocks.
pub const DIRECT_ALIGN: usize = 4096;

/// Bytes gathered before one `O_DIRECT` write (four 256 KiB PutChunk messages).
pub const DIRECT_BUF_BYTES: usize = 1 << 20;

/// A fixed-size buffer whose usable region starts at a [`DIRECT_ALIGN`]-aligned address. Pure
/// bookkeeping: no IO. Built from a plain `Vec` over-allocated by one alignment unit (no
/// `unsafe`).
pub struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
    cap: usize,
    filled: usize,
}

impl AlignedBuf {
    /// A buffer of `cap` usable bytes (a multiple of [`DIRECT_ALIGN`], at least one unit).
    pub fn new(cap: usize) -> AlignedBuf {
        assert!(
            cap >= DIRECT_ALIGN && cap.is_multiple_of(DIRECT_ALIGN),
            "capacity must be a positive multiple of {DIRECT_ALIGN}"
        );
        let mem = vec![0u8; cap + DIRECT_ALIGN];
        let misalign = mem.as_ptr() as usize % DIRECT_ALIGN;
        let start = (DIRECT_ALIGN - misalign) % DIRECT_ALIGN;
        AlignedBuf {
            mem,
            start,
            cap,
            filled: 0,
        }
    }

    /// Copy as much of `data` as fits; returns how many bytes were taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.cap - self.filled);
        let at = self.start + self.filled;
        self.mem[at..at + n].copy_from_slice(&data[..n]);
        self.filled += n;
        n
    }

    /// Whether no more bytes fit.
    pub fn is_full(&self) -> bool {
        self.filled == self.cap
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.filled
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Everything held (starts aligned; its length may not be).
    pub fn filled(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.filled]
    }

    /// The longest prefix of what is held whose length is a multiple of [`DIRECT_ALIGN`].
    pub fn aligned_len(&self) -> usize {
        self.filled - self.filled % DIRECT_ALIGN
    }

    /// Forget the first `n` bytes held; the rest moves to the (aligned) front.
    pub fn drop_front(&mut self, n: usize) {
        let n = n.min(self.filled);
        let from = self.start + n..self.start + self.filled;
        self.mem.copy_within(from, self.start);
        self.filled -= n;
    }
}

/// How a [`DirectFile`] writes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Through an aligned buffer with `O_DIRECT`.
    Direct,
    /// Through the page cache (`O_DIRECT` refused, or the last partial block).
    Buffered,
}

/// A new file written with `O_DIRECT` where the filesystem allows it (see the module docs).
pub struct DirectFile {
    file: File,
    mode: Mode,
    buf: Option<AlignedBuf>,
    /// Bytes that went to the disk with `O_DIRECT` (for tests and the metric).
    direct_bytes: u64,
}

impl DirectFile {
    /// Create `path` (which must not exist) for writing; `O_DIRECT` when `direct` and the
    /// filesystem accepts it.
    pub fn create(path: &Path, direct: bool) -> std::io::Result<DirectFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |flags: libc::c_int| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(flags)
                .open(path)
        };
        if direct {
            match open(libc::O_DIRECT) {
                Ok(file) => {
                    return Ok(DirectFile {
                        file,
                        mode: Mode::Direct,
                        buf: Some(AlignedBuf::new(DIRECT_BUF_BYTES)),
                        direct_bytes: 0,
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    warn_once(path, &e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(DirectFile {
            file: open(0)?,
            mode: Mode::Buffered,
            buf: None,
            direct_bytes: 0,
        })
    }

    /// How the next bytes are written.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Bytes written with `O_DIRECT` so far.
    pub fn direct_bytes(&self) -> u64 {
        self.direct_bytes
    }

    /// Append `data`.
    pub fn append(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let Some(buf) = self.buf.as_mut() else {
                return (&self.file).write_all(data);
            };
            let n = buf.push(data);
            data = &data[n..];
            if buf.is_full() {
                self.flush_aligned()?;
            }
        }
        Ok(())
    }

    /// Write out everything held; the file then has every appended byte. Leaves the file in
    /// buffered mode. Call once, before the fsync.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if self.buf.is_some() {
            self.flush_aligned()?;
        }
        if let Some(buf) = self.buf.take() {
            // The last partial block: through the page cache, so the length stays exact.
            if !buf.is_empty() {
                self.set_buffered()?;
                (&self.file).write_all(buf.filled())?;
            }
        }
        self.set_buffered()
    }

    /// The file (for the xattr, the fsync and the modification time).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Write the aligned prefix of the buffer with `O_DIRECT` and keep the rest (less than one
    /// block) at the front of the buffer. On `EINVAL` (alignment the device does not take)
    /// the file turns buffered and the bytes go through the page cache.
    fn flush_aligned(&mut self) -> std::io::Result<()> {
        let Some(buf) = self.buf.as_mut() else {
            return Ok(());
        };
        let n = buf.aligned_len();
        let mut done = 0;
        while done < n && self.mode == Mode::Direct {
            match (&self.file).write(&buf.filled()[done..n]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    done += k;
                    self.direct_bytes += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(error = %e, "O_DIRECT write refused; writing this blob through the page cache");
                    self.mode = Mode::Buffered;
                    set_direct(&self.file, false)?;
                }
                Err(e) => return Err(e),
            }
        }
        if done < n {
            // Buffered from here on: write the rest of the buffer, held bytes included.
            let rest = buf.filled()[done..].to_vec();
            self.buf = None;
            return (&self.file).write_all(&rest);
        }
        buf.drop_front(n);
        Ok(())
    }

    fn set_buffered(&mut self) -> std::io::Result<()> {
        if self.mode == Mode::Direct {
            set_direct(&self.file, false)?;
            self.mode = Mode::Buffered;
        }
        Ok(())
    }
}

/// Set or clear `O_DIRECT` on an open file.
fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is an open descriptor owned by `file` for the duration of both calls;
    // F_GETFL/F_SETFL read and set status flags only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above.
    if want != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, want) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn warn_once(path: &Path, e: &std::io::Error) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(path = %path.display(), error = %e, "the filesystem refuses O_DIRECT; blobs are written through the page cache");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(len: usize, seed: u64) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u64).wrapping_mul(seed | 1) >> 3) as u8)
            .collect()
    }

    /// Append `data` in pieces cut at `cuts`, finish, and read the file back.
    fn write_read(data: &[u8], cuts: &[usize], direct: bool) -> (Vec<u8>, u64, Mode) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut f = DirectFile::create(&path, direct).unwrap();
        let first_mode = f.mode();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&data.len())) {
            f.append(&data[at..c]).unwrap();
            at = c;
        }
        f.finish().unwrap();
        f.file().sync_all().unwrap();
        (std::fs::read(&path).unwrap(), f.direct_bytes(), first_mode)
    }

    #[test]
    fn aligned_buf_starts_aligned_and_keeps_bytes() {
        let mut b = AlignedBuf::new(2 * DIRECT_ALIGN);
        assert_eq!(b.filled().as_ptr() as usize % DIRECT_ALIGN, 0);
        assert_eq!(b.push(&[1; 5000]), 5000);
        assert_eq!(b.aligned_len(), DIRECT_ALIGN);
        assert_eq!(b.push(&[2; 5000]), 2 * DIRECT_ALIGN - 5000);
        assert!(b.is_full());
        assert_eq!(&b.filled()[4999..5001], &[1, 2]);
        b.drop_front(DIRECT_ALIGN);
        assert_eq!(b.len(), DIRECT_ALIGN);
        assert_eq!(
            &b.filled()[..5000 - DIRECT_ALIGN],
            &[1; 5000 - DIRECT_ALIGN][..]
        );
        assert_eq!(b.filled()[5000 - DIRECT_ALIGN], 2);
        b.drop_front(DIRECT_ALIGN);
        assert!(b.is_empty());
    }

    /// Lengths around every boundary: block, buffer, and the partial tail.
    #[test]
    fn every_length_round_trips_and_big_ones_go_direct() {
        let b = DIRECT_BUF_BYTES;
        for len in [
            0,
            1,
            DIRECT_ALIGN - 1,
            DIRECT_ALIGN,
            DIRECT_ALIGN + 1,
            b - 1,
            b,
            b + 1,
            b + DIRECT_ALIGN,
            3 * b + 17,
        ] {
            let data = body(len, len as u64);
            let (got, direct, mode) = write_read(&data, &[], true);
            assert_eq!(got.len(), data.len(), "length {len}");
            assert!(got == data, "content of a {len}-byte blob");
            if mode == Mode::Direct {
                // Everything but the last partial block went around the page cache.
                assert_eq!(direct as usize, len - len % DIRECT_ALIGN, "length {len}");
            }
        }
    }

    /// This machine's filesystem (ext4 under the test's temp dir) takes O_DIRECT; if it ever
    /// stops, the write path silently lost its speed-up: say so.
    #[test]
    fn the_test_filesystem_takes_o_direct() {
        let data = body(DIRECT_BUF_BYTES + 5, 3);
        let (got, direct, mode) = write_read(&data, &[], true);
        assert_eq!(got, data);
        if mode == Mode::Buffered {
            eprintln!("temp dir refuses O_DIRECT: only the buffered fallback was tested");
        } else {
            assert_eq!(direct as usize, DIRECT_BUF_BYTES);
        }
    }

    #[test]
    fn buffered_mode_round_trips() {
        let data = body(DIRECT_BUF_BYTES + 4097, 9);
        let (got, direct, mode) = write_read(&data, &[7, 300_000], false);
        assert_eq!(mode, Mode::Buffered);
        assert_eq!(direct, 0);
        assert_eq!(got, data);
    }

    #[test]
    fn a_file_that_exists_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"x").unwrap();
        assert!(DirectFile::create(&path, true).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pieces_of_any_size_round_trip(
            len in 0usize..(3 * DIRECT_BUF_BYTES),
            seed in any::<u64>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let data = body(len, seed);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(len + 1)).collect();
            cuts.sort_unstable();
            let (got, _, _) = write_read(&data, &cuts, true);
            prop_assert_eq!(got.len(), data.len());
            prop_assert!(got == data);
        }
    }
}
