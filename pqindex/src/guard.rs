//! A check run on a footer before the `parquet` crate decodes it: the nesting depth of its
//! schema. The schema is stored as a flat list of elements with child counts, and the crate
//! builds its tree recursively with no depth limit, so a footer of under a megabyte stating a
//! group nested 100,000 deep overflows the stack and aborts the process (a gateway indexing
//! an upload). This walks the Thrift compact encoding of `FileMetaData` without recursion
//! (other than skipping nested structs, itself capped), reads each schema element's
//! `num_children`, and computes the depth with an explicit stack.

use crate::IndexError;

/// The deepest schema accepted (a leaf inside this many groups, the root counting as one).
pub const MAX_SCHEMA_DEPTH: usize = 100;
/// The deepest nesting of Thrift structs skipped (the `parquet` crate's own limit is 64).
const MAX_SKIP_DEPTH: usize = 64;

// Thrift compact protocol type codes.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

fn bad(what: &str) -> IndexError {
    IndexError::Footer(format!("footer does not decode: {what}"))
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, IndexError> {
        let v = *self.b.get(self.pos).ok_or_else(|| bad("ends early"))?;
        self.pos += 1;
        Ok(v)
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), IndexError> {
        let end = (self.pos as u64)
            .checked_add(n)
            .filter(|e| *e <= self.b.len() as u64)
            .ok_or_else(|| bad("ends early"))?;
        self.pos = end as usize;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, IndexError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(bad("varint over 64 bits"));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint over 64 bits"))
    }

    fn zigzag(&mut self) -> Result<i64, IndexError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A field header: `None` at the struct's end, else (field id, type).
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, IndexError> {
        let h = self.byte()?;
        if h == 0 {
            return Ok(None);
        }
        let (delta, ty) = (h >> 4, h & 0x0f);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| bad("field id"))?
        } else {
            last.checked_add(delta as i16)
                .ok_or_else(|| bad("field id"))?
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    /// A list or set header: (element type, size).
    fn list(&mut self) -> Result<(u8, u64), IndexError> {
        let h = self.byte()?;
        let size = match h >> 4 {
            15 => self.varint()?,
            n => n as u64,
        };
        Ok((h & 0x0f, size))
    }

    /// Skip a value of type `ty` (a list element when `in_list`: booleans take a byte).
    fn skip(&mut self, ty: u8, in_list: bool, depth: usize) -> Result<(), IndexError> {
        match ty {
            BOOL_TRUE | BOOL_FALSE if in_list => self.skip_bytes(1),
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.skip_bytes(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip_bytes(8),
            BINARY => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            LIST | SET => {
                let (elem, n) = self.list()?;
                // Every element takes at least a byte: the input's end bounds the loop.
                for _ in 0..n {
                    self.skip(elem, true, depth)?;
                }
                Ok(())
            }
            MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                for _ in 0..n {
                    self.skip(kv >> 4, true, depth)?;
                    self.skip(kv & 0x0f, true, depth)?;
                }
                Ok(())
            }
            STRUCT => {
                if depth >= MAX_SKIP_DEPTH {
                    return Err(bad("structs nested too deep"));
                }
                let mut last = 0;
                while let Some((_, t)) = self.field(&mut last)? {
                    self.skip(t, false, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(bad("unknown Thrift type")),
        }
    }

    /// One `SchemaElement`: its `num_children` (field 5), if set.
    fn schema_element(&mut self) -> Result<Option<i64>, IndexError> {
        let mut last = 0;
        let mut children = None;
        while let Some((id, ty)) = self.field(&mut last)? {
            if id == 5 && ty == I32 {
                children = Some(self.zigzag()?);
            } else {
                self.skip(ty, false, 1)?;
            }
        }
        Ok(children)
    }
}

/// Check that the schema in `footer` (a Thrift compact `FileMetaData`) nests at most
/// [`MAX_SCHEMA_DEPTH`] deep. A footer this walk cannot read is an error too (the `parquet`
/// crate would refuse it as well).
pub(crate) fn check_schema_depth(footer: &[u8]) -> Result<(), IndexError> {
    let mut r = Reader { b: footer, pos: 0 };
    let mut last = 0;
    while let Some((id, ty)) = r.field(&mut last)? {
        if id != 2 || ty != LIST {
            r.skip(ty, false, 0)?;
            continue;
        }
        let (elem, n) = r.list()?;
        if elem != STRUCT && n > 0 {
            return Err(bad("schema is not a list of structs"));
        }
        // Remaining children of each open group, innermost last.
        let mut open: Vec<i64> = Vec::new();
        for _ in 0..n {
            let children = r.schema_element()?;
            if let Some(top) = open.last_mut() {
                *top -= 1;
            }
            match children {
                Some(c) if c > 0 => {
                    open.push(c);
                    if open.len() > MAX_SCHEMA_DEPTH {
                        return Err(IndexError::Corrupt(format!(
                            "schema nested deeper than {MAX_SCHEMA_DEPTH}"
                        )));
                    }
                }
                _ => {}
            }
            while open.last() == Some(&0) {
                open.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A footer whose schema is a root, `groups` nested optional groups and an INT32 leaf.
    pub(crate) fn nested_footer(groups: u64) -> Vec<u8> {
        let mut f = vec![0x15, 0x02, 0x19, 0xFC];
        let mut n = groups + 2;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                f.push(b);
                break;
            }
            f.push(b | 0x80);
        }
        f.extend([0x48, 1, b'r', 0x15, 0x02, 0x00]);
        for _ in 0..groups {
            f.extend([0x35, 0x02, 0x18, 1, b'g', 0x15, 0x02, 0x00]);
        }
        f.extend([0x15, 0x02, 0x25, 0x02, 0x18, 1, b'x', 0x00]);
        f.extend([0x16, 0x00, 0x19, 0x0C, 0x00]);
        f
    }

    #[test]
    fn depth_is_counted() {
        // Root + groups: depth groups + 1.
        assert!(check_schema_depth(&nested_footer(MAX_SCHEMA_DEPTH as u64 - 1)).is_ok());
        assert!(matches!(
            check_schema_depth(&nested_footer(MAX_SCHEMA_DEPTH as u64)),
            Err(IndexError::Corrupt(_))
        ));
        assert!(matches!(
            check_schema_depth(&nested_footer(200_000)),
            Err(IndexError::Corrupt(_))
        ));
        // Cut anywhere: an error or fine, never a panic.
        let f = nested_footer(3);
        for k in 0..f.len() {
            let _ = check_schema_depth(&f[..k]);
        }
    }
}
