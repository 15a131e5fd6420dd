//! Kubernetes object names, checked as the API server checks them: a manifest the API would
//! refuse is refused here too, and no name that reaches a verdict, a finding or a metric label
//! can carry a control character, a space or a path separator.

/// The rule a name breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameRule {
    /// A DNS subdomain (RFC 1123): at most 253 characters, dot-separated labels.
    #[error("a DNS subdomain (RFC 1123: lower-case letters, digits, '-' and '.', at most 253 characters)")]
    Subdomain,
    /// A DNS label (RFC 1123): at most 63 characters, no dots (namespaces).
    #[error("a DNS label (RFC 1123: lower-case letters, digits and '-', at most 63 characters)")]
    Label,
}

/// One label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_label(text: &str) -> bool {
    let b = text.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&b.len())
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-')
}

/// `Ok` if `name` follows `rule`.
pub fn check_name(name: &str, rule: NameRule) -> Result<(), NameRule> {
    let ok = match rule {
        NameRule::Label => is_label(name),
        NameRule::Subdomain => name.len() <= 253 && name.split('.').all(is_label),
    };
    if ok { Ok(()) } else { Err(rule) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        for good in ["web", "a", "my-nginx", "v1.2", "0day", &"a".repeat(63)] {
            assert_eq!(check_name(good, NameRule::Subdomain), Ok(()), "{good}");
        }
        let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(63)].join(".");
        for bad in ["", "Web", "-a", "a-", "a..b", "a b", "a\x1b[2K", "a/b", "é", &long, &"a".repeat(64)] {
            assert_eq!(check_name(bad, NameRule::Subdomain), Err(NameRule::Subdomain), "{bad:?}");
        }
        assert_eq!(check_name("a.b", NameRule::Label), Err(NameRule::Label));
        assert_eq!(check_name("istio-system", NameRule::Label), Ok(()));
    }
}
