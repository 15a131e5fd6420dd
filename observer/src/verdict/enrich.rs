//! Filling a JSON record with what the policy snapshot knows: workloads, SPIFFE identities,
//! the leg kind and the verdict. This is what `run` and `replay` call for every finished leg.

use super::evaluate::{Assessment, assess};
use crate::{
    export::{ConnectionRecord, EndpointRecord},
    flows::LegRecord,
    policy::Snapshot,
};

fn endpoint(record: &mut EndpointRecord, ip: std::net::IpAddr, snapshot: &Snapshot) {
    if let Some(pod) = snapshot.inventory.pod_by_ip(ip) {
        record.workload = Some(pod.workload());
        record.owner = Some(pod.owner.clone());
        record.identity = snapshot.inventory.identity(pod, &snapshot.policy.mesh.trust_domain);
    }
}

/// Sets `workload`, `identity`, `leg` and `verdict` of a record built by
/// [`ConnectionRecord::from_leg`] from the same leg. Returns the assessment (for metrics).
pub fn enrich(record: &mut ConnectionRecord, leg: &LegRecord, snapshot: &Snapshot) -> Assessment {
    endpoint(&mut record.client, leg.client.addr.ip(), snapshot);
    endpoint(&mut record.server, leg.server.addr.ip(), snapshot);
    let assessment = assess(leg, snapshot);
    record.leg = assessment.leg;
    record.verdict = assessment.verdict.clone();
    assessment
}
