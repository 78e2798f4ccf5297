//! SPDY/3.1, as Kubernetes port-forward speaks it (`portforward.k8s.io`
//! over `Upgrade: SPDY/3.1`, and `SPDY/3.1+portforward.k8s.io` tunnelled
//! in a WebSocket, KEP-4006): frames and header blocks, written from the
//! SPDY/3.1 draft. No crate of a licence devingress can take does SPDY.

mod dictionary;
mod frame;
mod header_block;
mod session;
mod tunnel;

pub use frame::{Codec, Frame, FrameError, MAX_FRAME_LEN, rst, setting};
pub use header_block::Headers;
pub use session::{Session, SessionError, SpdyStream, Transport};
pub use tunnel::{TUNNEL_PROTOCOL, WsBytes, poll_close_ws, read_pending, ws_io};
