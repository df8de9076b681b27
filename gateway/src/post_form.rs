//! A streaming `multipart/form-data` parser for POST Object (browser form uploads), sans-IO.
//!
//! [`FormParser::push`] takes body bytes as they arrive and [`FormParser::next_event`] hands out
//! [`FormEvent`]s: the start of a part (its name, filename and content type), pieces of its
//! data, its end, and the end of the form. Part data is never collected: a piece is handed out
//! as soon as it cannot be the start of the next delimiter, so the `file` part streams into the
//! store with at most one delimiter length held back. Limits: a part's header block is at most
//! [`MAX_PART_HEADER_BYTES`]; the caller caps what it keeps of the fields (see
//! [`crate::server::post_object`]).

use bytes::{Buf, Bytes, BytesMut};

use crate::error::S3Error;

/// Longest header block of one part.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// Longest boundary (RFC 2046: 70).
pub const MAX_BOUNDARY_BYTES: usize = 70;

/// What the parser found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormEvent {
    /// A part begins.
    Part {
        /// `name` of its Content-Disposition.
        name: String,
        /// `filename`, if given.
        filename: Option<String>,
        /// Its Content-Type header, if given.
        content_type: Option<String>,
    },
    /// Data of the current part.
    Data(Bytes),
    /// The current part ended.
    PartEnd,
    /// The closing delimiter: the form is complete.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter (preamble, ignored).
    Preamble,
    /// Right after a delimiter: `--` (the end) or the rest of the delimiter line.
    AfterDelimiter,
    /// Reading a part's headers.
    Headers,
    /// Reading a part's data.
    Body,
    /// After the closing delimiter (epilogue, ignored).
    Done,
}

/// The parser (see the module docs).
#[derive(Debug)]
pub struct FormParser {
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
    eof: bool,
}

/// The boundary of a `multipart/form-data` Content-Type, or `None` when the type is another.
pub fn boundary(content_type: &str) -> Option<Result<String, S3Error>> {
    let mut parts = content_type.split(';');
    let mime = parts.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                let b = v.trim().trim_matches('"');
                if b.is_empty() || b.len() > MAX_BOUNDARY_BYTES {
                    break;
                }
                return Some(Ok(b.to_string()));
            }
        }
    }
    Some(Err(S3Error::MalformedPOSTRequest(
        "The body of your POST request is not well-formed multipart/form-data.".into(),
    )))
}

fn malformed() -> S3Error {
    S3Error::MalformedPOSTRequest(
        "The body of your POST request is not well-formed multipart/form-data.".into(),
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(off) => {
                let at = i + off;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

impl FormParser {
    /// A parser for `boundary` (from [`boundary`]).
    pub fn new(boundary: &str) -> FormParser {
        let mut buf = BytesMut::new();
        // The first delimiter may open the body without a CRLF before it.
        buf.extend_from_slice(b"\r\n");
        FormParser {
            delimiter: [b"\r\n--".as_slice(), boundary.as_bytes()].concat(),
            buf,
            state: State::Preamble,
            eof: false,
        }
    }

    /// Add body bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The body ended.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Whether the closing delimiter was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next event; `Ok(None)` when more input is needed (or, after [`FormParser::finish`]
    /// and [`FormEvent::End`], never again). A body that ends before the closing delimiter is
    /// `MalformedPOSTRequest`.
    pub fn next_event(&mut self) -> Result<Option<FormEvent>, S3Error> {
        loop {
            match self.state {
                State::Done => {
                    self.buf.clear();
                    return Ok(None);
                }
                State::Preamble => match find(&self.buf, &self.delimiter) {
                    Some(i) => {
                        self.buf.advance(i + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        // Keep only what could be the start of the delimiter.
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            let drop = self.buf.len() - keep;
                            self.buf.advance(drop);
                        }
                        return self.need_more();
                    }
                },
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return self.need_more();
                    }
                    if &self.buf[..2] == b"--" {
                        self.state = State::Done;
                        return Ok(Some(FormEvent::End));
                    }
                    // Transport padding, then CRLF.
                    match find(&self.buf, b"\r\n") {
                        Some(i) => {
                            if self.buf[..i].iter().any(|b| !matches!(b, b' ' | b'\t')) {
                                return Err(malformed());
                            }
                            self.buf.advance(i + 2);
                            self.state = State::Headers;
                        }
                        None if self.buf.len() > 256 => return Err(malformed()),
                        None => return self.need_more(),
                    }
                }
                State::Headers => {
                    // An empty header block: the CRLF CRLF starts right away.
                    let end = if self.buf.starts_with(b"\r\n") {
                        Some(0)
                    } else {
                        find(&self.buf, b"\r\n\r\n").map(|i| i + 2)
                    };
                    match end {
                        Some(i) => {
                            if i > MAX_PART_HEADER_BYTES {
                                return Err(malformed());
                            }
                            let block = self.buf.split_to(i);
                            self.buf.advance(2);
                            self.state = State::Body;
                            return parse_part_headers(&block).map(Some);
                        }
                        None if self.buf.len() > MAX_PART_HEADER_BYTES => return Err(malformed()),
                        None => return self.need_more(),
                    }
                }
                State::Body => match find(&self.buf, &self.delimiter) {
                    Some(0) => {
                        self.buf.advance(self.delimiter.len());
                        self.state = State::AfterDelimiter;
                        return Ok(Some(FormEvent::PartEnd));
                    }
                    Some(i) => return Ok(Some(FormEvent::Data(self.buf.split_to(i).freeze()))),
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            let n = self.buf.len() - keep;
                            return Ok(Some(FormEvent::Data(self.buf.split_to(n).freeze())));
                        }
                        return self.need_more();
                    }
                },
            }
        }
    }

    fn need_more(&self) -> Result<Option<FormEvent>, S3Error> {
        if self.eof {
            return Err(malformed());
        }
        Ok(None)
    }
}

/// The name, filename and content type of a part from its header block.
fn parse_part_headers(block: &[u8]) -> Result<FormEvent, S3Error> {
    let text = std::str::from_utf8(block).map_err(|_| malformed())?;
    let (mut name, mut filename, mut content_type) = (None, None, None);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':').ok_or_else(malformed)?;
        let k = k.trim();
        if k.eq_ignore_ascii_case("content-disposition") {
            let mut params = split_params(v);
            let kind = params.next().unwrap_or_default();
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(malformed());
            }
            for p in params {
                let Some((pk, pv)) = p.split_once('=') else {
                    continue;
                };
                let pv = unquote(pv.trim());
                match pk.trim().to_ascii_lowercase().as_str() {
                    "name" => name = Some(pv),
                    "filename" => filename = Some(pv),
                    _ => {}
                }
            }
        } else if k.eq_ignore_ascii_case("content-type") {
            content_type = Some(v.trim().to_string());
        }
    }
    Ok(FormEvent::Part {
        name: name.ok_or_else(malformed)?,
        filename,
        content_type,
    })
}

/// Split `a; b="x;y"; c` on the semicolons outside quotes.
fn split_params(v: &str) -> impl Iterator<Item = &str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in v.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out.into_iter()
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

/// Run the parser over a whole body given in pieces (tests and fuzzing): the events, data
/// pieces merged per part.
pub fn parse_all(boundary: &str, pieces: &[&[u8]]) -> Result<Vec<FormEvent>, S3Error> {
    let mut p = FormParser::new(boundary);
    let mut out: Vec<FormEvent> = Vec::new();
    let drain = |p: &mut FormParser, out: &mut Vec<FormEvent>| -> Result<(), S3Error> {
        while let Some(ev) = p.next_event()? {
            match (ev, out.last_mut()) {
                (FormEvent::Data(d), Some(FormEvent::Data(prev))) => {
                    let mut m = BytesMut::from(&prev[..]);
                    m.extend_from_slice(&d);
                    *prev = m.freeze();
                }
                (ev, _) => out.push(ev),
            }
        }
        Ok(())
    };
    for piece in pieces {
        p.push(piece);
        drain(&mut p, &mut out)?;
    }
    p.finish();
    drain(&mut p, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuser/${filename}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\n--XyNot\r\nend\r\n--XyZ\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nx\r\n--XyZ--\r\nepilogue";

    fn expected() -> Vec<FormEvent> {
        vec![
            FormEvent::Part {
                name: "key".into(),
                filename: None,
                content_type: None,
            },
            FormEvent::Data(Bytes::from_static(b"user/${filename}")),
            FormEvent::PartEnd,
            FormEvent::Part {
                name: "file".into(),
                filename: Some("a;b.txt".into()),
                content_type: Some("text/plain".into()),
            },
            FormEvent::Data(Bytes::from_static(b"line1\r\n--XyNot\r\nend")),
            FormEvent::PartEnd,
            FormEvent::Part {
                name: "after".into(),
                filename: None,
                content_type: None,
            },
            FormEvent::Data(Bytes::from_static(b"x")),
            FormEvent::PartEnd,
            FormEvent::End,
        ]
    }

    #[test]
    fn parses_a_form_whole_and_byte_by_byte() {
        assert_eq!(parse_all("XyZ", &[BODY]).unwrap(), expected());
        let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
        assert_eq!(parse_all("XyZ", &bytes).unwrap(), expected());
        // No preamble: the body opens with the delimiter.
        let body = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--b--";
        assert_eq!(
            parse_all("b", &[body]).unwrap(),
            vec![
                FormEvent::Part {
                    name: "a".into(),
                    filename: None,
                    content_type: None
                },
                FormEvent::PartEnd,
                FormEvent::End
            ]
        );
    }

    #[test]
    fn truncated_and_malformed_bodies_are_refused() {
        for cut in [10, 40, 120, BODY.len() - 12] {
            assert_eq!(
                parse_all("XyZ", &[&BODY[..cut]]).unwrap_err().aws_code(),
                "MalformedPOSTRequest",
                "{cut}"
            );
        }
        for bad in [
            &b"--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--"[..],
            b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
            b"--b\r\nno colon\r\n\r\nx\r\n--b--",
            b"--bjunk\r\n\r\n",
        ] {
            assert_eq!(
                parse_all("b", &[bad]).unwrap_err().aws_code(),
                "MalformedPOSTRequest"
            );
        }
        let huge = [
            b"--b\r\nX: ".as_slice(),
            &[b'a'; MAX_PART_HEADER_BYTES + 10],
            b"\r\n\r\n",
        ]
        .concat();
        assert!(parse_all("b", &[&huge]).is_err());
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").unwrap(),
            Ok("abc".into())
        );
        assert_eq!(
            boundary("Multipart/Form-Data;boundary=\"a b\"").unwrap(),
            Ok("a b".into())
        );
        assert!(boundary("multipart/form-data").unwrap().is_err());
        assert!(
            boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71)))
                .unwrap()
                .is_err()
        );
        assert!(boundary("application/xml").is_none());
    }

    proptest! {
        /// Any split of a body into pieces gives the same events.
        #[test]
        fn split_anywhere(cuts in proptest::collection::vec(0usize..BODY.len(), 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts {
                pieces.push(&BODY[at..c]);
                at = c;
            }
            pieces.push(&BODY[at..]);
            prop_assert_eq!(parse_all("XyZ", &pieces).unwrap(), expected());
        }

        /// Any file content (even one full of near-delimiters) comes back intact.
        #[test]
        fn file_content_round_trips(
            data in proptest::collection::vec(proptest::sample::select(b"\r\n-Xab".to_vec()), 0..200),
            chunk in 1usize..50,
        ) {
            let body = [b"--Xa\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".as_slice(), &data, b"\r\n--Xa--"].concat();
            // The data must not contain the delimiter itself.
            prop_assume!(find(&data, b"\r\n--Xa").is_none() && !data.ends_with(b"\r\n--X") && !data.ends_with(b"\r\n--") && !data.ends_with(b"\r\n-") && !data.ends_with(b"\r\n") && !data.ends_with(b"\r"));
            let pieces: Vec<&[u8]> = body.chunks(chunk).collect();
            let ev = parse_all("Xa", &pieces).unwrap();
            let got: Vec<u8> = ev.iter().filter_map(|e| match e { FormEvent::Data(d) => Some(d.to_vec()), _ => None }).flatten().collect();
            prop_assert_eq!(got, data);
        }

        /// Arbitrary input never panics.
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_all("b", &[&data]);
        }
    }
}
