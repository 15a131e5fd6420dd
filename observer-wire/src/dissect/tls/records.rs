//! The TLS record layer: splits a direction's bytes into records by their 5-byte headers.
//!
//! The last record may be cut short (the sample or the capture ends inside it): its header still
//! tells its length, which is all the TLS 1.3 client-authentication inference needs.

use super::{TlsError, small_list::SmallList};

/// Bytes of a record header: content type, version, length.
pub const RECORD_HEADER_LEN: usize = 5;

/// Longest record accepted: 2^14 bytes of plaintext plus the 2048 bytes of expansion TLS 1.2
/// allows for ciphertext (RFC 5246 §6.2.3); anything longer is not TLS.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// Most records looked at per direction. A handshake sample holds a few dozen; a stream of
/// thousands of tiny records is not a handshake, and the cap bounds the work on hostile input.
pub const MAX_RECORDS: usize = 512;

/// Content types (RFC 8446 §5.1).
pub mod content {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

/// One record, possibly cut short at the end of the bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record<'a> {
    pub content_type: u8,
    pub version: u16,
    /// The length its header declares.
    pub len: usize,
    /// Offset of the header in the scanned bytes.
    pub offset: usize,
    /// The body bytes present: all `len` of them unless the record is the cut-short last one.
    pub body: &'a [u8],
}

impl Record<'_> {
    /// The whole body is present.
    pub fn is_whole(&self) -> bool {
        self.body.len() == self.len
    }
}

/// How the scanned bytes end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tail {
    /// On a record boundary.
    #[default]
    Boundary,
    /// Inside a record header.
    PartialHeader,
    /// Inside the body of the last record.
    PartialBody,
    /// At a header that is not a TLS record header (or past `MAX_RECORDS`).
    Invalid(TlsError),
}

/// Records of a direction held without a heap list: a handshake direction has a few.
pub const INLINE_RECORDS: usize = 8;

/// The records of one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records<'a> {
    pub records: SmallList<Record<'a>, INLINE_RECORDS>,
    pub tail: Tail,
}

/// Whether a 5-byte prefix is a plausible TLS record header. Only the bytes present are checked,
/// so a shorter prefix answers "plausible so far".
pub fn plausible_header(bytes: &[u8]) -> bool {
    let ok_type = |b: u8| (content::CHANGE_CIPHER_SPEC..=content::HEARTBEAT).contains(&b);
    match bytes {
        [] => true,
        [t] => ok_type(*t),
        [t, major] => ok_type(*t) && *major == 3,
        [t, major, minor, ..] => ok_type(*t) && *major == 3 && *minor <= 4,
    }
}

/// Split `bytes` into records.
pub fn scan(bytes: &[u8]) -> Records<'_> {
    let mut records = Records::default();
    scan_into(bytes, &mut records);
    records
}

/// [`scan`] into `out` (empty): the records are written where the caller keeps them, not
/// moved there.
pub fn scan_into<'a>(bytes: &'a [u8], out: &mut Records<'a>) {
    let records = &mut out.records;
    let mut at = 0;
    out.tail = loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break Tail::Boundary;
        }
        if !plausible_header(&rest[..rest.len().min(RECORD_HEADER_LEN)]) {
            break Tail::Invalid(TlsError::BadRecordHeader { offset: at, content_type: rest[0] });
        }
        if rest.len() < RECORD_HEADER_LEN {
            break Tail::PartialHeader;
        }
        if records.len() >= MAX_RECORDS {
            break Tail::Invalid(TlsError::TooManyRecords { cap: MAX_RECORDS });
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len > MAX_RECORD_LEN {
            break Tail::Invalid(TlsError::RecordTooLong { offset: at, len });
        }
        let available = (rest.len() - RECORD_HEADER_LEN).min(len);
        records.push(Record {
            content_type: rest[0],
            version: u16::from_be_bytes([rest[1], rest[2]]),
            len,
            offset: at,
            body: &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + available],
        });
        if available < len {
            break Tail::PartialBody;
        }
        at += RECORD_HEADER_LEN + len;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_on_their_headers_and_the_last_may_be_cut() {
        let bytes = [22, 3, 1, 0, 2, 1, 2, 20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 53, 9, 9];
        let r = scan(&bytes);
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.records[0].body, &[1, 2]);
        assert_eq!(r.records[1].content_type, content::CHANGE_CIPHER_SPEC);
        assert_eq!(r.records[2].len, 53);
        assert_eq!(r.records[2].body, &[9, 9]);
        assert!(!r.records[2].is_whole());
        assert_eq!(r.tail, Tail::PartialBody);
    }

    #[test]
    fn a_cut_header_and_a_bad_header_are_told_apart() {
        assert_eq!(scan(&[22, 3, 3]).tail, Tail::PartialHeader);
        assert!(matches!(scan(b"GET / HTTP/1.1").tail, Tail::Invalid(_)));
        assert!(matches!(scan(&[22, 3, 9, 0, 1]).tail, Tail::Invalid(_)));
        assert!(matches!(scan(&[23, 3, 3, 0xff, 0xff]).tail, Tail::Invalid(TlsError::RecordTooLong { .. })));
        assert_eq!(scan(&[]).tail, Tail::Boundary);
    }

    #[test]
    fn plausibility_checks_only_the_bytes_present() {
        assert!(plausible_header(&[22]));
        assert!(plausible_header(&[22, 3]));
        assert!(!plausible_header(&[22, 4]));
        assert!(!plausible_header(b"G"));
    }
}
