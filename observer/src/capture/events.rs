//! Decoding of ring buffer records into typed kernel events. Pure: bytes in, values out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use observer_common::{CloseEvent, EventHeader, OpenEvent, SAMPLE_CHUNK, SampleEvent, event_kind};

/// A decoded ring buffer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent<'a> {
    Open(OpenEvent),
    Sample { cookie: u64, direction: u32, offset: u32, segment_len: u32, data: &'a [u8] },
    Close(CloseEvent),
}

/// Why a record could not be decoded. Each is counted (`observer_capture_lost_total{stage="decode"}`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The record is shorter than its kind requires.
    #[error("ring buffer record of {len} bytes is too short for kind {kind}")]
    Short { kind: u32, len: usize },
    /// The kind field holds no known value.
    #[error("ring buffer record has unknown kind {0}")]
    UnknownKind(u32),
    /// A sample claims more bytes than a record carries.
    #[error("sample claims {0} bytes, more than a record holds")]
    SampleLength(u32),
}

fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length is checked above; T is a repr(C) ABI type from observer-common for which
    // every bit pattern is valid, and read_unaligned imposes no alignment requirement.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decode one record.
pub fn decode(bytes: &[u8]) -> Result<KernelEvent<'_>, DecodeError> {
    let header: EventHeader = read(bytes).ok_or(DecodeError::Short { kind: 0, len: bytes.len() })?;
    let short = || DecodeError::Short { kind: header.kind, len: bytes.len() };
    match header.kind {
        event_kind::OPEN => Ok(KernelEvent::Open(read(bytes).ok_or_else(short)?)),
        event_kind::CLOSE => Ok(KernelEvent::Close(read(bytes).ok_or_else(short)?)),
        event_kind::SAMPLE => {
            let data_at = std::mem::offset_of!(SampleEvent, data);
            let fields: [u32; 4] = read(bytes.get(size_of::<EventHeader>()..).ok_or_else(short)?).ok_or_else(short)?;
            let [direction, offset, len, segment_len] = fields;
            if len as usize > SAMPLE_CHUNK {
                return Err(DecodeError::SampleLength(len));
            }
            let data = bytes.get(data_at..data_at + len as usize).ok_or_else(short)?;
            Ok(KernelEvent::Sample { cookie: header.cookie, direction, offset, segment_len, data })
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

const AF_INET: u32 = 2;

/// The socket's local and remote addresses from an open event.
pub fn addresses(open: &OpenEvent) -> (SocketAddr, SocketAddr) {
    let ip = |raw: &[u8; 16]| -> IpAddr {
        if open.family == AF_INET {
            IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
        } else {
            // A v4-mapped address (dual-stack socket talking IPv4) is shown as IPv4.
            IpAddr::V6(Ipv6Addr::from(*raw)).to_canonical()
        }
    };
    (SocketAddr::new(ip(&open.local_addr), open.local_port), SocketAddr::new(ip(&open.remote_addr), open.remote_port))
}

/// `comm` up to its NUL.
pub fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use observer_common::{LARGE_SAMPLE, Owner, SMALL_SAMPLE, SampleRecord, SmallSampleEvent, role};

    use super::*;

    fn as_bytes<T>(value: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a repr(C) value for the test.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn header(kind: u32) -> EventHeader {
        EventHeader { kind, _pad: 0, cookie: 42, ktime_ns: 7 }
    }

    #[test]
    fn open_events_decode_with_their_addresses() {
        let mut open = OpenEvent {
            header: header(event_kind::OPEN),
            netns_cookie: 1,
            owner: Owner { pid: 1, uid: 0, gid: 0, known: 1, cgroup_id: 3, comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0" },
            family: 10,
            role: role::ACTIVE,
            local_addr: [0; 16],
            remote_addr: Ipv6Addr::LOCALHOST.octets(),
            local_port: 40_000,
            remote_port: 443,
            _pad: 0,
            peer_cookie: 0,
        };
        open.local_addr = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets();
        let bytes = as_bytes(&open);
        let KernelEvent::Open(decoded) = decode(&bytes).expect("decodes") else { panic!("not an open") };
        let (local, remote) = addresses(&decoded);
        assert_eq!(local.to_string(), "10.0.0.1:40000");
        assert_eq!(remote.to_string(), "[::1]:443");
        assert_eq!(comm(&decoded.owner.comm), "curl");
    }

    #[test]
    fn samples_carry_only_their_valid_bytes() {
        let mut sample = SampleEvent {
            header: header(event_kind::SAMPLE),
            direction: 1,
            offset: 1024,
            len: 3,
            segment_len: 1500,
            data: [0; SAMPLE_CHUNK],
        };
        sample.data[..3].copy_from_slice(b"abc");
        let bytes = as_bytes(&sample);
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(
            decoded,
            KernelEvent::Sample { cookie: 42, direction: 1, offset: 1024, segment_len: 1500, data: b"abc" }
        );
    }

    #[test]
    fn a_small_record_decodes_like_a_full_one_and_its_length_is_checked() {
        let mut small = SmallSampleEvent {
            header: header(event_kind::SAMPLE),
            direction: 0,
            offset: 0,
            len: 5,
            segment_len: 5,
            data: [0; SMALL_SAMPLE],
        };
        small.data[..5].copy_from_slice(b"GET /");
        let bytes = as_bytes(&small);
        assert_eq!(bytes.len(), 24 + 16 + SMALL_SAMPLE);
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(
            decoded,
            KernelEvent::Sample { cookie: 42, direction: 0, offset: 0, segment_len: 5, data: b"GET /" }
        );
        // A small record claiming more than it holds is short, never read past its end.
        small.len = SMALL_SAMPLE as u32 + 1;
        assert!(matches!(decode(&as_bytes(&small)), Err(DecodeError::Short { .. })));
    }

    #[test]
    fn a_whole_segment_sample_is_one_record() {
        // A 1200-byte segment (a loopback HTTP response, a ServerHello flight) comes in one
        // record of the 2 KiB class, not split at 1 KiB.
        let mut large = SampleRecord::<LARGE_SAMPLE> {
            header: header(event_kind::SAMPLE),
            direction: 1,
            offset: 0,
            len: 1200,
            segment_len: 1200,
            data: [b'r'; LARGE_SAMPLE],
        };
        let bytes = as_bytes(&large);
        let decoded = decode(&bytes).expect("decodes");
        let KernelEvent::Sample { data, segment_len, .. } = decoded else { panic!("not a sample") };
        assert_eq!((data.len(), segment_len), (1200, 1200));
        // A claim past the largest class is refused even when the bytes are there.
        large.len = SAMPLE_CHUNK as u32 + 1;
        let mut bytes = as_bytes(&large);
        bytes.resize(24 + 16 + SAMPLE_CHUNK + 1, 0);
        assert_eq!(decode(&bytes), Err(DecodeError::SampleLength(SAMPLE_CHUNK as u32 + 1)));
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        assert_eq!(decode(&[1, 2]), Err(DecodeError::Short { kind: 0, len: 2 }));
        assert_eq!(decode(&as_bytes(&header(9))), Err(DecodeError::UnknownKind(9)));
        assert!(matches!(decode(&as_bytes(&header(event_kind::OPEN))), Err(DecodeError::Short { .. })));
        let mut bad = SampleEvent {
            header: header(event_kind::SAMPLE),
            direction: 1,
            offset: 0,
            len: SAMPLE_CHUNK as u32 + 1,
            segment_len: 0,
            data: [0; SAMPLE_CHUNK],
        };
        assert_eq!(decode(&as_bytes(&bad)), Err(DecodeError::SampleLength(SAMPLE_CHUNK as u32 + 1)));
        bad.len = 10;
        assert!(matches!(decode(&as_bytes(&bad)[..40]), Err(DecodeError::Short { .. })));
    }
}
