//! Link, IP and TCP headers of one captured frame, down to a TCP segment. Checksums are not
//! verified (loopback and offloaded captures carry unfinished ones); lengths are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Link types this source reads (the `LINKTYPE_*` registry of tcpdump.org).
pub mod linktype {
    /// BSD loopback: a 4-byte address family in host byte order.
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    /// Raw IP; 12 and 14 are the historical DLT_RAW numbers some systems still write.
    pub const RAW: i32 = 101;
    pub const RAW_DLT12: i32 = 12;
    pub const RAW_DLT14: i32 = 14;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 2] = [0x8100, 0x88a8];
/// VLAN tags skipped at most (QinQ).
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers skipped at most before giving up.
const MAX_IPV6_EXTENSIONS: usize = 8;
const IPPROTO_TCP: u8 = 6;

/// TCP flags.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// A TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: &'a [u8],
    /// The capture cut the payload short (snap length).
    pub truncated: bool,
}

/// Why a frame gave no segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not IP, or IP but not TCP: not a damage, just not ours.
    #[error("not a TCP packet")]
    NotTcp,
    /// An IP fragment: fragments are not reassembled.
    #[error("IP fragment")]
    Fragment,
    /// A link type this source does not read.
    #[error("unsupported link type {0}")]
    UnsupportedLink(i32),
    /// Headers cut short or lengths that do not add up.
    #[error("damaged {layer} header")]
    Damaged { layer: &'static str },
}

fn damaged(layer: &'static str) -> FrameError {
    FrameError::Damaged { layer }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decode a frame of the given link type down to its TCP segment.
pub fn decode(link: i32, frame: &[u8]) -> Result<Segment<'_>, FrameError> {
    let ip = match link {
        linktype::ETHERNET => {
            let mut ethertype = be16(frame, 12).ok_or(damaged("ethernet"))?;
            let mut at = 14;
            for _ in 0..MAX_VLAN_TAGS {
                if !ETHERTYPE_VLAN.contains(&ethertype) {
                    break;
                }
                ethertype = be16(frame, at + 2).ok_or(damaged("vlan"))?;
                at += 4;
            }
            match ethertype {
                ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => frame.get(at..).ok_or(damaged("ethernet"))?,
                _ => return Err(FrameError::NotTcp),
            }
        }
        linktype::LINUX_SLL => match be16(frame, 14).ok_or(damaged("sll"))? {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => frame.get(16..).ok_or(damaged("sll"))?,
            _ => return Err(FrameError::NotTcp),
        },
        linktype::LINUX_SLL2 => match be16(frame, 0).ok_or(damaged("sll2"))? {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => frame.get(20..).ok_or(damaged("sll2"))?,
            _ => return Err(FrameError::NotTcp),
        },
        linktype::NULL => frame.get(4..).ok_or(damaged("loopback"))?,
        linktype::RAW | linktype::RAW_DLT12 | linktype::RAW_DLT14 | linktype::IPV4 | linktype::IPV6 => frame,
        other => return Err(FrameError::UnsupportedLink(other)),
    };
    match ip.first().map(|b| b >> 4) {
        Some(4) => ipv4(ip),
        Some(6) => ipv6(ip),
        Some(_) => Err(FrameError::NotTcp),
        None => Err(damaged("ip")),
    }
}

fn ipv4(ip: &[u8]) -> Result<Segment<'_>, FrameError> {
    let header_len = usize::from(ip.first().ok_or(damaged("ipv4"))? & 0x0f) * 4;
    let total = usize::from(be16(ip, 2).ok_or(damaged("ipv4"))?);
    if header_len < 20 || total < header_len || ip.len() < header_len {
        return Err(damaged("ipv4"));
    }
    let fragment = be16(ip, 6).ok_or(damaged("ipv4"))?;
    if fragment & 0x3fff != 0 {
        return Err(FrameError::Fragment); // more-fragments flag or an offset
    }
    if ip[9] != IPPROTO_TCP {
        return Err(FrameError::NotTcp);
    }
    let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    // A frame may carry padding after the IP packet, or be cut short by the snap length.
    let end = total.min(ip.len());
    tcp(src, dst, &ip[header_len..end], total - header_len)
}

fn ipv6(ip: &[u8]) -> Result<Segment<'_>, FrameError> {
    if ip.len() < 40 {
        return Err(damaged("ipv6"));
    }
    let payload_len = usize::from(be16(ip, 4).ok_or(damaged("ipv6"))?);
    let mut next = ip[6];
    let addr = |at: usize| -> Result<IpAddr, FrameError> {
        let b: [u8; 16] = ip.get(at..at + 16).ok_or(damaged("ipv6"))?.try_into().map_err(|_| damaged("ipv6"))?;
        Ok(IpAddr::V6(Ipv6Addr::from(b)))
    };
    let (src, dst) = (addr(8)?, addr(24)?);
    let end = (40 + payload_len).min(ip.len());
    let mut at = 40;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            IPPROTO_TCP => {
                let declared = (40 + payload_len).checked_sub(at).ok_or(damaged("ipv6"))?;
                return tcp(src, dst, ip.get(at..end).ok_or(damaged("ipv6"))?, declared);
            }
            44 => return Err(FrameError::Fragment),
            // Hop-by-hop, routing, destination options: (next, length in 8-byte units - 1).
            0 | 43 | 60 => {
                next = *ip.get(at).ok_or(damaged("ipv6"))?;
                at += (usize::from(*ip.get(at + 1).ok_or(damaged("ipv6"))?) + 1) * 8;
            }
            // Authentication header: length in 4-byte units - 2.
            51 => {
                next = *ip.get(at).ok_or(damaged("ipv6"))?;
                at += (usize::from(*ip.get(at + 1).ok_or(damaged("ipv6"))?) + 2) * 4;
            }
            _ => return Err(FrameError::NotTcp),
        }
    }
    Err(FrameError::NotTcp)
}

/// `bytes` is the TCP segment as captured; `declared` its length according to IP.
fn tcp(src: IpAddr, dst: IpAddr, bytes: &[u8], declared: usize) -> Result<Segment<'_>, FrameError> {
    let header_len = usize::from(bytes.get(12).ok_or(damaged("tcp"))? >> 4) * 4;
    if header_len < 20 || bytes.len() < header_len || declared < header_len {
        return Err(damaged("tcp"));
    }
    let (Some(sport), Some(dport), Some(seq), Some(ack)) =
        (be16(bytes, 0), be16(bytes, 2), be32(bytes, 4), be32(bytes, 8))
    else {
        return Err(damaged("tcp"));
    };
    Ok(Segment {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        seq,
        ack,
        flags: bytes[13],
        payload: &bytes[header_len..],
        truncated: bytes.len() < declared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let total = 20 + 20 + payload.len();
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend([127, 0, 0, 1, 127, 0, 0, 2]);
        p.extend([0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags::ACK, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend(payload);
        p
    }

    #[test]
    fn ethernet_sll_sll2_and_raw_frames_reach_the_same_segment() {
        let ip = ipv4_tcp(b"hello");
        let mut eth = vec![0; 12];
        eth.extend([0x08, 0x00]);
        eth.extend(&ip);
        let mut sll = vec![0; 14];
        sll.extend([0x08, 0x00]);
        sll.extend(&ip);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend([0; 18]);
        sll2.extend(&ip);
        for (link, frame) in [
            (linktype::ETHERNET, &eth),
            (linktype::LINUX_SLL, &sll),
            (linktype::LINUX_SLL2, &sll2),
            (linktype::RAW, &ip),
        ] {
            let s = decode(link, frame).expect("decodes");
            assert_eq!(s.payload, b"hello");
            assert_eq!(s.src, "127.0.0.1:40000".parse().expect("addr"));
            assert_eq!(s.dst.port(), 443);
            assert_eq!(s.seq, 1);
            assert!(!s.truncated);
        }
    }

    #[test]
    fn cut_or_inconsistent_headers_are_damage_and_fragments_are_skipped() {
        let ip = ipv4_tcp(b"hello");
        assert_eq!(decode(linktype::RAW, &ip[..30]), Err(FrameError::Damaged { layer: "tcp" }));
        assert_eq!(decode(linktype::RAW, &ip[..10]), Err(FrameError::Damaged { layer: "ipv4" }));
        let cut = decode(linktype::RAW, &ip[..42]).expect("payload cut by snaplen");
        assert!(cut.truncated);
        let mut frag = ip.clone();
        frag[6] = 0x20; // more fragments
        assert_eq!(decode(linktype::RAW, &frag), Err(FrameError::Fragment));
        assert_eq!(decode(999, &ip), Err(FrameError::UnsupportedLink(999)));
        assert_eq!(decode(linktype::RAW, &[]), Err(FrameError::Damaged { layer: "ip" }));
    }
}
