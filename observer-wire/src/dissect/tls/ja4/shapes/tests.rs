//! The remembered hashes never change a fingerprint: fresh table, warm table, a slot holding
//! other bytes, an offer too long to remember, each against the fingerprint built with `format!`.

use sha2::{Digest, Sha256};

use super::{super::ja4, ENTRIES, KEY_UNITS, Key, forget, with_table};
use crate::dissect::tls::{client_hello::ClientHello, is_grease};

/// The specification's example ClientHello (Chrome), with a GREASE cipher and extension added
/// at the front as Chrome sends them.
fn chrome() -> ClientHello {
    ClientHello {
        legacy_version: 0x0303,
        supported_versions: vec![0x0304, 0x0303],
        sni: Some("example.com".into()),
        alpn: vec!["h2".into(), "http/1.1".into()],
        ciphers: vec![
            0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c,
            0x009d, 0x002f, 0x0035,
        ],
        extensions: vec![
            0x2a2a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b,
            0xff01, 0x000b, 0x000a, 0x0015,
        ],
        signature_algorithms: vec![0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601],
        ..Default::default()
    }
}

/// The extensions JA4 hashes: GREASE, SNI and ALPN removed.
fn hashed_extensions(hello: &ClientHello) -> Vec<u16> {
    hello.extensions.iter().copied().filter(|e| !is_grease(*e) && *e != 0x0000 && *e != 0x0010).collect()
}

/// The JA4 of `hello` built with `format!` and sorted `Vec`s, without the table.
fn reference(hello: &ClientHello) -> String {
    let hex = |list: &[u16]| list.iter().map(|v| format!("{v:04x}")).collect::<Vec<_>>().join(",");
    let hash = |text: &str| match text {
        "" => "000000000000".to_owned(),
        text => Sha256::digest(text.as_bytes())[..6].iter().map(|b| format!("{b:02x}")).collect(),
    };
    let mut ciphers: Vec<u16> = hello.ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
    ciphers.sort_unstable();
    let all = hello.extensions.iter().filter(|e| !is_grease(**e)).count();
    let mut extensions = hashed_extensions(hello);
    extensions.sort_unstable();
    let mut text = hex(&extensions);
    if !extensions.is_empty() && !hello.signature_algorithms.is_empty() {
        text = format!("{text}_{}", hex(&hello.signature_algorithms));
    }
    let version = match hello.highest_version() {
        0x0304 => "13",
        0x0303 => "12",
        _ => "00",
    };
    let alpn = match hello.alpn.first().map(String::as_bytes) {
        Some([a, .., z]) => format!("{}{}", char::from(*a), char::from(*z)),
        _ => "00".to_owned(),
    };
    format!(
        "t{version}{}{:02}{:02}{alpn}_{}_{}",
        if hello.sni.is_some() { 'd' } else { 'i' },
        ciphers.len().min(99),
        all.min(99),
        hash(&hex(&ciphers)),
        hash(&text)
    )
}

/// Offers that differ from the example in one way each, two of them with the same units laid
/// end to end (the counts tell them apart).
fn offers() -> Vec<ClientHello> {
    let base = chrome();
    let mut offers = vec![base.clone()];
    offers.push(ClientHello { sni: None, alpn: vec!["http/1.1".into()], ..base.clone() });
    offers.push(ClientHello { signature_algorithms: vec![], ..base.clone() });
    offers.push(ClientHello { extensions: vec![0x0000, 0x0010], ..base.clone() });
    let mut reordered = base.clone();
    reordered.ciphers.reverse();
    reordered.extensions.reverse();
    offers.push(reordered);
    offers.push(ClientHello { ciphers: vec![0x1301, 0x1302], extensions: vec![0x000d], ..base.clone() });
    offers.push(ClientHello { ciphers: vec![0x1301], extensions: vec![0x1302, 0x000d], ..base.clone() });
    offers.push(ClientHello { ciphers: vec![], extensions: vec![], signature_algorithms: vec![], ..base });
    offers
}

#[test]
fn fresh_and_warm_tables_give_the_reference_fingerprints() {
    assert_eq!(ja4(&chrome()), "t13d1516h2_8daaf6152771_e5627efa2ab1", "the specification's example");
    forget();
    for round in ["fresh", "warm", "warm again"] {
        for (i, hello) in offers().iter().enumerate() {
            assert_eq!(ja4(hello), reference(hello), "offer {i}, {round} table");
        }
    }
    let kept = with_table(|shapes| shapes.keys().len()).expect("a table");
    assert!(kept >= 2, "the offers were remembered ({kept} slots)");
}

/// The slot a key maps to is planted with other bytes (one unit changed, one short, one long,
/// the same units split differently between the lists) and a wrong answer: each is a miss.
#[test]
fn a_slot_holding_other_bytes_is_a_miss() {
    let hello = chrome();
    let expected = reference(&hello);
    let ciphers: Vec<u16> = hello.ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
    let extensions = hashed_extensions(&hello);
    let key = Key::of(&ciphers, &extensions, hello.signature_algorithms.iter().copied()).expect("fits");
    let units = key.units().to_vec();
    let mut changed = units.clone();
    *changed.last_mut().expect("units") ^= 1;
    let mut longer = units.clone();
    longer.push(0x0403);
    // One cipher fewer counted, the last cipher's place holding an extension count: the same
    // lists read with another split.
    let mut split = units.clone();
    split[0] -= 1;
    split[ciphers.len()] = extensions.len() as u16 + 1;
    let wrong = [*b"zzzzzzzzzzzz"; 2];
    for (what, planted) in
        [("changed", changed), ("short", units[..units.len() - 1].to_vec()), ("long", longer), ("split", split)]
    {
        forget();
        with_table(|shapes| shapes.plant(&key, &planted, wrong)).expect("a table");
        assert_eq!(ja4(&hello), expected, "a slot holding {what} bytes");
        assert_eq!(ja4(&hello), expected, "a slot holding {what} bytes, then its own");
    }
    // The same bytes planted are a hit: the planting reaches the slot the lookup reads.
    with_table(|shapes| shapes.plant(&key, &units, wrong)).expect("a table");
    assert!(ja4(&hello).ends_with("_zzzzzzzzzzzz_zzzzzzzzzzzz"), "the planted answer is read");
    forget();
}

/// An offer at the cap is remembered; one unit more is hashed every time and kept nowhere.
#[test]
fn an_offer_longer_than_the_cap_is_not_remembered() {
    // Two counts, 60 ciphers, 60 extensions, the rest signature algorithms.
    let with_signature_algorithms = |n: usize| ClientHello {
        legacy_version: 0x0303,
        ciphers: (0x0100..0x0100 + 60).collect(),
        extensions: (0xfe00..0xfe00 + 60).collect(),
        signature_algorithms: (0x0400..).take(n).collect(),
        ..Default::default()
    };
    let fits = with_signature_algorithms(KEY_UNITS - 122);
    let over = with_signature_algorithms(KEY_UNITS - 121);
    forget();
    assert_eq!(ja4(&over), reference(&over));
    assert_eq!(with_table(|shapes| shapes.keys().len()), Some(0), "an oversized offer is not kept");
    assert_eq!(ja4(&over), reference(&over), "and is hashed again");
    assert_eq!(ja4(&fits), reference(&fits));
    assert_eq!(ja4(&fits), reference(&fits), "warm");
    let kept = with_table(|shapes| shapes.keys()).expect("a table");
    assert_eq!(kept.iter().map(Vec::len).collect::<Vec<_>>(), [KEY_UNITS], "the offer at the cap is kept");
    // Hundreds of ciphers and extensions (the JA4 counts stop at 99): not kept, hashed whole.
    let huge = ClientHello {
        legacy_version: 0x0303,
        ciphers: (0x0100..0x0100 + 300).collect(),
        extensions: (0xfe00..0xfe00 + 200).collect(),
        ..Default::default()
    };
    forget();
    assert_eq!(ja4(&huge), reference(&huge));
    assert_eq!(with_table(|shapes| shapes.keys().len()), Some(0));
}

/// More shapes than slots: every fingerprint stays right while slots are evicted, and the
/// table never holds more than its slots.
#[test]
fn more_shapes_than_slots_evict_and_stay_right() {
    forget();
    for round in 0..2 {
        for n in 0..(ENTRIES as u16 * 2) {
            let hello = ClientHello { ciphers: vec![0x1301, 0x0100 + n], extensions: vec![0x000d], ..chrome() };
            assert_eq!(ja4(&hello), reference(&hello), "shape {n}, round {round}");
        }
    }
    let kept = with_table(|shapes| shapes.keys().len()).expect("a table");
    assert!(kept <= ENTRIES && kept > ENTRIES / 2, "{kept} slots in use");
}
