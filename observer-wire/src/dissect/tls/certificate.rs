//! The client certificate of a TLS 1.2 handshake (sent in cleartext): whether the chain is empty,
//! and the subject and SPIFFE ID of the leaf when its bytes are all there.
//!
//! Only the subject and the subjectAltName extension are read ([`identity`], by hand); the rest
//! of the certificate is only framed (every DER element where X.509 puts one, [`der`]): nothing
//! else in it is reported, and the observer verifies no signature.

/// What a TLS 1.2 client Certificate message shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Declared length of the certificate_list (0: no certificate).
    pub chain_len: usize,
    /// Who the leaf names, once all of its bytes are there (read then, once: a whole leaf makes
    /// the answer final).
    pub leaf: Option<Identity>,
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
}

impl Identity {
    /// The subject and SPIFFE ID of a leaf certificate's DER; empty if it is not framed as a
    /// certificate. The two are read apart: a subject that does not read leaves the SAN's
    /// SPIFFE ID (what the policy checks) reported, and the other way round.
    pub fn of_leaf(der: &[u8]) -> Identity {
        let Some(parts) = der::leaf_parts(der) else {
            return Identity::default();
        };
        Identity {
            subject: identity::subject_string(parts.subject).ok(),
            spiffe_id: parts
                .subject_alt_name
                .and_then(|san| identity::spiffe_id(san).ok().flatten())
                .map(str::to_owned),
        }
    }
}

mod der;
pub mod identity;

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
            der.get(..len).map(Identity::of_leaf)
        }
        _ => None,
    };
    Some(ClientCertificate { chain_len, leaf })
}

#[cfg(test)]
mod tests;
