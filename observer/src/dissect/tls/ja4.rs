//! JA4 TLS client fingerprint (FoxIO JA4 specification, TCP variant):
//! `t<version><d|i><ciphers><extensions><alpn>_<sha256(ciphers)[..12]>_<sha256(exts_sigalgs)[..12]>`.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::{client_hello::ClientHello, client_hello::ext, is_grease};

/// The JA4 fingerprint of a ClientHello.
pub fn ja4(hello: &ClientHello) -> String {
    let ciphers: Vec<u16> = hello.ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
    let extensions: Vec<u16> = hello.extensions.iter().copied().filter(|e| !is_grease(*e)).collect();
    let version = match hello.highest_version() {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        _ => "00",
    };
    let sni = if hello.sni.is_some() { 'd' } else { 'i' };
    let alpn = alpn_chars(hello.alpn.first().map(String::as_bytes));
    let mut out = format!("t{version}{sni}{:02}{:02}{alpn}_", ciphers.len().min(99), extensions.len().min(99));

    let mut sorted = ciphers;
    sorted.sort_unstable();
    out.push_str(&truncated_hash(&hex_list(&sorted)));
    out.push('_');

    let mut sorted: Vec<u16> = extensions.into_iter().filter(|e| *e != ext::SERVER_NAME && *e != ext::ALPN).collect();
    sorted.sort_unstable();
    let mut text = hex_list(&sorted);
    if !hello.signature_algorithms.is_empty() {
        text.push('_');
        text.push_str(&hex_list(&hello.signature_algorithms));
    }
    out.push_str(&truncated_hash(if sorted.is_empty() { "" } else { &text }));
    out
}

/// First and last character of the first ALPN value; its hex digits when either is not
/// alphanumeric; `00` without ALPN.
fn alpn_chars(first: Option<&[u8]>) -> String {
    match first {
        None | Some([]) => "00".to_owned(),
        Some(value) => {
            let (a, z) = (value[0], value[value.len() - 1]);
            if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
                format!("{}{}", a as char, z as char)
            } else {
                let hex = format!("{a:02x}{z:02x}");
                format!("{}{}", &hex[..1], &hex[3..])
            }
        }
    }
}

fn hex_list(values: &[u16]) -> String {
    let mut text = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let _ = write!(text, "{v:04x}");
    }
    text
}

/// The first 12 hex digits of SHA-256, or twelve zeros for an empty list.
fn truncated_hash(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".to_owned();
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(12);
    for byte in &digest[..6] {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
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
        assert_eq!(alpn_chars(None), "00");
        assert_eq!(alpn_chars(Some(b"istio-peer-exchange")), "ie");
        assert_eq!(alpn_chars(Some(&[0xab, 0x01])), "a1");
    }
}
