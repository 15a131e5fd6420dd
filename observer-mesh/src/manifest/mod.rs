//! What every Kubernetes manifest has, whatever its kind: where it was written (file and line),
//! its metadata and labels, the raw header read first from every document, label selectors,
//! and the reading of manifest files (bounded) and `kind: List` documents. Policy and inventory
//! build their validated types on these; [`crate::load`] dispatches documents to them.

mod files;
pub(crate) mod list;
mod names;
pub mod raw;
mod yaml_error;

use std::{collections::BTreeMap, fmt, path::Path, sync::Arc};

pub use files::{FileError, MAX_FILE_BYTES, documents, manifest_files, read_bounded};
pub use names::{NameRule, check_name};
use observer_wire::printable::Escaped;
use serde_saphyr::Spanned;
pub use yaml_error::{blank_value, field_path, is_value_error, yaml_message};

/// A validation problem and the line (1-based, in the file) it was found on.
#[derive(Debug, PartialEq, Eq)]
pub struct At<E> {
    pub line: u32,
    pub error: E,
}

/// Kubernetes labels.
pub type Labels = BTreeMap<String, String>;

/// Where an object (or one of its fields) was written: file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub file: Arc<Path>,
    pub line: u32,
}

impl Origin {
    /// The same file at another line.
    pub fn at(&self, line: u32) -> Self {
        Self { file: Arc::clone(&self.file), line }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", Escaped(&self.file.to_string_lossy()), self.line)
    }
}

/// Names a policy object in verdicts: `Kind/namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// What every policy object has: its name, age and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub object: ObjectRef,
    /// `metadata.creationTimestamp` in seconds since the epoch; `None` sorts as the newest.
    pub created: Option<i64>,
    pub origin: Origin,
}

impl Meta {
    /// Sort key for "the oldest wins": creation time (unknown last), then name.
    pub fn age_key(&self) -> (bool, i64, &str, &str) {
        (self.created.is_none(), self.created.unwrap_or(0), &self.object.namespace, &self.object.name)
    }
}

/// A label selector (`matchLabels`); an empty one selects nothing in particular (namespace-wide).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(pub Labels);

impl Selector {
    /// All of the selector's labels are on the workload.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One document being converted: its metadata and the kind-specific body.
pub struct Doc<S> {
    pub meta: Meta,
    pub labels: Labels,
    pub annotations: Labels,
    /// Lines before the document in its file.
    pub line_offset: u32,
    pub spec: S,
}

impl<S> Doc<S> {
    /// The file line of a spanned value of this document.
    pub fn line<T>(&self, value: &Spanned<T>) -> u32 {
        self.line_offset + u32::try_from(value.referenced.line()).unwrap_or(0)
    }
}

/// `2026-11-26T14:00:00Z` (or with an offset / fraction) to seconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = std::str::from_utf8(b.get(r)?).ok()?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        rest = &rest[1 + digits..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let d = |c: &u8| i64::from(c.wrapping_sub(b'0'));
            if ![h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let minutes = (d(h1) * 10 + d(h2)) * 60 + d(m1) * 10 + d(m2);
            if *sign == b'+' { minutes * 60 } else { -minutes * 60 }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}
