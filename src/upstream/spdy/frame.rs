//! SPDY/3.1 frames (the draft's section 2.2 and 2.6), read from and
//! written to a byte buffer. The codec keeps the session's two zlib
//! streams, so one codec serves one session for its whole life.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::header_block::{Deflater, Headers, Inflater};

/// The SPDY version spoken.
const VERSION: u16 = 3;

/// The largest frame the protocol can express (a 24-bit length).
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;

/// FLAG_FIN on data frames and on SYN_STREAM, SYN_REPLY and HEADERS.
const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// FLAG_SETTINGS_CLEAR_SETTINGS on SETTINGS.
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

/// Control frame types.
mod kind {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const SETTINGS: u16 = 4;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    pub const WINDOW_UPDATE: u16 = 9;
}

/// RST_STREAM status codes.
pub mod rst {
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// INVALID_STREAM: a frame for a stream that is not open.
    pub const INVALID_STREAM: u32 = 2;
    /// REFUSED_STREAM: not processed; safe to retry.
    pub const REFUSED_STREAM: u32 = 3;
    /// CANCEL: the sender no longer wants the stream.
    pub const CANCEL: u32 = 5;
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: u32 = 6;
    /// FLOW_CONTROL_ERROR: the peer sent beyond its window.
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    /// STREAM_IN_USE: a SYN_STREAM for an open stream.
    pub const STREAM_IN_USE: u32 = 8;
}

/// SETTINGS ids this crate reads.
pub mod setting {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes of a stream.
    Data {
        /// The stream.
        stream: u32,
        /// The sender's last frame on the stream.
        fin: bool,
        /// The payload.
        data: Bytes,
    },
    /// Opens a stream.
    SynStream {
        /// The new stream's id (odd from the client, even from the server).
        stream: u32,
        /// A stream this one belongs to (server push), or 0.
        associated: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// The opener sends nothing more.
        fin: bool,
        /// The receiver may send nothing.
        unidirectional: bool,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream: u32,
        /// The replier sends nothing more.
        fin: bool,
        /// Headers of the reply.
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream: u32,
        /// Why (see [`rst`]).
        status: u32,
    },
    /// Session settings.
    Settings {
        /// Clear persisted settings.
        clear: bool,
        /// `(flags, id, value)` entries.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A round-trip probe; the receiver echoes one the peer started.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender opens no more streams and takes none above `last_good`.
    GoAway {
        /// The last stream of the receiver's that the sender handled.
        last_good: u32,
        /// 0 OK, 1 PROTOCOL_ERROR, 2 INTERNAL_ERROR.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream: u32,
        /// The sender's last frame on the stream.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// More room in the receiver's window (stream 0: the whole session).
    WindowUpdate {
        /// The stream, or 0.
        stream: u32,
        /// Bytes added.
        delta: u32,
    },
}

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A control frame of another SPDY version.
    #[error("SPDY version {0} is not spoken (3 is)")]
    Version(u16),
    /// A control frame whose length does not fit its type.
    #[error("a {kind} frame of {len} bytes is malformed")]
    Length {
        /// The frame type.
        kind: &'static str,
        /// Its length.
        len: usize,
    },
    /// A frame longer than this side accepts.
    #[error("a frame of {0} bytes is longer than accepted")]
    TooLong(usize),
    /// A header block that cannot be read.
    #[error("malformed header block: {0}")]
    HeaderBlock(&'static str),
}

/// Reads and writes the frames of one session.
pub struct Codec {
    deflater: Deflater,
    inflater: Inflater,
    max_frame: usize,
}

impl Codec {
    /// A codec for a new session, accepting frames up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Codec { deflater: Deflater::new(), inflater: Inflater::new(), max_frame: max_frame.min(MAX_FRAME_LEN) }
    }

    /// Takes one frame off the front of `buf`, or `None` until a whole one
    /// is there. Unknown control frame types are skipped, as the draft says.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            if buf.len() < 8 {
                return Ok(None);
            }
            let len = usize::from(buf[5]) << 16 | usize::from(buf[6]) << 8 | usize::from(buf[7]);
            if len > self.max_frame {
                return Err(FrameError::TooLong(len));
            }
            if buf.len() < 8 + len {
                buf.reserve(8 + len - buf.len());
                return Ok(None);
            }
            let head = buf.split_to(8);
            let body = buf.split_to(len).freeze();
            let flags = head[4];
            if head[0] & 0x80 == 0 {
                let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
                return Ok(Some(Frame::Data { stream, fin: flags & FLAG_FIN != 0, data: body }));
            }
            let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
            if version != VERSION {
                return Err(FrameError::Version(version));
            }
            let kind = u16::from_be_bytes([head[2], head[3]]);
            if let Some(frame) = self.control(kind, flags, body)? {
                return Ok(Some(frame));
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, mut b: Bytes) -> Result<Option<Frame>, FrameError> {
        let len = b.len();
        let bad = |kind| FrameError::Length { kind, len };
        let id = |b: &mut Bytes| b.get_u32() & 0x7fff_ffff;
        let fin = flags & FLAG_FIN != 0;
        Ok(Some(match kind {
            kind::SYN_STREAM if len >= 10 => {
                let stream = id(&mut b);
                let associated = id(&mut b);
                let priority = b.get_u8() >> 5;
                b.advance(1); // the credential slot
                let headers = self.inflater.decode(&b)?;
                let unidirectional = flags & FLAG_UNIDIRECTIONAL != 0;
                Frame::SynStream { stream, associated, priority, fin, unidirectional, headers }
            }
            kind::SYN_STREAM => return Err(bad("SYN_STREAM")),
            kind::SYN_REPLY if len >= 4 => {
                let stream = id(&mut b);
                Frame::SynReply { stream, fin, headers: self.inflater.decode(&b)? }
            }
            kind::SYN_REPLY => return Err(bad("SYN_REPLY")),
            kind::HEADERS if len >= 4 => {
                let stream = id(&mut b);
                Frame::Headers { stream, fin, headers: self.inflater.decode(&b)? }
            }
            kind::HEADERS => return Err(bad("HEADERS")),
            kind::RST_STREAM if len == 8 => Frame::RstStream { stream: id(&mut b), status: b.get_u32() },
            kind::RST_STREAM => return Err(bad("RST_STREAM")),
            kind::SETTINGS if len >= 4 => {
                let n = b.get_u32() as usize;
                if b.len() != n.saturating_mul(8) {
                    return Err(bad("SETTINGS"));
                }
                let entries = (0..n)
                    .map(|_| {
                        let word = b.get_u32();
                        ((word >> 24) as u8, word & 0x00ff_ffff, b.get_u32())
                    })
                    .collect();
                Frame::Settings { clear: flags & FLAG_CLEAR_SETTINGS != 0, entries }
            }
            kind::SETTINGS => return Err(bad("SETTINGS")),
            kind::PING if len == 4 => Frame::Ping { id: b.get_u32() },
            kind::PING => return Err(bad("PING")),
            kind::GOAWAY if len == 8 => Frame::GoAway { last_good: id(&mut b), status: b.get_u32() },
            kind::GOAWAY => return Err(bad("GOAWAY")),
            kind::WINDOW_UPDATE if len == 8 => Frame::WindowUpdate { stream: id(&mut b), delta: id(&mut b) },
            kind::WINDOW_UPDATE => return Err(bad("WINDOW_UPDATE")),
            _ => return Ok(None),
        }))
    }

    /// Appends a data frame carrying `data` to `out`, without a [`Frame`]
    /// in between (the hot path: one copy, into the output buffer).
    pub fn encode_data(stream: u32, fin: bool, data: &[u8], out: &mut BytesMut) {
        assert!(data.len() <= MAX_FRAME_LEN, "data frame too long");
        out.reserve(8 + data.len());
        out.put_u32(stream & 0x7fff_ffff);
        put_flags_len(out, u8::from(fin) * FLAG_FIN, data.len());
        out.put_slice(data);
    }

    /// Appends `frame` to `out`. Data longer than a frame can carry is the
    /// caller's to split ([`MAX_FRAME_LEN`]).
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) {
        match frame {
            Frame::Data { stream, fin, data } => Self::encode_data(*stream, *fin, data, out),
            Frame::SynStream { stream, associated, priority, fin, unidirectional, headers } => {
                let mut body = Vec::with_capacity(64);
                body.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                body.extend_from_slice(&(associated & 0x7fff_ffff).to_be_bytes());
                body.extend_from_slice(&[(priority & 7) << 5, 0]);
                self.deflater.encode(headers, &mut body);
                let flags = (u8::from(*fin) * FLAG_FIN) | (u8::from(*unidirectional) * FLAG_UNIDIRECTIONAL);
                put_control(out, kind::SYN_STREAM, flags, &body);
            }
            Frame::SynReply { stream, fin, headers } | Frame::Headers { stream, fin, headers } => {
                let mut body = Vec::with_capacity(32);
                body.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                self.deflater.encode(headers, &mut body);
                let kind = if matches!(frame, Frame::SynReply { .. }) { kind::SYN_REPLY } else { kind::HEADERS };
                put_control(out, kind, u8::from(*fin) * FLAG_FIN, &body);
            }
            Frame::RstStream { stream, status } => {
                put_control(out, kind::RST_STREAM, 0, &pair(*stream & 0x7fff_ffff, *status));
            }
            Frame::Settings { clear, entries } => {
                let mut body = Vec::with_capacity(4 + 8 * entries.len());
                body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for (flags, id, value) in entries {
                    body.extend_from_slice(&(u32::from(*flags) << 24 | (id & 0x00ff_ffff)).to_be_bytes());
                    body.extend_from_slice(&value.to_be_bytes());
                }
                put_control(out, kind::SETTINGS, u8::from(*clear) * FLAG_CLEAR_SETTINGS, &body);
            }
            Frame::Ping { id } => put_control(out, kind::PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                put_control(out, kind::GOAWAY, 0, &pair(*last_good & 0x7fff_ffff, *status));
            }
            Frame::WindowUpdate { stream, delta } => {
                put_control(out, kind::WINDOW_UPDATE, 0, &pair(*stream & 0x7fff_ffff, *delta & 0x7fff_ffff));
            }
        }
    }
}

fn pair(a: u32, b: u32) -> [u8; 8] {
    let mut out = [0; 8];
    out[..4].copy_from_slice(&a.to_be_bytes());
    out[4..].copy_from_slice(&b.to_be_bytes());
    out
}

fn put_flags_len(out: &mut BytesMut, flags: u8, len: usize) {
    out.put_u8(flags);
    out.put_slice(&(len as u32).to_be_bytes()[1..]);
}

fn put_control(out: &mut BytesMut, kind: u16, flags: u8, body: &[u8]) {
    out.reserve(8 + body.len());
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    put_flags_len(out, flags, body.len());
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn every_kind() -> Vec<Frame> {
        vec![
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: headers(&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply { stream: 1, fin: false, headers: Vec::new() },
            Frame::Data { stream: 3, fin: false, data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n") },
            Frame::Data { stream: 3, fin: true, data: Bytes::new() },
            Frame::Headers { stream: 3, fin: true, headers: headers(&[("x", "y")]) },
            Frame::RstStream { stream: 3, status: rst::CANCEL },
            Frame::Settings { clear: false, entries: vec![(0, setting::INITIAL_WINDOW_SIZE, 1 << 20)] },
            Frame::Ping { id: 1 },
            Frame::GoAway { last_good: 5, status: 0 },
            Frame::WindowUpdate { stream: 0, delta: 65536 },
        ]
    }

    #[test]
    fn every_frame_kind_round_trips_in_one_session() {
        let (mut tx, mut rx) = (Codec::new(MAX_FRAME_LEN), Codec::new(MAX_FRAME_LEN));
        let mut wire = BytesMut::new();
        for f in every_kind() {
            tx.encode(&f, &mut wire);
        }
        for f in every_kind() {
            assert_eq!(rx.decode(&mut wire).unwrap(), Some(f));
        }
        assert_eq!(rx.decode(&mut wire).unwrap(), None);
    }

    #[test]
    fn frames_split_anywhere_are_read_once_whole() {
        let mut tx = Codec::new(MAX_FRAME_LEN);
        let mut wire = BytesMut::new();
        for f in every_kind() {
            tx.encode(&f, &mut wire);
        }
        let mut rx = Codec::new(MAX_FRAME_LEN);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.put_u8(byte);
            while let Some(f) = rx.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, every_kind());
    }

    #[test]
    fn the_wire_layout_is_the_drafts() {
        let mut out = BytesMut::new();
        Codec::new(MAX_FRAME_LEN).encode(&Frame::Ping { id: 7 }, &mut out);
        assert_eq!(&out[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7]);
        out.clear();
        Codec::new(MAX_FRAME_LEN)
            .encode(&Frame::Data { stream: 5, fin: true, data: Bytes::from_static(b"hi") }, &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 5, 1, 0, 0, 2, b'h', b'i']);
        out.clear();
        Codec::new(MAX_FRAME_LEN).encode(&Frame::WindowUpdate { stream: 1, delta: 0x1_0000 }, &mut out);
        assert_eq!(&out[..], &[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 0]);
    }

    #[test]
    fn unknown_control_frames_are_skipped() {
        // A control frame of type 0x0a (CREDENTIAL in an older draft), then a PING.
        let mut wire = BytesMut::from(&[0x80, 3, 0, 0x0a, 0, 0, 0, 2, 9, 9][..]);
        Codec::new(MAX_FRAME_LEN).encode(&Frame::Ping { id: 2 }, &mut wire);
        assert_eq!(Codec::new(MAX_FRAME_LEN).decode(&mut wire).unwrap(), Some(Frame::Ping { id: 2 }));
    }

    #[test]
    fn malformed_frames_are_errors_that_say_which() {
        let mut rx = Codec::new(MAX_FRAME_LEN);
        let mut wire = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert_eq!(rx.decode(&mut wire), Err(FrameError::Version(2)));
        let mut wire = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 1][..]);
        assert_eq!(rx.decode(&mut wire), Err(FrameError::Length { kind: "PING", len: 3 }));
        let mut wire = BytesMut::from(&[0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 2][..]);
        assert_eq!(rx.decode(&mut wire), Err(FrameError::Length { kind: "SETTINGS", len: 4 }));
        let mut small = Codec::new(1024);
        let mut wire = BytesMut::from(&[0, 0, 0, 1, 0, 0x10, 0, 0][..]);
        assert_eq!(small.decode(&mut wire), Err(FrameError::TooLong(0x10_0000)));
        // A SYN_STREAM whose header block is not zlib.
        let mut wire = BytesMut::from(&[0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2][..]);
        assert!(matches!(rx.decode(&mut wire), Err(FrameError::HeaderBlock(_))));
    }
}
