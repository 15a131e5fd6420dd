//! The client certificate of a TLS 1.2 handshake (sent in cleartext): whether the chain is empty,
//! and the subject and SPIFFE ID of the leaf when its bytes are all there.
//!
//! Only the subject and the subjectAltName extension are parsed (with x509-parser); the rest of
//! the certificate is only framed (every DER element where X.509 puts one): parsing all of it
//! cost more than the rest of the handshake's classification together, and nothing else in it
//! is reported. The observer verifies no signature either way.

use x509_parser::{
    extensions::{GeneralName, SubjectAlternativeName},
    prelude::FromDer,
    x509::X509Name,
};

/// What a TLS 1.2 client Certificate message shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Declared length of the certificate_list (0: no certificate).
    pub chain_len: usize,
    /// The leaf certificate's DER, when all of it is present (parsed only for a final answer:
    /// see [`ClientCertificate::identity`]).
    pub leaf: Option<Vec<u8>>,
}

/// Who a client certificate names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Subject of the leaf certificate (RFC 4514 form).
    pub subject: Option<String>,
    /// The first `spiffe://` URI SAN of the leaf.
    pub spiffe_id: Option<String>,
}

impl ClientCertificate {
    /// The leaf's bytes were all there (else more bytes could still name its subject).
    pub fn leaf_whole(&self) -> bool {
        self.leaf.is_some()
    }

    /// The subject and SPIFFE ID of the leaf; empty if it is cut short, is not framed as a
    /// certificate, or its subject does not parse.
    pub fn identity(&self) -> Identity {
        let mut identity = Identity::default();
        if let Some(der) = &self.leaf
            && let Some(parts) = der::leaf_parts(der)
            && let Ok((_, subject)) = X509Name::from_der(parts.subject)
        {
            identity.subject = Some(subject_string(&subject));
            let san = parts.subject_alt_name.and_then(|value| SubjectAlternativeName::from_der(value).ok());
            if let Some((_, san)) = san {
                identity.spiffe_id = san.general_names.iter().find_map(|name| match name {
                    GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
                    _ => None,
                });
            }
        }
        identity
    }
}

/// The subject as `CN=x, O=y` (RFC 4514 order as stored, the format x509-parser prints), with
/// the common attribute names matched directly instead of through the OID registry: this runs once
/// per TLS 1.2 client certificate, on the per-handshake path.
fn subject_string(name: &x509_parser::x509::X509Name<'_>) -> String {
    const NAMES: [(&[u8], &str); 9] = [
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x05], "serialNumber"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19], "DC"),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01], "Email"),
    ];
    let mut out = String::new();
    for rdn in name.iter_rdn() {
        for (i, attr) in rdn.iter().enumerate() {
            out.push_str(match (out.is_empty(), i) {
                (true, _) => "",
                (false, 0) => ", ",
                (false, _) => " + ",
            });
            let oid = attr.attr_type();
            match NAMES.iter().find(|(bytes, _)| *bytes == oid.as_bytes()) {
                Some((_, short)) => out.push_str(short),
                None => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(value) => out.push_str(value),
                Err(_) => out.push_str("#<binary>"),
            }
        }
    }
    out
}

mod der;

/// Read a Certificate message body (possibly cut short): `None` if its first three bytes (the
/// list length) are not there yet.
pub fn read(body: &[u8]) -> Option<ClientCertificate> {
    let [l0, l1, l2, rest @ ..] = body else {
        return None;
    };
    let chain_len = usize::from(*l0) << 16 | usize::from(*l1) << 8 | usize::from(*l2);
    // The leaf: a 3-byte length and its DER.
    let leaf = match rest {
        [c0, c1, c2, der @ ..] => {
            let len = usize::from(*c0) << 16 | usize::from(*c1) << 8 | usize::from(*c2);
            der.get(..len).map(<[u8]>::to_vec)
        }
        _ => None,
    };
    Some(ClientCertificate { chain_len, leaf })
}

#[cfg(test)]
mod tests;
