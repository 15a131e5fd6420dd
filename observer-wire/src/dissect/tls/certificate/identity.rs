//! The subject Name and the subjectAltName of a leaf certificate, read from their DER by hand
//! (RFC 5280 §4.1.2.6, §4.2.1.6): only what the record reports, every length checked against
//! its parent. This runs once per TLS 1.2 client certificate on the per-handshake path, where a
//! general ASN.1 parser cost more than the rest of the handshake's classification.
//!
//! The reading is the one x509-parser gives (the tests compare the two on the fixtures' leaves,
//! on generated names and SAN lists, and on every one-byte change and cut of them), or stricter:
//! a Name or SAN list that x509-parser reads only in part, or reads past odd encodings of
//! (multi-byte tags, a SEQUENCE tag with another class, bytes left inside a SET), is refused
//! here with the offset and what was expected, never read differently.

use super::der::header;

/// Why a subject or SAN could not be read: what was expected, and where (offset in the
/// element given).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("certificate DER: {what} expected at offset {at}")]
pub struct DerError {
    pub at: usize,
    pub what: &'static str,
}

/// Attribute types spelled by name (as x509-parser prints them); others in dotted form.
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

mod tag {
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    /// Tag numbers of the string types whose value is printed as text (when it is UTF-8):
    /// UTF8String, NumericString, PrintableString, IA5String. Any class, as x509-parser reads.
    pub const TEXT_NUMBERS: [u8; 4] = [12, 18, 19, 22];
    /// GeneralName is `[n]` context-specific (class bits 10).
    pub const CONTEXT_CLASS: u8 = 0x80;
}

/// Most bytes of one OID arc: nine 7-bit groups fit a u64, so the arc prints as x509-parser
/// prints it whichever of its forms applies.
const MAX_ARC_BYTES: usize = 9;

/// DER elements one after another within `base`, with offsets for errors.
struct Reader<'a> {
    base: &'a [u8],
    rest: &'a [u8],
}

/// One element read: its tag byte, its content, and the content's offset in the reader's base.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(base: &'a [u8]) -> Self {
        Self { base, rest: base }
    }

    /// A reader of an element's content, offsets still counted from the outer base.
    fn inside(&self, element: &Element<'a>) -> Reader<'a> {
        Reader { base: self.base, rest: element.content }
    }

    fn at(&self) -> usize {
        self.base.len() - self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, DerError> {
        Err(DerError { at: self.at(), what })
    }

    /// The next element, whatever its tag.
    fn any(&mut self, what: &'static str) -> Result<Element<'a>, DerError> {
        let start = self.at();
        let Some((tag, len, after)) = header(self.rest) else {
            return self.fail(what);
        };
        let Some((content, rest)) = after.split_at_checked(len) else {
            return self.fail(what);
        };
        let at = start + (self.rest.len() - after.len());
        self.rest = rest;
        Ok(Element { tag, content, at })
    }

    /// The next element, which must have exactly this tag byte.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<Element<'a>, DerError> {
        if self.rest.first() != Some(&tag) {
            return self.fail(what);
        }
        self.any(what)
    }

    fn end(&self, what: &'static str) -> Result<(), DerError> {
        if self.is_empty() { Ok(()) } else { self.fail(what) }
    }
}

/// A Name (the whole element) as `CN=x, O=y`: RDNs in the order stored, `, ` between them,
/// ` + ` between the attributes of one; a value that is not text is `#<binary>`.
pub fn subject_string(name: &[u8]) -> Result<String, DerError> {
    let mut outer = Reader::new(name);
    let sequence = outer.expect(tag::SEQUENCE, "Name SEQUENCE")?;
    outer.end("end of the Name")?;
    let mut rdns = outer.inside(&sequence);
    let mut out = String::with_capacity(sequence.content.len());
    while !rdns.is_empty() {
        let set = rdns.expect(tag::SET, "RelativeDistinguishedName SET")?;
        let mut attributes = rdns.inside(&set);
        if attributes.is_empty() {
            return attributes.fail("an attribute in the RDN");
        }
        let mut first = true;
        while !attributes.is_empty() {
            let attribute = attributes.expect(tag::SEQUENCE, "AttributeTypeAndValue SEQUENCE")?;
            let mut fields = attributes.inside(&attribute);
            let oid = fields.expect(tag::OID, "attribute type OID")?;
            let value = fields.any("attribute value")?;
            fields.end("end of the AttributeTypeAndValue")?;
            out.push_str(match (out.is_empty(), first) {
                (true, _) => "",
                (false, true) => ", ",
                (false, false) => " + ",
            });
            first = false;
            match NAMES.iter().find(|(bytes, _)| *bytes == oid.content) {
                Some((_, short)) => out.push_str(short),
                None => push_oid(&mut out, &oid)?,
            }
            out.push('=');
            match std::str::from_utf8(value.content) {
                Ok(text) if tag::TEXT_NUMBERS.contains(&(value.tag & 0x1f)) => out.push_str(text),
                _ => out.push_str("#<binary>"),
            }
        }
    }
    Ok(out)
}

/// An OID in dotted decimal (the first byte split in two arcs, as x509-parser prints it).
fn push_oid(out: &mut String, oid: &Element<'_>) -> Result<(), DerError> {
    let fail = |offset: usize| Err(DerError { at: oid.at + offset, what: "a well-formed OID" });
    let Some((&first, arcs)) = oid.content.split_first() else {
        return fail(0);
    };
    if first >= 0x80 || oid.content == [0] {
        return fail(0);
    }
    push_decimal(out, u64::from(first / 40));
    out.push('.');
    push_decimal(out, u64::from(first % 40));
    let (mut value, mut bytes) = (0u64, 0);
    for (i, &byte) in arcs.iter().enumerate() {
        bytes += 1;
        if bytes > MAX_ARC_BYTES {
            return fail(1 + i);
        }
        value = value << 7 | u64::from(byte & 0x7f);
        if byte < 0x80 {
            out.push('.');
            push_decimal(out, value);
            (value, bytes) = (0, 0);
        }
    }
    if bytes != 0 {
        return fail(oid.content.len());
    }
    Ok(())
}

fn push_decimal(out: &mut String, value: u64) {
    let mut digits = [0u8; 20];
    let mut n = digits.len();
    let mut rest = value;
    loop {
        n -= 1;
        digits[n] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in &digits[n..] {
        out.push(char::from(d));
    }
}

/// The first `spiffe://` URI of a subjectAltName value (GeneralNames); `None` if it has none.
/// Every name is checked, as x509-parser does: one malformed name fails the whole list.
pub fn spiffe_id(san: &[u8]) -> Result<Option<&str>, DerError> {
    let mut outer = Reader::new(san);
    // Bytes after the list are not looked at (nor are they by x509-parser).
    let sequence = outer.expect(tag::SEQUENCE, "GeneralNames SEQUENCE")?;
    let mut names = outer.inside(&sequence);
    let mut found = None;
    while !names.is_empty() {
        let at = names.at();
        let name = names.any("GeneralName")?;
        let fail = |what| Err(DerError { at, what });
        if name.tag & 0xc0 != tag::CONTEXT_CLASS {
            return fail("a context-specific GeneralName");
        }
        let text = || std::str::from_utf8(name.content).map_err(|_| DerError { at: name.at, what: "UTF-8 text" });
        match name.tag & 0x1f {
            // otherName: SEQUENCE { type-id OID, [0] value }; only the OID's frame is read.
            0 => {
                names.inside(&name).expect(tag::OID, "otherName type OID")?;
            }
            // rfc822Name, dNSName.
            1 | 2 => {
                text()?;
            }
            // uniformResourceIdentifier.
            6 => {
                let uri = text()?;
                if found.is_none() && uri.starts_with("spiffe://") {
                    found = Some(uri);
                }
            }
            // directoryName: a whole Name.
            4 => {
                subject_string(name.content).map_err(|e| DerError { at: name.at + e.at, what: e.what })?;
            }
            // x400Address, ediPartyName, iPAddress, registeredID: not read.
            3 | 5 | 7 | 8 => {}
            _ => return fail("a GeneralName tag [0] to [8]"),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
