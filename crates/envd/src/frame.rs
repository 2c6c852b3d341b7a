//! The frame format of [`runtools_protocol::envd`]: `len: u32 BE | stream: u32 BE | kind: u8 |
//! payload`. Owns encoding, decoding (from a buffer and from an async reader) and the errors a
//! malformed frame produces. Both envd and the host-side client use it.

use bytes::{BufMut, Bytes, BytesMut};
use runtools_protocol::envd::{FrameKind, MAX_FRAME_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of `len` itself.
const LEN_BYTES: usize = 4;
/// Bytes `len` counts before the payload: the stream id and the kind.
const HEADER_AFTER_LEN: u32 = 5;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stream: u32,
    pub kind: FrameKind,
    pub payload: Bytes,
}

impl Frame {
    pub fn new(stream: u32, kind: FrameKind, payload: impl Into<Bytes>) -> Self {
        Self { stream, kind, payload: payload.into() }
    }

    /// A frame whose payload is `value` as JSON; fails if that does not fit in one frame.
    pub fn json(stream: u32, kind: FrameKind, value: &impl serde::Serialize) -> Result<Self, FrameError> {
        let payload = serde_json::to_vec(value).map_err(|error| FrameError::Json(error.to_string()))?;
        declared_len(payload.len())?;
        Ok(Self::new(stream, kind, payload))
    }

    /// Encoded size of the frame, `len` included.
    pub fn encoded_len(&self) -> usize {
        LEN_BYTES + HEADER_AFTER_LEN as usize + self.payload.len()
    }

    /// Appends the encoded frame to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        let len = declared_len(self.payload.len())?;
        out.reserve(self.encoded_len());
        out.put_u32(len);
        out.put_u32(self.stream);
        out.put_u8(self.kind as u8);
        out.put_slice(&self.payload);
        Ok(())
    }

    /// The encoded frame.
    pub fn encode(&self) -> Result<Bytes, FrameError> {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out.freeze())
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame declares length {len}, shorter than its 5-byte header")]
    TooShort { len: u32 },
    #[error("frame declares length {len}, more than the maximum {MAX_FRAME_LEN}")]
    TooLong { len: u64 },
    #[error("frame on stream {stream} has unknown kind {kind}")]
    UnknownKind { stream: u32, kind: u8 },
    #[error("connection ended in the middle of a frame")]
    Truncated,
    #[error("frame payload is not valid JSON for its kind: {0}")]
    Json(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("i/o error on the envd connection: {0}")]
    Io(#[from] std::io::Error),
}

fn declared_len(payload_len: usize) -> Result<u32, FrameError> {
    let len = payload_len as u64 + u64::from(HEADER_AFTER_LEN);
    if len > u64::from(MAX_FRAME_LEN) {
        return Err(FrameError::TooLong { len });
    }
    Ok(len as u32)
}

fn check_len(len: u32) -> Result<(), FrameError> {
    if len < HEADER_AFTER_LEN {
        return Err(FrameError::TooShort { len });
    }
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong { len: u64::from(len) });
    }
    Ok(())
}

fn parse_body(body: Bytes) -> Result<Frame, FrameError> {
    // `body` is `stream | kind | payload`; check_len guaranteed at least 5 bytes.
    let Some((head, _)) = body.split_first_chunk::<5>() else {
        return Err(FrameError::Truncated);
    };
    let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = FrameKind::from_u8(head[4]).ok_or(FrameError::UnknownKind { stream, kind: head[4] })?;
    Ok(Frame { stream, kind, payload: body.slice(5..) })
}

/// Decodes one frame from the front of `buf`. `Ok(None)` means more bytes are needed; otherwise
/// returns the frame and how many bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(len_bytes) = buf.first_chunk::<LEN_BYTES>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*len_bytes);
    check_len(len)?;
    let total = LEN_BYTES + len as usize;
    let Some(frame_bytes) = buf.get(LEN_BYTES..total) else {
        return Ok(None);
    };
    let frame = parse_body(Bytes::copy_from_slice(frame_bytes))?;
    Ok(Some((frame, total)))
}

/// Reads one frame. `Ok(None)` is a clean end of the connection (at a frame boundary).
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(reader: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut len_bytes = [0u8; LEN_BYTES];
    let mut filled = 0;
    while filled < LEN_BYTES {
        let read = reader.read(&mut len_bytes[filled..]).await?;
        if read == 0 {
            return if filled == 0 { Ok(None) } else { Err(FrameError::Truncated) };
        }
        filled += read;
    }
    let len = u32::from_be_bytes(len_bytes);
    check_len(len)?;
    let mut body = BytesMut::zeroed(len as usize);
    reader.read_exact(&mut body).await.map_err(|error| match error.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(error),
    })?;
    parse_body(body.freeze()).map(Some)
}

/// Writes one frame (without flushing).
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(writer: &mut W, frame: &Frame) -> Result<(), FrameError> {
    let len = declared_len(frame.payload.len())?;
    let mut header = [0u8; 9];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4..8].copy_from_slice(&frame.stream.to_be_bytes());
    header[8] = frame.kind as u8;
    writer.write_all(&header).await?;
    writer.write_all(&frame.payload).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;

    fn kind_strategy() -> impl Strategy<Value = FrameKind> {
        (1u8..=8).prop_map(|byte| FrameKind::from_u8(byte).unwrap())
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
            let mut reader = bytes.as_slice();
            let _ = block_on(read_frame(&mut reader));
        }

        #[test]
        fn random_bodies_behind_a_plausible_length_never_panic(len in 0u32..64, body in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            let _ = decode(&bytes);
            let mut reader = bytes.as_slice();
            let _ = block_on(read_frame(&mut reader));
        }

        #[test]
        fn encode_then_decode_round_trips(stream in any::<u32>(), kind in kind_strategy(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let frame = Frame::new(stream, kind, payload);
            let encoded = frame.encode().unwrap();
            let (decoded, used) = decode(&encoded).unwrap().unwrap();
            prop_assert_eq!(used, encoded.len());
            prop_assert_eq!(&decoded, &frame);
            // A prefix is never a frame.
            prop_assert!(decode(&encoded[..encoded.len() - 1]).unwrap().is_none());

            let mut written = Vec::new();
            block_on(write_frame(&mut written, &frame)).unwrap();
            prop_assert_eq!(&written[..], &encoded[..]);
            let mut reader = written.as_slice();
            let read = block_on(read_frame(&mut reader)).unwrap().unwrap();
            prop_assert_eq!(read, frame);
            prop_assert!(block_on(read_frame(&mut reader)).unwrap().is_none());
        }
    }

    #[test]
    fn rejects_short_long_and_unknown_frames() {
        assert!(matches!(decode(&[0, 0, 0, 4, 0, 0, 0, 1]), Err(FrameError::TooShort { len: 4 })));
        let too_long = (MAX_FRAME_LEN + 1).to_be_bytes();
        assert!(matches!(decode(&too_long), Err(FrameError::TooLong { .. })));
        assert!(matches!(decode(&[0, 0, 0, 5, 0, 0, 0, 7, 9]), Err(FrameError::UnknownKind { stream: 7, kind: 9 })));
        assert!(matches!(decode(&[0, 0, 0, 5, 0, 0, 0, 7, 0]), Err(FrameError::UnknownKind { kind: 0, .. })));
        let mut truncated: &[u8] = &[0, 0, 0, 9, 0, 0];
        assert!(matches!(block_on(read_frame(&mut truncated)), Err(FrameError::Truncated)));
        let oversized = Frame::new(1, FrameKind::Data, vec![0u8; MAX_FRAME_LEN as usize]);
        assert!(matches!(oversized.encode(), Err(FrameError::TooLong { .. })));
        let largest = Frame::new(1, FrameKind::Data, vec![0u8; MAX_FRAME_LEN as usize - 5]);
        assert_eq!(decode(&largest.encode().unwrap()).unwrap().unwrap().0, largest);
    }
}
