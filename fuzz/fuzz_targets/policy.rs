//! Policy YAML of arbitrary text through the loader (documents, Lists, every kind's conversion)
//! and `check`: every problem is a load error with file:line, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use observer_mesh::{check::check, load_str};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_str(Path::new("fuzz.yaml"), text) {
        Ok(mesh) => {
            let _ = check(&mesh);
        }
        Err(errors) => assert!(!errors.0.is_empty()),
    }
});
