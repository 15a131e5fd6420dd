//! Frame decoding (link, IP, TCP headers) of arbitrary bytes for every supported link type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer_wire::pcap::packet::{decode, linktype};

fuzz_target!(|data: &[u8]| {
    for link in [
        linktype::NULL,
        linktype::ETHERNET,
        linktype::RAW,
        linktype::LINUX_SLL,
        linktype::LINUX_SLL2,
        linktype::IPV4,
        linktype::IPV6,
    ] {
        if let Ok(segment) = decode(link, data) {
            assert!(segment.payload.len() <= data.len());
        }
    }
});
