//! Capture files of arbitrary bytes through the daemon's own pipeline, as `observer replay` runs
//! it: the capture source, the tracker, the verdict against a STRICT mesh, and the record every
//! sink gets. Every leg must come out as one record whose JSON line is an object.
#![no_main]

use std::{collections::HashSet, path::Path, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use observer_mesh::{Mesh, load_str};
use observer_pipeline::{ConnectionRecord, Pipeline};
use observer_wire::{classify::UnknownReason, legs::TrackerConfig, pcap::CaptureSource};

const POLICY: &str = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
";

fn mesh() -> &'static Mesh {
    static MESH: OnceLock<Mesh> = OnceLock::new();
    MESH.get_or_init(|| load_str(Path::new("strict.yaml"), POLICY).expect("the fixed policy loads"))
}

fuzz_target!(|data: &[u8]| {
    let max_legs = 64;
    let mut pipeline = Pipeline::new(TrackerConfig { max_legs, ..TrackerConfig::default() }, "fuzz".to_owned());
    let mut source = CaptureSource::new(max_legs);
    let mut ids = HashSet::new();
    let mut sink = |record: &ConnectionRecord| {
        let line = serde_json::to_vec(record).expect("a record serializes");
        assert!(line.starts_with(b"{") && line.ends_with(b"}"));
        assert!(ids.insert(record.conn_id.clone()), "a leg is reported once");
    };
    // A damaged file is an error naming it, never a panic.
    let _ = source.bytes(Path::new("fuzz.pcap"), data, &mut pipeline.bind(mesh(), &mut sink));
    pipeline.finish(UnknownReason::CaptureEnded);
    pipeline.deliver(mesh(), &mut (), &mut sink);
    assert_eq!(pipeline.records() as usize, ids.len());
});
