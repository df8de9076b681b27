//! Request body decoding and checking, sans IO: [`BodyDecoder`] takes the body as it arrives in
//! `Bytes` pieces and hands back payload pieces.
//!
//! - plain bodies pass through; with a signed payload hash the SHA-256 is checked at the end;
//! - `aws-chunked` bodies (`hex-size;chunk-signature=<sig>\r\n<data>\r\n` ... final 0-size chunk,
//!   optional trailer lines, blank line) are unframed; each chunk signature is verified against
//!   the chain that starts at the request's seed signature, and the trailer signature too.
//!
//! Memory is bounded: payload bytes are handed on as they arrive (never a whole chunk buffered);
//! only a header or trailer line (at most [`MAX_LINE_BYTES`]) is buffered. Because chunk data is
//! released before its signature is checked at the chunk's end, the consumer must treat the body
//! as valid only after [`BodyDecoder::finish`] succeeded: the gateway's body stream yields an
//! error instead of a clean end, so the client library never commits such an object.

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::error::S3Error;
use crate::sigv4::{ChunkSigner, PayloadMode};

/// Longest chunk header or trailer line accepted.
pub const MAX_LINE_BYTES: usize = 4096;
/// Most trailer lines accepted.
pub const MAX_TRAILERS: usize = 16;

/// Checks and unframes one request body. Feed it with [`BodyDecoder::push`], then call
/// [`BodyDecoder::finish`] at the end of the input.
#[derive(Debug)]
pub enum BodyDecoder {
    /// Pass through unchecked.
    Raw,
    /// Pass through; the SHA-256 must equal `expected` at the end.
    Sha256 {
        /// Expected digest.
        expected: [u8; 32],
        /// Running digest.
        hasher: Sha256,
    },
    /// `aws-chunked` framing.
    Chunked(Box<ChunkedDecoder>),
}

impl BodyDecoder {
    /// The decoder for a verified request's payload mode. `decoded_length` is
    /// `x-amz-decoded-content-length`, checked at the end when given.
    pub fn new(
        mode: &PayloadMode,
        signer: Option<ChunkSigner>,
        decoded_length: Option<u64>,
    ) -> Result<BodyDecoder, S3Error> {
        Ok(match mode {
            PayloadMode::Unsigned => BodyDecoder::Raw,
            PayloadMode::Sha256(expected) => BodyDecoder::Sha256 {
                expected: *expected,
                hasher: Sha256::new(),
            },
            PayloadMode::StreamingSigned { trailer } => {
                let signer = signer.ok_or_else(|| {
                    S3Error::InternalError("signed streaming body without a signer".into())
                })?;
                BodyDecoder::Chunked(Box::new(ChunkedDecoder::new(
                    Some(signer),
                    *trailer,
                    decoded_length,
                )))
            }
            PayloadMode::StreamingUnsignedTrailer => {
                BodyDecoder::Chunked(Box::new(ChunkedDecoder::new(None, true, decoded_length)))
            }
        })
    }

    /// Feed the next input piece; payload pieces are appended to `out`.
    pub fn push(&mut self, input: Bytes, out: &mut Vec<Bytes>) -> Result<(), S3Error> {
        match self {
            BodyDecoder::Raw => out.push(input),
            BodyDecoder::Sha256 { hasher, .. } => {
                hasher.update(&input);
                out.push(input);
            }
            BodyDecoder::Chunked(d) => d.push(input, out)?,
        }
        Ok(())
    }

    /// The value of trailer `name` (lowercase) once the body ended, if the body sent it.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        match self {
            BodyDecoder::Chunked(d) => d.trailer(name),
            _ => None,
        }
    }

    /// The input ended: check what can only be checked at the end.
    pub fn finish(&mut self) -> Result<(), S3Error> {
        match self {
            BodyDecoder::Raw => Ok(()),
            BodyDecoder::Sha256 { expected, hasher } => {
                let got: [u8; 32] = std::mem::take(hasher).finalize().into();
                if &got == expected {
                    Ok(())
                } else {
                    Err(S3Error::XAmzContentSHA256Mismatch)
                }
            }
            BodyDecoder::Chunked(d) => d.finish(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading `hex-size[;ext]\r\n`.
    Header,
    /// Reading chunk data.
    Data,
    /// Expecting the `\r\n` after chunk data (`seen` bytes of it so far).
    DataEnd { seen: u8 },
    /// After the final chunk: trailer lines until a blank line.
    Trailer,
    /// Complete.
    Done,
}

/// The `aws-chunked` unframer (see the module docs).
pub struct ChunkedDecoder {
    signer: Option<ChunkSigner>,
    trailer: bool,
    state: State,
    line: BytesMut,
    remaining: u64,
    hasher: Sha256,
    /// Signature claimed by the current chunk's header.
    claimed: String,
    /// Signature of the previous chunk (the seed at first).
    previous: String,
    decoded: u64,
    expected_total: Option<u64>,
    trailers: Vec<String>,
    trailer_signature: Option<String>,
}

impl std::fmt::Debug for ChunkedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedDecoder")
            .field("state", &self.state)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

fn framing(why: &str) -> S3Error {
    S3Error::IncompleteBody(format!("malformed aws-chunked body: {why}"))
}

impl ChunkedDecoder {
    /// An unframer; with `signer`, chunk signatures are required and verified.
    pub fn new(signer: Option<ChunkSigner>, trailer: bool, expected_total: Option<u64>) -> Self {
        let previous = signer
            .as_ref()
            .map(|s| s.seed_signature.clone())
            .unwrap_or_default();
        ChunkedDecoder {
            signer,
            trailer,
            state: State::Header,
            line: BytesMut::new(),
            remaining: 0,
            hasher: Sha256::new(),
            claimed: String::new(),
            previous,
            decoded: 0,
            expected_total,
            trailers: Vec::new(),
            trailer_signature: None,
        }
    }

    /// Payload bytes decoded so far.
    pub fn decoded_bytes(&self) -> u64 {
        self.decoded
    }

    /// Feed the next input piece.
    pub fn push(&mut self, mut input: Bytes, out: &mut Vec<Bytes>) -> Result<(), S3Error> {
        while !input.is_empty() {
            match self.state {
                State::Header | State::Trailer => {
                    if let Some(line) = self.take_line(&mut input)? {
                        self.on_line(&line)?;
                    }
                }
                State::Data => {
                    let n = (self.remaining.min(input.len() as u64)) as usize;
                    let piece = input.split_to(n);
                    self.hasher.update(&piece);
                    self.remaining -= n as u64;
                    self.decoded += n as u64;
                    out.push(piece);
                    if self.remaining == 0 {
                        self.state = State::DataEnd { seen: 0 };
                    }
                }
                State::DataEnd { seen } => {
                    let want = b"\r\n"[seen as usize];
                    if input[0] != want {
                        return Err(framing("chunk data not followed by CRLF"));
                    }
                    let _ = input.split_to(1);
                    if seen == 0 {
                        self.state = State::DataEnd { seen: 1 };
                    } else {
                        self.end_of_chunk()?;
                        self.state = State::Header;
                    }
                }
                State::Done => return Err(framing("data after the final chunk")),
            }
        }
        Ok(())
    }

    /// The input ended: the final chunk (and trailer) must have been seen, and the length must
    /// match `x-amz-decoded-content-length`.
    pub fn finish(&mut self) -> Result<(), S3Error> {
        if self.state != State::Done {
            return Err(framing("the body ended before the final chunk"));
        }
        match self.expected_total {
            Some(n) if n != self.decoded => Err(S3Error::IncompleteBody(format!(
                "x-amz-decoded-content-length is {n} but the body holds {} bytes",
                self.decoded
            ))),
            _ => Ok(()),
        }
    }

    /// Accumulate up to the next `\n`; returns the line without `\r\n` once complete.
    fn take_line(&mut self, input: &mut Bytes) -> Result<Option<Bytes>, S3Error> {
        match input.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.line.extend_from_slice(&input.split_to(i + 1));
                if self.line.len() > MAX_LINE_BYTES + 2 {
                    return Err(framing("line too long"));
                }
                let mut line = std::mem::take(&mut self.line).freeze();
                line.truncate(line.len() - 1);
                if line.last() != Some(&b'\r') {
                    return Err(framing("line not terminated by CRLF"));
                }
                line.truncate(line.len() - 1);
                Ok(Some(line))
            }
            None => {
                self.line.extend_from_slice(&std::mem::take(input));
                // A line still waiting for its `\n` may hold the `\r` already: the limit is
                // the one a complete line gets, or the outcome would depend on where the
                // body was split (found by the aws_chunked fuzz target's split property).
                if self.line.len() > MAX_LINE_BYTES + 1 {
                    return Err(framing("line too long"));
                }
                Ok(None)
            }
        }
    }

    fn on_line(&mut self, line: &[u8]) -> Result<(), S3Error> {
        let line = std::str::from_utf8(line).map_err(|_| framing("line is not UTF-8"))?;
        match self.state {
            State::Header => self.on_header(line),
            State::Trailer => self.on_trailer(line),
            _ => unreachable!("lines are only read in Header and Trailer states"),
        }
    }

    fn on_header(&mut self, line: &str) -> Result<(), S3Error> {
        let (size, ext) = line.split_once(';').unwrap_or((line, ""));
        let size = u64::from_str_radix(size.trim(), 16).map_err(|_| framing("bad chunk size"))?;
        self.claimed.clear();
        if self.signer.is_some() {
            let sig = ext
                .split(';')
                .find_map(|e| e.trim().strip_prefix("chunk-signature="))
                .ok_or_else(|| framing("chunk without chunk-signature"))?;
            self.claimed = sig.trim().to_ascii_lowercase();
        }
        self.hasher = Sha256::new();
        self.remaining = size;
        self.state = if size == 0 {
            // The final chunk carries no data: verify it now.
            self.verify_chunk()?;
            State::Trailer
        } else {
            State::Data
        };
        Ok(())
    }

    fn end_of_chunk(&mut self) -> Result<(), S3Error> {
        self.verify_chunk()
    }

    fn verify_chunk(&mut self) -> Result<(), S3Error> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        let digest = std::mem::take(&mut self.hasher).finalize();
        let expected = signer.chunk_signature(&self.previous, &digest);
        if !crate::sigv4::constant_time_eq(expected.as_bytes(), self.claimed.as_bytes()) {
            return Err(S3Error::SignatureDoesNotMatch);
        }
        self.previous = expected;
        Ok(())
    }

    /// The value of trailer `name` (lowercase), if received.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find_map(|t| {
            let (n, v) = t.trim_end_matches('\n').split_once(':')?;
            (n == name).then_some(v)
        })
    }

    fn on_trailer(&mut self, line: &str) -> Result<(), S3Error> {
        if line.is_empty() {
            self.verify_trailer()?;
            self.state = State::Done;
            return Ok(());
        }
        if !self.trailer {
            return Err(framing("trailer lines without x-amz-trailer"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| framing("trailer line without ':'"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if name == "x-amz-trailer-signature" {
            self.trailer_signature = Some(value.to_ascii_lowercase());
        } else {
            if self.trailers.len() >= MAX_TRAILERS {
                return Err(framing("too many trailers"));
            }
            self.trailers.push(format!("{name}:{value}\n"));
        }
        Ok(())
    }

    fn verify_trailer(&mut self) -> Result<(), S3Error> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        if !self.trailer {
            return Ok(());
        }
        let claimed = self
            .trailer_signature
            .as_deref()
            .ok_or_else(|| framing("signed trailer without x-amz-trailer-signature"))?;
        let block = self.trailers.concat();
        let expected = signer.trailer_signature(&self.previous, block.as_bytes());
        if !crate::sigv4::constant_time_eq(expected.as_bytes(), claimed.as_bytes()) {
            return Err(S3Error::SignatureDoesNotMatch);
        }
        Ok(())
    }
}

/// Frame `data` as a signed `aws-chunked` body in chunks of `chunk_size` bytes (tests, bench).
/// `trailers` (`name:value` pairs) make it a `...-PAYLOAD-TRAILER` body.
pub fn encode_signed_chunks(
    signer: &ChunkSigner,
    data: &[u8],
    chunk_size: usize,
    trailers: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 256);
    let mut previous = signer.seed_signature.clone();
    let pieces = data
        .chunks(chunk_size.max(1))
        .chain(std::iter::once(&[][..]));
    for piece in pieces {
        let sig = signer.chunk_signature(&previous, &Sha256::digest(piece));
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        if !piece.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        previous = sig;
    }
    if !trailers.is_empty() {
        let block: String = trailers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let sig = signer.trailer_signature(&previous, block.as_bytes());
        for (k, v) in trailers {
            out.extend_from_slice(format!("{k}:{v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::{SignParams, EMPTY_SHA256};

    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

    fn aws_signer() -> ChunkSigner {
        let p = SignParams {
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            amz_date: "20130524T000000Z",
        };
        ChunkSigner::new(&p, SEED.to_string())
    }

    /// The AWS example body: 65536 + 1024 bytes of 'a' with the documented signatures.
    fn aws_body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        b.extend_from_slice(&[b'a'; 65536]);
        b.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        b.extend_from_slice(&[b'a'; 1024]);
        b.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        b
    }

    /// Feed `body` in pieces of `piece` bytes; returns the payload or the first error.
    fn run(mut d: BodyDecoder, body: &[u8], piece: usize) -> Result<Vec<u8>, S3Error> {
        let mut out = Vec::new();
        let mut payload = Vec::new();
        for p in body.chunks(piece.max(1)) {
            d.push(Bytes::copy_from_slice(p), &mut out)?;
            for o in out.drain(..) {
                payload.extend_from_slice(&o);
            }
        }
        d.finish()?;
        Ok(payload)
    }

    fn signed(len: Option<u64>) -> BodyDecoder {
        BodyDecoder::new(
            &PayloadMode::StreamingSigned { trailer: false },
            Some(aws_signer()),
            len,
        )
        .unwrap()
    }

    #[test]
    fn aws_example_decodes_in_any_piece_size() {
        let body = aws_body();
        assert_eq!(body.len(), 66824, "the documented Content-Length");
        for piece in [1, 2, 7, 100, 4096, 65537, 70000] {
            let payload = run(signed(Some(66560)), &body, piece).unwrap();
            assert_eq!(payload, vec![b'a'; 66560], "piece {piece}");
        }
        assert_eq!(
            encode_signed_chunks(&aws_signer(), &[b'a'; 66560], 65536, &[]),
            body
        );
    }

    #[test]
    fn corruption_is_detected() {
        let body = aws_body();
        // A flipped data byte in the second chunk.
        let mut bad = body.clone();
        bad[65536 + 100 + 90] = b'b';
        assert_eq!(
            run(signed(None), &bad, 1000),
            Err(S3Error::SignatureDoesNotMatch)
        );
        // A flipped signature character.
        let mut bad = body.clone();
        bad[30] = if bad[30] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            run(signed(None), &bad, 1000),
            Err(S3Error::SignatureDoesNotMatch)
        );
        // Truncated: no final chunk.
        let cut = &body[..body.len() - 90];
        assert_eq!(
            run(signed(None), cut, 1000).unwrap_err().aws_code(),
            "IncompleteBody"
        );
        // Wrong decoded length.
        assert_eq!(
            run(signed(Some(5)), &body, 1000).unwrap_err().aws_code(),
            "IncompleteBody"
        );
        // Garbage after the end.
        let mut extra = body.clone();
        extra.extend_from_slice(b"x");
        assert_eq!(
            run(signed(None), &extra, 1000).unwrap_err().aws_code(),
            "IncompleteBody"
        );
        // Chunks reordered: the chain breaks.
        let signer = aws_signer();
        let one = encode_signed_chunks(&signer, b"hello world", 5, &[]);
        let s = String::from_utf8(one.clone()).unwrap();
        let parts: Vec<&str> = s.split("\r\n").collect();
        let swapped = [
            parts[2], parts[3], parts[0], parts[1], parts[4], parts[5], parts[6], "",
        ]
        .join("\r\n");
        assert_eq!(
            run(signed(None), swapped.as_bytes(), 3),
            Err(S3Error::SignatureDoesNotMatch)
        );
        assert_eq!(run(signed(Some(11)), &one, 3).unwrap(), b"hello world");
        // A line that never ends is bounded.
        let long = vec![b'1'; MAX_LINE_BYTES + 10];
        assert_eq!(
            run(signed(None), &long, 100).unwrap_err().aws_code(),
            "IncompleteBody"
        );
    }

    #[test]
    fn signed_trailer_round_trip() {
        let signer = aws_signer();
        let body = encode_signed_chunks(
            &signer,
            b"abcdefghij",
            4,
            &[("x-amz-checksum-crc32", "sOO8/Q==")],
        );
        let mk = || {
            BodyDecoder::new(
                &PayloadMode::StreamingSigned { trailer: true },
                Some(aws_signer()),
                Some(10),
            )
            .unwrap()
        };
        assert_eq!(run(mk(), &body, 3).unwrap(), b"abcdefghij");
        let tampered = String::from_utf8(body)
            .unwrap()
            .replace("sOO8/Q==", "sOO8/Q=A");
        assert_eq!(
            run(mk(), tampered.as_bytes(), 3),
            Err(S3Error::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn unsigned_trailer() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        for piece in [1, 3, 100] {
            let d =
                BodyDecoder::new(&PayloadMode::StreamingUnsignedTrailer, None, Some(11)).unwrap();
            assert_eq!(run(d, body, piece).unwrap(), b"hello world");
        }
        let d = BodyDecoder::new(&PayloadMode::StreamingUnsignedTrailer, None, None).unwrap();
        assert!(
            run(d, b"5\r\nhello\r\n0\r\n", 4).is_err(),
            "missing blank line"
        );
        let d = BodyDecoder::new(&PayloadMode::StreamingUnsignedTrailer, None, None).unwrap();
        assert!(
            run(d, b"5\r\nhelloXX0\r\n\r\n", 4).is_err(),
            "missing CRLF after data"
        );
    }

    #[test]
    fn plain_bodies() {
        let mut empty = [0u8; 32];
        hex::decode_to_slice(EMPTY_SHA256, &mut empty).unwrap();
        let d = BodyDecoder::new(&PayloadMode::Sha256(empty), None, None).unwrap();
        assert_eq!(run(d, b"", 1).unwrap(), b"");
        let d = BodyDecoder::new(&PayloadMode::Sha256(empty), None, None).unwrap();
        assert_eq!(run(d, b"x", 1), Err(S3Error::XAmzContentSHA256Mismatch));
        let sha: [u8; 32] = Sha256::digest(b"hello").into();
        let d = BodyDecoder::new(&PayloadMode::Sha256(sha), None, None).unwrap();
        assert_eq!(run(d, b"hello", 2).unwrap(), b"hello");
        let d = BodyDecoder::new(&PayloadMode::Unsigned, None, None).unwrap();
        assert_eq!(run(d, b"anything", 3).unwrap(), b"anything");
    }

    /// A header line of exactly MAX_LINE_BYTES decodes whether or not its CRLF arrives in one
    /// piece; one byte longer is refused either way. (Regression: split between `\r` and
    /// `\n`, the longest valid line was refused as too long.)
    #[test]
    fn the_longest_line_decodes_however_it_is_split() {
        let unsigned = || BodyDecoder::new(&PayloadMode::StreamingUnsignedTrailer, None, None);
        for (pad, ok) in [(MAX_LINE_BYTES - 1, true), (MAX_LINE_BYTES, false)] {
            let mut body = vec![b'0'; pad];
            body.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
            for first in [body.len(), pad + 1, pad + 2] {
                let mut d = unsigned().unwrap();
                let mut out = Vec::new();
                let (a, b) = body.split_at(first);
                let res = d
                    .push(Bytes::copy_from_slice(a), &mut out)
                    .and_then(|()| d.push(Bytes::copy_from_slice(b), &mut out))
                    .and_then(|()| d.finish());
                assert_eq!(
                    res.is_ok(),
                    ok,
                    "line of {} bytes, split at {first}",
                    pad + 1
                );
                if ok {
                    assert_eq!(out.concat(), b"hello");
                }
            }
        }
    }
}
