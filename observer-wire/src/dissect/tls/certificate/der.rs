//! Just enough DER to find the subject and the subjectAltName extension of an X.509 certificate
//! (RFC 5280 §4.1) without parsing the rest: each element is framed (tag and definite length,
//! within its parent), none is decoded. Tags are looked at only where X.509 has OPTIONAL fields
//! and at the extensions' envelope: x509-parser, which reads the subject and the extension found
//! here, checks few of the others, and a certificate it reads must be read here too.

/// Whether a tag byte is `tag`, comparing the tag number only, as x509-parser (through
/// der-parser) does: a certificate it reads must be read here too.
fn same_tag(found: u8, tag: u8) -> bool {
    found & 0x1f == tag & 0x1f
}

/// A certificate's parts that the identity is read from.
pub struct LeafParts<'a> {
    /// The subject Name, tag and length included.
    pub subject: &'a [u8],
    /// The value (the OCTET STRING's content) of the first subjectAltName extension.
    pub subject_alt_name: Option<&'a [u8]>,
}

mod tag {
    pub const BOOLEAN: u8 = 0x01;
    /// tbsCertificate fields: version [0], issuerUniqueID [1], subjectUniqueID [2], extensions [3].
    pub const VERSION: u8 = 0xa0;
    pub const ISSUER_UID: u8 = 0x81;
    pub const SUBJECT_UID: u8 = 0x82;
    pub const EXTENSIONS: u8 = 0xa3;
}

/// id-ce-subjectAltName (2.5.29.17), the OID's content bytes.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// One DER element: its content, and the whole element.
struct Element<'a> {
    content: &'a [u8],
    whole: &'a [u8],
}

/// DER elements one after another.
struct Elements<'a>(&'a [u8]);

impl<'a> Elements<'a> {
    /// The next element; `None` at the end or where the bytes do not frame one (a
    /// multi-byte tag, an indefinite or overlong length, content past the end).
    fn next(&mut self) -> Option<Element<'a>> {
        let bytes = self.0;
        let (_, len, rest) = header(bytes)?;
        let (content, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some(Element { content, whole: &bytes[..bytes.len() - rest.len()] })
    }

    /// The next element if it has this tag (an OPTIONAL field); nothing is consumed otherwise.
    fn optional(&mut self, tag: u8) -> Option<Element<'a>> {
        if !self.0.first().is_some_and(|t| same_tag(*t, tag)) {
            return None;
        }
        self.next()
    }
}

/// The tag, the declared length and what follows the header of the element at the start of
/// `bytes`; `None` for a multi-byte tag or an indefinite or overlong length.
pub(in crate::dissect::tls::certificate) fn header(bytes: &[u8]) -> Option<(u8, usize, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    if first < 0x80 {
        return Some((tag, usize::from(first), rest));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 3 {
        return None;
    }
    let (digits, rest) = rest.split_at_checked(n)?;
    Some((tag, digits.iter().fold(0, |len, d| len << 8 | usize::from(*d)), rest))
}

/// The subject and subjectAltName of a certificate, `None` unless it is framed as one:
/// SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }, the tbsCertificate's fields
/// each framed in their order.
pub fn leaf_parts(der: &[u8]) -> Option<LeafParts<'_>> {
    let mut certificate = Elements(Elements(der).next()?.content);
    let tbs = certificate.next()?;
    certificate.next()?;
    certificate.next()?;

    let mut fields = Elements(tbs.content);
    fields.optional(tag::VERSION);
    fields.next()?; // serialNumber
    fields.next()?; // signature
    fields.next()?; // issuer
    fields.next()?; // validity
    let subject = fields.next()?.whole;
    fields.next()?; // subjectPublicKeyInfo
    fields.optional(tag::ISSUER_UID);
    fields.optional(tag::SUBJECT_UID);
    let mut subject_alt_name = None;
    if !fields.0.is_empty() {
        // Anything after the fields is the extensions, [3] { SEQUENCE OF Extension } up to the
        // end of the tbsCertificate, the [3]'s own length unread (as x509-parser reads them).
        let (envelope, _, rest) = header(fields.0)?;
        if !same_tag(envelope, tag::EXTENSIONS) {
            return None;
        }
        let mut inside = Elements(rest);
        let sequence = inside.next()?;
        if !inside.0.is_empty() {
            return None;
        }
        let mut list = Elements(sequence.content);
        while let Some(extension) = list.next() {
            // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }
            let mut parts = Elements(extension.content);
            let id = parts.next()?;
            parts.optional(tag::BOOLEAN);
            let value = parts.next()?;
            if id.content == SUBJECT_ALT_NAME && subject_alt_name.is_none() {
                subject_alt_name = Some(value.content);
            }
        }
    }
    Some(LeafParts { subject, subject_alt_name })
}
