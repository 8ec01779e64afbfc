//! A bounds-checked little-endian reader over a byte slice that remembers its offset, so every
//! parse error can name the byte where the input went wrong.

/// Why a read failed; module error types wrap this with their own context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A fixed-size field at `offset` needs `needed` bytes but only `available` remain.
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// The u64 length prefix at `offset` claims `length` bytes but only `available` follow it.
    LengthPastEnd {
        offset: usize,
        length: u64,
        available: usize,
    },
}

pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Reads `data[range]`, with positions (and error offsets) counted from the start of `data`.
    pub(crate) fn over(data: &'a [u8], range: std::ops::Range<usize>) -> Self {
        Self {
            data: &data[..range.end],
            pos: range.start,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.remaining() {
            return Err(ReadError::Truncated {
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads CCF "sized bytes": a u64 LE length then that many bytes. Returns the range of the
    /// bytes within the input, so callers can slice a shared buffer without copying.
    pub(crate) fn sized(&mut self) -> Result<std::ops::Range<usize>, ReadError> {
        let offset = self.pos;
        let length = self.u64()?;
        let available = self.remaining();
        if length > available as u64 {
            return Err(ReadError::LengthPastEnd {
                offset,
                length,
                available,
            });
        }
        let start = self.pos;
        self.pos += length as usize;
        Ok(start..self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_errors_name_offsets() {
        let mut data = vec![7u8];
        data.extend_from_slice(&2u64.to_le_bytes());
        data.extend_from_slice(b"ab");
        let mut c = Cursor::new(&data);
        assert_eq!(c.u8(), Ok(7));
        assert_eq!(c.sized(), Ok(9..11));
        assert!(c.is_empty());

        // Length 2 at offset 1, but only 1 byte follows the 8-byte prefix.
        let mut c = Cursor::new(&data[..10]);
        c.u8().unwrap();
        assert_eq!(
            c.sized(),
            Err(ReadError::LengthPastEnd {
                offset: 1,
                length: 2,
                available: 1
            })
        );

        let mut c = Cursor::new(&data[..3]);
        assert_eq!(
            c.u64(),
            Err(ReadError::Truncated {
                offset: 0,
                needed: 8,
                available: 3
            })
        );

        // A length near u64::MAX must not overflow.
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.push(0);
        let mut c = Cursor::new(&huge);
        assert_eq!(
            c.sized(),
            Err(ReadError::LengthPastEnd {
                offset: 0,
                length: u64::MAX,
                available: 1
            })
        );
    }
}
