//! SPDY/3 header blocks: the name/value list, and the zlib streams (one
//! per direction, for the whole session, primed with the SPDY dictionary)
//! that carry them.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::FrameError;
use super::dictionary::dictionary;

/// The headers of a stream, names in lower case, in the order sent.
pub type Headers = Vec<(String, String)>;

/// The most a header block may inflate to: port-forward headers are a few
/// dozen bytes, and a peer must not make us allocate without bound.
const MAX_INFLATED: usize = 256 * 1024;

/// The compressing side (frames we send).
pub struct Deflater {
    z: Compress,
    primed: bool,
}

impl Deflater {
    /// A fresh compression context.
    pub fn new() -> Self {
        Deflater { z: Compress::new(Compression::default(), true), primed: false }
    }

    /// Appends the compressed header block of `headers` to `out`: the
    /// count, then each name and value with 32-bit lengths, deflated and
    /// sync-flushed so that the peer can inflate it at once.
    pub fn encode(&mut self, headers: &[(String, String)], out: &mut Vec<u8>) {
        if !self.primed {
            self.z.set_dictionary(dictionary()).expect("a fresh zlib stream takes a dictionary");
            self.primed = true;
        }
        let mut plain = Vec::with_capacity(4 + headers.iter().map(|(n, v)| 8 + n.len() + v.len()).sum::<usize>());
        plain.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            for part in [name.as_bytes(), value.as_bytes()] {
                plain.extend_from_slice(&(part.len() as u32).to_be_bytes());
                plain.extend_from_slice(part);
            }
        }
        let mut input = &plain[..];
        loop {
            out.reserve(input.len() + 64);
            let before = self.z.total_in();
            self.z.compress_vec(input, out, FlushCompress::Sync).expect("deflate into a vector");
            input = &input[(self.z.total_in() - before) as usize..];
            // Done once all input is taken and the flush had room to finish.
            if input.is_empty() && out.len() < out.capacity() {
                return;
            }
        }
    }
}

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

/// The inflating side (frames we receive).
pub struct Inflater {
    z: Decompress,
}

impl Inflater {
    /// A fresh decompression context.
    pub fn new() -> Self {
        Inflater { z: Decompress::new(true) }
    }

    /// Inflates one header block and reads its names and values.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, FrameError> {
        let mut plain = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        while !input.is_empty() {
            if plain.len() == plain.capacity() {
                if plain.len() >= MAX_INFLATED {
                    return Err(FrameError::HeaderBlock("inflates to more than 256 KiB"));
                }
                plain.reserve(plain.len().max(256));
            }
            let before = self.z.total_in();
            match self.z.decompress_vec(input, &mut plain, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => return Err(FrameError::HeaderBlock("the zlib stream ended")),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|_| FrameError::HeaderBlock("wrong zlib dictionary"))?;
                }
                Err(_) => return Err(FrameError::HeaderBlock("not a zlib stream")),
            }
            input = &input[(self.z.total_in() - before) as usize..];
        }
        parse_pairs(&plain)
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads the count and the length-prefixed names and values.
fn parse_pairs(mut b: &[u8]) -> Result<Headers, FrameError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
        if b.len() < n {
            return Err(FrameError::HeaderBlock("cut short"));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn length(b: &mut &[u8]) -> Result<usize, FrameError> {
        Ok(u32::from_be_bytes(take(b, 4)?.try_into().expect("4 bytes")) as usize)
    }
    let count = length(&mut b)?;
    // Each pair takes at least 8 bytes: a count beyond that is a lie.
    if count > b.len() / 8 {
        return Err(FrameError::HeaderBlock("more pairs than bytes"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let n = length(&mut b)?;
        let name = take(&mut b, n)?;
        let n = length(&mut b)?;
        let value = take(&mut b, n)?;
        if name.is_empty() {
            return Err(FrameError::HeaderBlock("an empty header name"));
        }
        let name = std::str::from_utf8(name).map_err(|_| FrameError::HeaderBlock("a header name is not UTF-8"))?;
        let value = String::from_utf8_lossy(value).into_owned();
        headers.push((name.to_ascii_lowercase(), value));
    }
    if !b.is_empty() {
        return Err(FrameError::HeaderBlock("bytes after the last pair"));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn blocks_round_trip_through_one_session_each_way() {
        let mut d = Deflater::new();
        let mut i = Inflater::new();
        for request in 0..50 {
            let sent = h(&[("streamtype", "data"), ("port", "8080"), ("requestid", &request.to_string())]);
            let mut block = Vec::new();
            d.encode(&sent, &mut block);
            assert_eq!(i.decode(&block).unwrap(), sent);
        }
        // An empty block (a SYN_REPLY with no headers) works too.
        let mut block = Vec::new();
        d.encode(&[], &mut block);
        assert_eq!(i.decode(&block).unwrap(), Vec::new());
    }

    #[test]
    fn the_zlib_stream_names_the_spdy_dictionary() {
        let mut block = Vec::new();
        Deflater::new().encode(&h(&[("port", "80")]), &mut block);
        // CMF/FLG with FDICT set, then DICTID: the Adler-32 of the dictionary.
        assert_eq!(block[1] & 0x20, 0x20, "{block:x?}");
        assert_eq!(&block[2..6], &0xe3c6_a7c2u32.to_be_bytes());
    }

    #[test]
    fn a_later_block_depends_on_the_earlier_ones() {
        // One zlib stream per direction: a receiver that missed a block
        // cannot read the next, which is why a session is one stream.
        let mut d = Deflater::new();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        d.encode(&h(&[("streamtype", "error"), ("port", "8080")]), &mut first);
        d.encode(&h(&[("streamtype", "error"), ("port", "8080")]), &mut second);
        assert!(second.len() < first.len(), "the repeat is shorter: {} vs {}", second.len(), first.len());
        assert!(Inflater::new().decode(&second).is_err());
    }

    #[test]
    fn malformed_blocks_are_errors() {
        assert!(matches!(Inflater::new().decode(b"not zlib at all"), Err(FrameError::HeaderBlock(_))));
        // A count promising more pairs than there are bytes.
        assert!(parse_pairs(&[0, 0, 0, 9, 0, 0, 0, 1, b'a', 0, 0, 0, 0]).is_err());
        assert!(parse_pairs(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err(), "empty name");
        assert!(parse_pairs(&[0, 0, 0, 1, 0, 0, 0, 5, b'a']).is_err(), "cut short");
        assert_eq!(parse_pairs(&[0, 0, 0, 1, 0, 0, 0, 1, b'A', 0, 0, 0, 1, b'x']).unwrap(), h(&[("a", "x")]));
    }
}
