//! Where a chunked body ends (RFC 9112 section 7.1), scanned as it streams through.

/// A chunked body that does not follow RFC 9112 section 7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { digits: u8 },
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Finds the end of a chunked body as it streams past, without changing it: the bytes are
/// forwarded as they are, so the client sees the upstream's chunks and trailers.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: Chunk,
    size: u64,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self {
            state: Chunk::Size { digits: 0 },
            size: 0,
        }
    }
}

impl ChunkedScanner {
    pub fn done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Consume `buf`; returns how many of its bytes belong to the body (fewer than `buf.len()`
    /// only when the body ends inside it).
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            self.state = match self.state {
                Chunk::Done => return Ok(i),
                Chunk::Size { digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        if digits >= 15 {
                            return Err(BadChunk);
                        }
                        self.size = self.size * 16 + u64::from(d);
                        Chunk::Size { digits: digits + 1 }
                    } else if digits == 0 {
                        return Err(BadChunk);
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        Chunk::Extension
                    } else if b == b'\r' {
                        Chunk::SizeLf
                    } else {
                        return Err(BadChunk);
                    }
                }
                Chunk::Extension => match b {
                    b'\r' => Chunk::SizeLf,
                    b'\t' => Chunk::Extension,
                    0..=0x1f | 0x7f => return Err(BadChunk),
                    _ => Chunk::Extension,
                },
                Chunk::SizeLf if b == b'\n' => {
                    if self.size == 0 {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data
                    }
                }
                Chunk::Data => {
                    let take =
                        (buf.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = Chunk::DataCr;
                    }
                    continue;
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size { digits: 0 },
                Chunk::TrailerStart if b == b'\r' => Chunk::EndLf,
                Chunk::TrailerStart | Chunk::TrailerLine => match b {
                    b'\r' => Chunk::TrailerLf,
                    b'\n' => return Err(BadChunk),
                    _ => Chunk::TrailerLine,
                },
                Chunk::TrailerLf if b == b'\n' => Chunk::TrailerStart,
                Chunk::EndLf if b == b'\n' => Chunk::Done,
                _ => return Err(BadChunk),
            };
            i += 1;
        }
        Ok(i)
    }
}
