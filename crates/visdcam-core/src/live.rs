//! The live-frame wire format between a recorder (`seg-cam`) and `visdcam web`: on a unix
//! stream socket, the recorder writes each camera frame as a 16-byte header followed by the
//! JPEG bytes exactly as the camera sent them. The header is `VLF1`, the frame's arrival time
//! (milliseconds since the Unix epoch, u64 little-endian) and the JPEG's length (u32
//! little-endian). Right after a client connects it gets the last frame received (if any), so
//! a snapshot needs no wait and a camera that is down shows its last picture and its age.

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 16;
/// The header's first four bytes.
pub const MAGIC: &[u8; 4] = b"VLF1";
/// Largest frame accepted from the socket: an UXGA JPEG at the firmware's best quality is
/// well under 1 MiB; more means the stream is not what we think.
pub const MAX_FRAME: u32 = 8 * 1024 * 1024;

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// When the recorder received the frame, ms since the Unix epoch.
    pub wall_ms: u64,
    /// The JPEG's length in bytes.
    pub len: u32,
}

impl FrameHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(MAGIC);
        h[4..12].copy_from_slice(&self.wall_ms.to_le_bytes());
        h[12..].copy_from_slice(&self.len.to_le_bytes());
        h
    }

    /// Reads a header; the error says what is wrong.
    pub fn decode(h: &[u8; HEADER_LEN]) -> Result<FrameHeader, String> {
        if &h[..4] != MAGIC {
            return Err("not a live-frame header (no VLF1)".into());
        }
        let wall_ms = u64::from_le_bytes(h[4..12].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(h[12..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(format!("frame of {len} bytes is larger than {MAX_FRAME}"));
        }
        Ok(FrameHeader { wall_ms, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_garbage_is_refused() {
        let h = FrameHeader {
            wall_ms: 1_764_748_800_123,
            len: 48_213,
        };
        assert_eq!(FrameHeader::decode(&h.encode()), Ok(h));
        let mut bad = h.encode();
        bad[0] = b'X';
        assert!(FrameHeader::decode(&bad).unwrap_err().contains("VLF1"));
        let huge = FrameHeader {
            wall_ms: 0,
            len: MAX_FRAME + 1,
        };
        assert!(FrameHeader::decode(&huge.encode())
            .unwrap_err()
            .contains("larger"));
    }
}
