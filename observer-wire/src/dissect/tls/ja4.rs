//! JA4 TLS client fingerprint (FoxIO JA4 specification, TCP variant):
//! `t<version><d|i><ciphers><extensions><alpn>_<sha256(ciphers)[..12]>_<sha256(exts_sigalgs)[..12]>`.

use sha2::{Digest, Sha256};

use self::shapes::Hashes;
use super::{
    client_hello::{ClientHello, HelloView, ext, name_string},
    is_grease,
};

mod shapes;

pub use shapes::forget as forget_shapes;

/// List entries sorted on the stack; longer lists (rare, and bounded by the ClientHello's
/// size) are sorted on the heap. JA4 counts stop at 99, its hashes cover every entry.
const STACK_ENTRIES: usize = 128;

/// Bytes of hashed text gathered on the stack before they are fed to the hash: two SHA-256
/// blocks, small enough that the buffer is cheap to set up.
const TEXT_CHUNK: usize = 128;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The JA4 fingerprint of a ClientHello.
pub fn ja4(hello: &ClientHello) -> String {
    fingerprint(Lists {
        version: hello.highest_version(),
        sni: hello.sni.is_some(),
        alpn: hello.alpn.first().map(String::as_bytes),
        ciphers: hello.ciphers.iter().copied(),
        extensions: hello.extensions.iter().copied(),
        signature_algorithms: hello.signature_algorithms.iter().copied(),
    })
}

/// The JA4 fingerprint of a ClientHello read in place: the same as [`ja4`] of its owned
/// reading, without building its lists.
pub fn ja4_of(hello: &HelloView<'_>) -> String {
    // The first ALPN name as the owned reading holds it: the raw bytes unless they are not
    // UTF-8 (then replaced, which changes its first and last bytes).
    let first = hello.alpn().next();
    let replaced = first.filter(|name| std::str::from_utf8(name).is_err()).map(name_string);
    fingerprint(Lists {
        version: hello.highest_version(),
        sni: hello.sni().is_some(),
        alpn: replaced.as_deref().map(str::as_bytes).or(first),
        ciphers: hello.ciphers(),
        extensions: hello.extension_types(),
        signature_algorithms: hello.signature_algorithms(),
    })
}

/// What JA4 reads from a ClientHello.
struct Lists<'a, C, E, S> {
    /// Highest version offered.
    version: u16,
    sni: bool,
    /// The first ALPN name.
    alpn: Option<&'a [u8]>,
    /// As sent, GREASE included.
    ciphers: C,
    /// Types in the order sent, GREASE included.
    extensions: E,
    signature_algorithms: S,
}

/// Computed once per leg, when the classification is final; written without `fmt` and without
/// allocating more than the answer, so it stays within the per-handshake budget.
fn fingerprint<C, E, S>(lists: Lists<'_, C, E, S>) -> String
where
    C: Iterator<Item = u16> + Clone,
    E: Iterator<Item = u16> + Clone,
    S: Iterator<Item = u16> + Clone,
{
    let mut cipher_stack = [0u16; STACK_ENTRIES];
    let mut cipher_heap = Vec::new();
    let ciphers = collect(&mut cipher_stack, &mut cipher_heap, lists.ciphers.filter(|c| !is_grease(*c)));
    let n_ciphers = ciphers.len();
    let n_extensions = lists.extensions.clone().filter(|e| !is_grease(*e)).count();
    let version = match lists.version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        _ => "00",
    };
    let mut out = String::with_capacity(36);
    out.push('t');
    out.push_str(version);
    out.push(if lists.sni { 'd' } else { 'i' });
    push_count(&mut out, n_ciphers);
    push_count(&mut out, n_extensions);
    push_alpn(&mut out, lists.alpn);
    out.push('_');

    let mut extension_stack = [0u16; STACK_ENTRIES];
    let mut extension_heap = Vec::new();
    let extensions = collect(
        &mut extension_stack,
        &mut extension_heap,
        lists.extensions.filter(|e| !is_grease(*e) && *e != ext::SERVER_NAME && *e != ext::ALPN),
    );
    let key = shapes::Key::of(ciphers, extensions, lists.signature_algorithms.clone());
    let [cipher_hash, extension_hash] =
        shapes::hashes(key.as_ref(), || hashes(ciphers, extensions, lists.signature_algorithms));
    push_ascii(&mut out, &cipher_hash);
    out.push('_');
    push_ascii(&mut out, &extension_hash);
    out
}

/// The two hashed parts, computed whole: the sorted cipher suites; the sorted extensions, then
/// the signature algorithms in the order sent.
fn hashes(ciphers: &mut [u16], extensions: &mut [u16], signature_algorithms: impl Iterator<Item = u16>) -> Hashes {
    ciphers.sort_unstable();
    let mut text = HashedText::default();
    text.hex_list(ciphers.iter().copied());
    let cipher_hash = text.finish();
    extensions.sort_unstable();
    if !extensions.is_empty() {
        text.hex_list(extensions.iter().copied());
        let mut signature_algorithms = signature_algorithms.peekable();
        if signature_algorithms.peek().is_some() {
            text.push([b'_']);
            text.hex_list(signature_algorithms);
        }
    }
    [cipher_hash, text.finish()]
}

/// Hex digits (ASCII by construction) onto the answer.
fn push_ascii(out: &mut String, digits: &[u8]) {
    out.extend(digits.iter().map(|d| char::from(*d)));
}

/// `values` in `stack` if they fit, else in `heap`: every value, never a prefix.
fn collect<'a>(
    stack: &'a mut [u16; STACK_ENTRIES],
    heap: &'a mut Vec<u16>,
    values: impl Iterator<Item = u16> + Clone,
) -> &'a mut [u16] {
    let mut n = 0;
    for value in values.clone() {
        if n == STACK_ENTRIES {
            heap.extend(values);
            return heap;
        }
        stack[n] = value;
        n += 1;
    }
    &mut stack[..n]
}

/// Two decimal digits, capped at 99.
fn push_count(out: &mut String, n: usize) {
    let n = n.min(99) as u8;
    out.push(char::from(b'0' + n / 10));
    out.push(char::from(b'0' + n % 10));
}

/// First and last character of the first ALPN value; its hex digits when either is not
/// alphanumeric; `00` without ALPN.
fn push_alpn(out: &mut String, first: Option<&[u8]>) {
    match first {
        Some([a, .., z]) | Some([a @ z]) if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() => {
            out.push(char::from(*a));
            out.push(char::from(*z));
        }
        Some([a, .., z]) | Some([a @ z]) => {
            out.push(char::from(HEX[usize::from(a >> 4)]));
            out.push(char::from(HEX[usize::from(z & 0x0f)]));
        }
        None | Some([]) => out.push_str("00"),
    }
}

/// Text being hashed: gathered on the stack in chunks, fed to SHA-256 chunk by chunk.
struct HashedText {
    hash: Sha256,
    chunk: [u8; TEXT_CHUNK],
    len: usize,
    /// Bytes written in all.
    total: usize,
}

impl Default for HashedText {
    fn default() -> Self {
        Self { hash: Sha256::new(), chunk: [0; TEXT_CHUNK], len: 0, total: 0 }
    }
}

/// Bytes of one list entry's text: a comma and four hex digits.
const ENTRY: usize = 5;

impl HashedText {
    /// A few bytes (a fixed number: the copy is then a move, not a call).
    fn push<const N: usize>(&mut self, bytes: [u8; N]) {
        if self.len + N > TEXT_CHUNK {
            self.flush();
        }
        if let Some(room) = self.chunk.get_mut(self.len..self.len + N) {
            room.copy_from_slice(&bytes);
        }
        self.len += N;
        self.total += N;
    }

    fn flush(&mut self) {
        self.hash.update(&self.chunk[..self.len]);
        self.len = 0;
    }

    /// `aaaa,bbbb,...` in lowercase hex. Each entry is written as `,aaaa` into a chunk with
    /// room for it (the first entry's comma is then overwritten): one bounds check per entry,
    /// no branch on its position.
    fn hex_list(&mut self, values: impl Iterator<Item = u16>) {
        let mut first = true;
        for v in values {
            if self.len + ENTRY > TEXT_CHUNK {
                self.flush();
            }
            let [hi, lo] = v.to_be_bytes();
            let ([a, b], [c, d]) = (HEX_PAIRS[usize::from(hi)], HEX_PAIRS[usize::from(lo)]);
            let at = self.len;
            if let Some(room) = self.chunk.get_mut(at..at + ENTRY) {
                room.copy_from_slice(&[b',', a, b, c, d]);
            }
            if first {
                // Drop the leading comma: the entry moves one byte back over it.
                self.chunk.copy_within(at + 1..at + ENTRY, at);
                self.len += ENTRY - 1;
                self.total += ENTRY - 1;
                first = false;
            } else {
                self.len += ENTRY;
                self.total += ENTRY;
            }
        }
    }

    /// The first 12 hex digits of the SHA-256 of the text, or twelve zeros for no text; then
    /// the text is empty again.
    fn finish(&mut self) -> [u8; 12] {
        let mut digits = [b'0'; 12];
        if self.total == 0 {
            return digits;
        }
        self.flush();
        self.total = 0;
        let digest = self.hash.finalize_reset();
        for (pair, byte) in digits.chunks_exact_mut(2).zip(&digest[..6]) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
        }
        digits
    }
}

/// The two lowercase hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    pairs
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the JA4 specification (a Chrome ClientHello).
    #[test]
    fn the_specification_example_fingerprints_as_published() {
        let hello = ClientHello {
            legacy_version: 0x0303,
            supported_versions: vec![0x0304, 0x0303],
            sni: Some("example.com".into()),
            alpn: vec!["h2".into(), "http/1.1".into()],
            ciphers: vec![
                0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d,
                0x002f, 0x0035,
            ],
            extensions: vec![
                0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01,
                0x000b, 0x000a, 0x0015,
            ],
            signature_algorithms: vec![0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601],
            ..Default::default()
        };
        assert_eq!(ja4(&hello), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    #[test]
    fn non_alphanumeric_alpn_uses_hex_and_no_alpn_is_00() {
        let alpn = |first: Option<&[u8]>| {
            let mut out = String::new();
            push_alpn(&mut out, first);
            out
        };
        assert_eq!(alpn(None), "00");
        assert_eq!(alpn(Some(b"istio-peer-exchange")), "ie");
        assert_eq!(alpn(Some(b"h2")), "h2");
        assert_eq!(alpn(Some(&[0xab, 0x01])), "a1");
        assert_eq!(alpn(Some(&[0xab])), "ab");
    }

    /// Lists of every length up to past two chunks, so that each list (and the signature
    /// algorithms after the `_`) starts at every offset of a chunk, against the text built
    /// with `format!`.
    #[test]
    fn the_hashed_text_is_the_same_wherever_a_chunk_ends() {
        let hex = |list: &[u16]| list.iter().map(|v| format!("{v:04x}")).collect::<Vec<_>>().join(",");
        let hash =
            |text: &str| Sha256::digest(text.as_bytes())[..6].iter().map(|b| format!("{b:02x}")).collect::<String>();
        for n in 1..60u16 {
            for m in [1u16, 2, 7, 30] {
                let extensions: Vec<u16> = (0..n).map(|i| 0xfe00 + i).collect();
                let signature_algorithms: Vec<u16> = (0..m).map(|i| 0x0400 + i).collect();
                let hello = ClientHello {
                    legacy_version: 0x0303,
                    ciphers: vec![0x1301],
                    extensions: extensions.clone(),
                    signature_algorithms: signature_algorithms.clone(),
                    ..Default::default()
                };
                let text = format!("{}_{}", hex(&extensions), hex(&signature_algorithms));
                let expected = format!("t12i01{:02}00_{}_{}", n, hash("1301"), hash(&text));
                assert_eq!(ja4(&hello), expected, "{n} extensions, {m} signature algorithms");
            }
        }
    }

    #[test]
    fn every_extension_and_cipher_is_hashed_past_128() {
        // 200 private-use extensions and 300 cipher suites: JA4 hashes all of them.
        let extensions: Vec<u16> = (0xfe00..0xfe00 + 200).collect();
        let ciphers: Vec<u16> = (0x0100..0x0100 + 300).collect();
        let hello = ClientHello {
            legacy_version: 0x0303,
            ciphers: ciphers.clone(),
            extensions: extensions.clone(),
            ..Default::default()
        };
        let hex = |list: &[u16]| list.iter().map(|v| format!("{v:04x}")).collect::<Vec<_>>().join(",");
        let hash =
            |text: String| Sha256::digest(text.as_bytes())[..6].iter().map(|b| format!("{b:02x}")).collect::<String>();
        let expected = format!("t12i999900_{}_{}", hash(hex(&ciphers)), hash(hex(&extensions)));
        assert_eq!(ja4(&hello), expected);
        let mut changed = hello.clone();
        changed.extensions[150] = 0xff00;
        assert_ne!(ja4(&changed), ja4(&hello), "the 151st extension counts");
    }
}
