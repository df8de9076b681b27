//! Turning fuzz bytes into inputs: a byte cursor for structured targets, and a lenient text
//! form of an HTTP request head so the corpus holds readable requests (real SigV4 headers,
//! presigned URLs) that libFuzzer mutates.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Reads small integers and slices off the front of the input; past the end it yields zeros
/// and empty slices, so every input decodes to something.
#[derive(Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    /// The next byte (0 at the end).
    pub fn u8(&mut self) -> u8 {
        let (first, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        *first
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next eight bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_be_bytes(b)
    }

    /// The next byte as a choice among `n` (> 0).
    pub fn pick(&mut self, n: usize) -> usize {
        self.u8() as usize % n
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A length-prefixed (u16) slice.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.take(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A request in the corpus text form:
///
/// ```text
/// METHOD TARGET
/// name: value
/// ...
///
/// body
/// ```
///
/// Lines end in `\n` (a `\r` before it is dropped). TARGET is `path[?query]` as sent on the
/// wire. Header lines that are not valid HTTP (no `:`, bad name or value) are skipped, as
/// hyper would refuse them before the gateway sees the request.
#[derive(Clone, Debug, Default)]
pub struct TextRequest {
    /// Method token as written.
    pub method: String,
    /// Raw path (before `?`).
    pub path: String,
    /// Raw query (after the first `?`), without the `?`.
    pub query: String,
    /// Whether the target had a `?`.
    pub has_query: bool,
    /// Header lines in order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Everything after the blank line.
    pub body: Vec<u8>,
}

impl TextRequest {
    /// Parse the text form; `None` only for an empty input.
    pub fn parse(data: &[u8]) -> Option<TextRequest> {
        if data.is_empty() {
            return None;
        }
        let (head, body) = split_head(data);
        let mut lines = head.split(|&b| b == b'\n').map(strip_cr);
        let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let mut words = first.splitn(3, ' ');
        let method = words.next().unwrap_or_default().to_string();
        let target = words.next().unwrap_or_default().to_string();
        let (path, query, has_query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string(), true),
            None => (target.clone(), String::new(), false),
        };
        let headers = lines.filter_map(header_line).collect();
        Some(TextRequest {
            method,
            path,
            query,
            has_query,
            headers,
            body: body.to_vec(),
        })
    }

    /// The headers as a map (repeated names kept, in order).
    pub fn header_map(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in &self.headers {
            h.append(k.clone(), v.clone());
        }
        h
    }

    /// `path?query` as it was written.
    pub fn target(&self) -> String {
        if self.has_query {
            format!("{}?{}", self.path, self.query)
        } else {
            self.path.clone()
        }
    }
}

/// Split at the first blank line (`\n\n` or `\r\n\r\n`); no blank line: all head.
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            let next = &data[i + 1..];
            if next.first() == Some(&b'\n') {
                return (&data[..i], &next[1..]);
            }
            if next.starts_with(b"\r\n") {
                return (&data[..i], &next[2..]);
            }
        }
        i += 1;
    }
    (data, &[])
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn header_line(line: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = HeaderName::from_bytes(line[..colon].trim_ascii()).ok()?;
    let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_requests_parse() {
        let r = TextRequest::parse(
            b"PUT /b/k?uploads&x=1 HTTP/1.1\r\nHost: h\r\nbad line\r\nx-amz-meta-a:  1 \r\n\r\nbody\n\nmore",
        )
        .unwrap();
        assert_eq!(r.method, "PUT");
        assert_eq!(r.path, "/b/k");
        assert_eq!(r.query, "uploads&x=1");
        assert_eq!(r.target(), "/b/k?uploads&x=1");
        let h = r.header_map();
        assert_eq!(h.len(), 2);
        assert_eq!(h["host"], "h");
        assert_eq!(h["x-amz-meta-a"], "1");
        assert_eq!(r.body, b"body\n\nmore");
        assert!(TextRequest::parse(b"").is_none());
    }

    #[test]
    fn cursor_yields_zeros_past_the_end() {
        let mut c = Cursor::new(&[1, 2, 3]);
        assert_eq!(c.u16(), 0x0102);
        assert_eq!(c.take(5), &[3]);
        assert_eq!(c.u64(), 0);
        assert!(c.is_empty());
    }
}
