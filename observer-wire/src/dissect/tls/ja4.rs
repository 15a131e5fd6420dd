//! JA4 TLS client fingerprint (FoxIO JA4 specification, TCP variant):
//! `t<version><d|i><ciphers><extensions><alpn>_<sha256(ciphers)[..12]>_<sha256(exts_sigalgs)[..12]>`.

use sha2::{Digest, Sha256};

use super::{client_hello::ClientHello, client_hello::ext, is_grease};

/// List entries sorted on the stack; longer lists (rare, and bounded by the ClientHello's
/// size) are sorted on the heap. JA4 counts stop at 99, its hashes cover every entry.
const STACK_ENTRIES: usize = 128;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The JA4 fingerprint of a ClientHello. Computed once per leg, when the classification is
/// final; written without `fmt` so it stays within the per-handshake budget.
pub fn ja4(hello: &ClientHello) -> String {
    let mut cipher_stack = [0u16; STACK_ENTRIES];
    let mut cipher_heap = Vec::new();
    let ciphers =
        collect(&mut cipher_stack, &mut cipher_heap, hello.ciphers.iter().copied().filter(|c| !is_grease(*c)));
    let n_ciphers = ciphers.len();
    let n_extensions = hello.extensions.iter().filter(|e| !is_grease(**e)).count();
    let version = match hello.highest_version() {
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
    out.push(if hello.sni.is_some() { 'd' } else { 'i' });
    push_count(&mut out, n_ciphers);
    push_count(&mut out, n_extensions);
    push_alpn(&mut out, hello.alpn.first().map(String::as_bytes));
    out.push('_');

    ciphers.sort_unstable();
    let mut text = Vec::with_capacity(5 * (n_ciphers.max(hello.extensions.len()) + hello.signature_algorithms.len()));
    hex_list(&mut text, ciphers);
    push_hash(&mut out, &text);
    out.push('_');

    let mut extension_stack = [0u16; STACK_ENTRIES];
    let mut extension_heap = Vec::new();
    let extensions = collect(
        &mut extension_stack,
        &mut extension_heap,
        hello.extensions.iter().copied().filter(|e| !is_grease(*e) && *e != ext::SERVER_NAME && *e != ext::ALPN),
    );
    extensions.sort_unstable();
    text.clear();
    if !extensions.is_empty() {
        hex_list(&mut text, extensions);
        if !hello.signature_algorithms.is_empty() {
            text.push(b'_');
            hex_list(&mut text, &hello.signature_algorithms);
        }
    }
    push_hash(&mut out, &text);
    out
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

/// `aaaa,bbbb,...` in lowercase hex.
fn hex_list(text: &mut Vec<u8>, values: &[u16]) {
    text.reserve(values.len() * 5);
    for v in values {
        let [hi, lo] = v.to_be_bytes();
        let hex = |b: u8| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
        let ([a, b], [c, d]) = (hex(hi), hex(lo));
        text.extend_from_slice(&[a, b, c, d, b',']);
    }
    // Each value was written with the comma that separates it from the next.
    if !values.is_empty() {
        text.pop();
    }
}

/// The first 12 hex digits of SHA-256, or twelve zeros for an empty list.
fn push_hash(out: &mut String, text: &[u8]) {
    if text.is_empty() {
        out.push_str("000000000000");
        return;
    }
    let digest = Sha256::digest(text);
    for byte in &digest[..6] {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

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
