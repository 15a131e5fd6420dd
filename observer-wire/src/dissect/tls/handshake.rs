//! Handshake messages carried in cleartext handshake records: joins consecutive records (a
//! message may span records) and splits the result into messages by their 4-byte headers.

use std::borrow::Cow;

use super::{
    TlsError,
    records::{Record, content},
    small_list::SmallList,
};

/// Bytes of a handshake message header: type and 24-bit length.
pub const MESSAGE_HEADER_LEN: usize = 4;

/// Most cleartext handshake bytes joined per direction: a sample is at most
/// `legs::MAX_STREAM_BYTES` (16 KiB); a server's certificate flight beyond this is not needed.
pub const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod kind {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    pub const CERTIFICATE_REQUEST: u8 = 13;
    pub const SERVER_HELLO_DONE: u8 = 14;
    pub const CERTIFICATE_VERIFY: u8 = 15;
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    pub const FINISHED: u8 = 20;
}

/// One handshake message; `bytes` includes its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u8,
    pub bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// The body after the header.
    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(MESSAGE_HEADER_LEN..).unwrap_or_default()
    }
}

/// A message whose end is not in the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialMessage<'a> {
    pub kind: u8,
    /// Body length its header declares.
    pub len: usize,
    /// The body bytes present.
    pub body: &'a [u8],
}

/// Messages of a run held without a heap list: a flight has a handful.
pub const INLINE_MESSAGES: usize = 8;

/// The messages of a run of handshake records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Messages<'a> {
    pub whole: SmallList<Message<'a>, INLINE_MESSAGES>,
    /// The last message, cut short (or only its header's first bytes: then `kind` is its type
    /// and `len` 0 if not even the length was present).
    pub partial: Option<PartialMessage<'a>>,
}

/// The handshake bytes of consecutive handshake records from `records[start..]`, and the index of
/// the first record after the run. Borrowed when the run is a single record.
pub fn join<'a>(records: &[Record<'a>], start: usize) -> (Cow<'a, [u8]>, usize) {
    let mut end = start;
    while records.get(end).is_some_and(|r| r.content_type == content::HANDSHAKE) {
        end += 1;
    }
    let run = records.get(start..end).unwrap_or_default();
    let joined = match run {
        [] => Cow::Borrowed(&[][..]),
        [one] => Cow::Borrowed(one.body),
        many => {
            let total: usize = many.iter().map(|r| r.body.len()).sum();
            let mut bytes = Vec::with_capacity(total.min(MAX_HANDSHAKE_BYTES));
            for r in many {
                let room = MAX_HANDSHAKE_BYTES.saturating_sub(bytes.len());
                bytes.extend_from_slice(&r.body[..r.body.len().min(room)]);
            }
            Cow::Owned(bytes)
        }
    };
    (joined, end)
}

/// Split handshake bytes into messages.
pub fn split(bytes: &[u8]) -> Result<Messages<'_>, TlsError> {
    let mut messages = Messages::default();
    split_into(bytes, &mut messages)?;
    Ok(messages)
}

/// [`split`] into `out` (empty): the messages are written where the caller keeps them, not
/// moved there.
pub fn split_into<'a>(bytes: &'a [u8], out: &mut Messages<'a>) -> Result<(), TlsError> {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let kind = rest[0];
        if rest.len() < MESSAGE_HEADER_LEN {
            out.partial = Some(PartialMessage { kind, len: 0, body: &[] });
            break;
        }
        let len = usize::from(rest[1]) << 16 | usize::from(rest[2]) << 8 | usize::from(rest[3]);
        if len > MAX_HANDSHAKE_BYTES * 4 {
            return Err(TlsError::HandshakeTooLong { kind, len });
        }
        let body = &rest[MESSAGE_HEADER_LEN..];
        if body.len() < len {
            out.partial = Some(PartialMessage { kind, len, body });
            break;
        }
        out.whole.push(Message { kind, bytes: &rest[..MESSAGE_HEADER_LEN + len] });
        at += MESSAGE_HEADER_LEN + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::tls::records::scan;

    #[test]
    fn a_message_spanning_two_records_is_joined() {
        let bytes = [22, 3, 3, 0, 3, 1, 0, 0, 22, 3, 3, 0, 3, 2, 7, 8, 20, 3, 3, 0, 1, 1];
        let r = scan(&bytes);
        let (joined, next) = join(&r.records, 0);
        assert_eq!(next, 2);
        let m = split(&joined).expect("valid");
        assert_eq!(m.whole.len(), 1);
        assert_eq!(m.whole[0].body(), &[7, 8]);
        assert_eq!(m.partial, None);
    }

    #[test]
    fn a_cut_message_is_partial_with_its_declared_length() {
        let m = split(&[11, 0, 1, 0, 0, 0, 9]).expect("valid");
        assert!(m.whole.is_empty());
        let p = m.partial.expect("partial");
        assert_eq!((p.kind, p.len, p.body), (11, 256, &[0u8, 0, 9][..]));
        let m = split(&[11, 0]).expect("valid");
        assert_eq!(m.partial.map(|p| p.kind), Some(11));
    }
}
