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

/// How [`split_run`] read a run of handshake records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The index of the first record after the run (as [`join`] gives it).
    pub next: usize,
    /// The leading whole messages borrowed from the records themselves (the rest, if any, from
    /// the joined bytes).
    pub borrowed: usize,
}

/// The messages of the run of handshake records from `records[start..]`: what [`join`] then
/// [`split_into`] give, without copying the records while each ends where a message ends
/// (every real flight but one whose message spans records). From the first record whose last
/// message continues in the next one, the rest of the run is joined into `spill` (empty) and
/// split there. `out` is empty.
pub fn split_run<'a>(
    records: &[Record<'a>],
    start: usize,
    spill: &'a mut Vec<u8>,
    out: &mut Messages<'a>,
) -> Result<Run, TlsError> {
    let next = join_end(records, start);
    let run = records.get(start..next).unwrap_or_default();
    let mut total = 0;
    for (i, record) in run.iter().enumerate() {
        let later = &run[i + 1..];
        // `join` caps what it copies (a single record it borrows whole).
        let capped = run.len() > 1 && total + record.body.len() > MAX_HANDSHAKE_BYTES;
        let before = out.whole.len();
        if !capped {
            split_into(record.body, out)?;
            if out.partial.is_none() || later.is_empty() {
                total += record.body.len();
                continue;
            }
            out.whole.truncate(before);
            out.partial = None;
        }
        for r in &run[i..] {
            let room = MAX_HANDSHAKE_BYTES.saturating_sub(total + spill.len());
            spill.extend_from_slice(&r.body[..r.body.len().min(room)]);
        }
        split_into(spill, out)?;
        return Ok(Run { next, borrowed: before });
    }
    Ok(Run { next, borrowed: out.whole.len() })
}

/// The index of the first record after the run of handshake records from `start`.
pub fn join_end(records: &[Record<'_>], start: usize) -> usize {
    let mut end = start;
    while records.get(end).is_some_and(|r| r.content_type == content::HANDSHAKE) {
        end += 1;
    }
    end
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

/// What [`split`] tells of handshake bytes without listing their messages: the first whole
/// one, how many are whole, and whether one is cut after them. The HelloRetryRequest paths
/// need no more, and are read again on every segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outline<'a> {
    pub first: Option<Message<'a>>,
    /// Whole messages.
    pub whole: usize,
    /// A message is cut short after the whole ones.
    pub partial: bool,
}

/// The [`Outline`] of handshake bytes: the same reading (and the same errors) as [`split`]
/// (the every-cut test compares them); `split_into` keeps its own loop, which the flights of
/// every handshake run through and which measured slower when it shared this one.
pub fn outline(bytes: &[u8]) -> Result<Outline<'_>, TlsError> {
    let mut outline = Outline::default();
    let partial = walk(bytes, |message| {
        outline.first.get_or_insert(message);
        outline.whole += 1;
    })?;
    outline.partial = partial.is_some();
    Ok(outline)
}

/// Hands each whole message of `bytes` to `whole`, in order; the cut-short last one, if any, is
/// the answer. The header checks are those of [`split_into`].
fn walk<'a>(bytes: &'a [u8], mut whole: impl FnMut(Message<'a>)) -> Result<Option<PartialMessage<'a>>, TlsError> {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let kind = rest[0];
        if rest.len() < MESSAGE_HEADER_LEN {
            return Ok(Some(PartialMessage { kind, len: 0, body: &[] }));
        }
        let len = usize::from(rest[1]) << 16 | usize::from(rest[2]) << 8 | usize::from(rest[3]);
        if len > MAX_HANDSHAKE_BYTES * 4 {
            return Err(TlsError::HandshakeTooLong { kind, len });
        }
        let body = &rest[MESSAGE_HEADER_LEN..];
        if body.len() < len {
            return Ok(Some(PartialMessage { kind, len, body }));
        }
        whole(Message { kind, bytes: &rest[..MESSAGE_HEADER_LEN + len] });
        at += MESSAGE_HEADER_LEN + len;
    }
    Ok(None)
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

    /// Records cut from real flights at every offset, and at message boundaries: the messages
    /// are those of the joined bytes, borrowed while no message spans records.
    #[test]
    fn a_run_splits_as_its_joined_bytes_split() {
        let messages: Vec<u8> =
            [&[1, 0, 0, 3, 7, 8, 9][..], &[11, 0, 0, 0], &[16, 0, 0, 5, 1, 2, 3, 4, 5], &[20, 0, 0, 2, 6, 6]].concat();
        let record = |body: &[u8]| [&[22, 3, 3, 0, body.len() as u8][..], body].concat();
        for cut in 0..=messages.len() {
            for second_cut in cut..=messages.len() {
                let mut bytes = [record(&messages[..cut]), record(&messages[cut..second_cut])].concat();
                bytes.extend(record(&messages[second_cut..]));
                bytes.extend([20, 3, 3, 0, 1, 1]);
                for len in 0..=bytes.len() {
                    let scanned = scan(&bytes[..len]);
                    let (joined, next) = join(&scanned.records, 0);
                    let expected = split(&joined);
                    let outlined = outline(&joined);
                    let of_split = expected.as_ref().map_err(Clone::clone).map(|m| Outline {
                        first: m.whole.first().copied(),
                        whole: m.whole.len(),
                        partial: m.partial.is_some(),
                    });
                    assert_eq!(outlined, of_split, "outline, cuts {cut} {second_cut}, {len} bytes");
                    let (mut spill, mut out) = (Vec::new(), Messages::default());
                    let run = split_run(&scanned.records, 0, &mut spill, &mut out);
                    let context = format!("cuts {cut} {second_cut}, {len} bytes");
                    match (run, expected) {
                        (Ok(run), Ok(expected)) => {
                            assert_eq!((run.next, &out), (next, &expected), "{context}");
                            let boundaries = [0, 7, 11, 20, 26];
                            if boundaries.contains(&cut) && boundaries.contains(&second_cut) {
                                assert_eq!(run.borrowed, out.whole.len(), "{context}: none copied");
                            }
                        }
                        (run, expected) => assert_eq!(run.err(), expected.err(), "{context}"),
                    }
                }
            }
        }
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
