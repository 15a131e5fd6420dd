//! The per-leg instruments (README "Metrics"): `observer.connections`,
//! `observer.policy.deviations` and `observer.dissect.errors`, counted as records pass.
//!
//! Attributes are bounded by construction: enum values, the server port, the owning workloads
//! (never pod names, addresses or client ports). Recording a leg allocates nothing in steady
//! state: each distinct attribute set is bound to its counter once, keyed by a cheap key of
//! the record's enum values and borrowed strings. At most `cardinality limit - 1` sets are
//! bound per instrument; later ones are counted under `otel.metric.overflow=true` and in
//! `observer.metrics.overflow`, so the cache, like the SDK's state, never grows unbounded.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hash, Hasher},
    sync::Arc,
};

use opentelemetry::{
    KeyValue,
    metrics::{BoundCounter, Counter, Meter},
};

pub use super::health::{ProgramRun, Snapshot};
use super::{ConnectionRecord, EndpointRecord, attributes as attr};
use observer_mesh::verdict::RequiredSecurity;
use observer_mesh::{
    inventory::Owner,
    verdict::{DeviationKind, LegKind, Status},
};
use observer_wire::{
    classify::{ClientCert, Protocol, Security, UnknownReason},
    legs::ObservedAt,
};

/// A cache key: an owned form stored once, a borrowed form built per leg without allocating.
trait Key {
    type Ref<'a>: Hash + PartialEq
    where
        Self: 'a;
    fn borrowed(&self) -> Self::Ref<'_>;
    /// Whether this stored key is `key` (its own method: the borrowed forms of two lifetimes
    /// compare only where the concrete type is known to be covariant).
    fn is(&self, key: &Self::Ref<'_>) -> bool;
}

/// Counters bound to attribute sets, at most `limit` of them.
struct Bound<K> {
    counter: Counter<u64>,
    /// By the key's hash (already mixed: the map rehashes it with one multiply).
    slots: HashMap<u64, (K, BoundCounter<u64>), BuildHasherDefault<FxHasher>>,
    limit: usize,
    /// Bound at the first overflow, so that no empty overflow series shows before.
    overflow: Option<BoundCounter<u64>>,
    overflowed: BoundCounter<u64>,
}

impl<K: Key> Bound<K> {
    fn new(counter: Counter<u64>, overflowed: &Counter<u64>, name: &'static str, limit: usize) -> Self {
        Self {
            overflow: None,
            overflowed: overflowed.bind(&[KeyValue::new(attr::METRIC, name)]),
            counter,
            slots: HashMap::default(),
            limit: limit.saturating_sub(1).max(1),
        }
    }

    /// Adds one under `key`; `make` builds the owned key and attributes the first time.
    fn add<'k>(&mut self, key: K::Ref<'k>, make: impl FnOnce() -> (K, Vec<KeyValue>))
    where
        K: 'k,
    {
        let mut hasher = FxHasher(0);
        key.hash(&mut hasher);
        let hash = hasher.finish();
        if let Some((stored, bound)) = self.slots.get(&hash) {
            if stored.is(&key) {
                bound.add(1);
            } else {
                // A 64-bit hash collision: correct, just not cached.
                self.counter.add(1, &make().1);
            }
            return;
        }
        if self.slots.len() >= self.limit {
            let counter = &self.counter;
            self.overflow.get_or_insert_with(|| counter.bind(&[KeyValue::new(attr::OVERFLOW, true)])).add(1);
            self.overflowed.add(1);
            return;
        }
        let (owned, attributes) = make();
        let bound = self.counter.bind(&attributes);
        bound.add(1);
        self.slots.insert(hash, (owned, bound));
    }
}

/// A fast non-cryptographic hash (the rustc "Fx" mix, 8 bytes at a time): the keys are the
/// observer's own enum values and inventory names, and a collision only costs an uncached add.
#[derive(Default)]
struct FxHasher(u64);

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The borrowed form of an endpoint's owner.
type OwnerRef<'a> = Option<&'a Owner>;

fn owner(endpoint: &EndpointRecord) -> OwnerRef<'_> {
    endpoint.owner.as_deref()
}

#[derive(Hash, PartialEq)]
struct ConnectionRef<'a> {
    leg: LegKind,
    security: Security,
    protocol: Protocol,
    tls_version: Option<&'a str>,
    client_cert: Option<ClientCert>,
    status: Status,
    expected: Option<RequiredSecurity>,
    policy: Option<&'a str>,
    observed_at: ObservedAt,
    ipv6: bool,
    port: u16,
    src: OwnerRef<'a>,
    dst: OwnerRef<'a>,
}

struct ConnectionKey {
    leg: LegKind,
    security: Security,
    protocol: Protocol,
    tls_version: Option<String>,
    client_cert: Option<ClientCert>,
    status: Status,
    expected: Option<RequiredSecurity>,
    policy: Option<String>,
    observed_at: ObservedAt,
    ipv6: bool,
    port: u16,
    src: Option<Arc<Owner>>,
    dst: Option<Arc<Owner>>,
}

impl Key for ConnectionKey {
    type Ref<'a> = ConnectionRef<'a>;
    fn is(&self, key: &ConnectionRef<'_>) -> bool {
        self.borrowed() == *key
    }
    fn borrowed(&self) -> ConnectionRef<'_> {
        ConnectionRef {
            leg: self.leg,
            security: self.security,
            protocol: self.protocol,
            tls_version: self.tls_version.as_deref(),
            client_cert: self.client_cert,
            status: self.status,
            expected: self.expected,
            policy: self.policy.as_deref(),
            observed_at: self.observed_at,
            ipv6: self.ipv6,
            port: self.port,
            src: self.src.as_deref(),
            dst: self.dst.as_deref(),
        }
    }
}

#[derive(Hash, PartialEq)]
struct DeviationRef<'a> {
    kind: DeviationKind,
    leg: LegKind,
    observed_at: ObservedAt,
    policy: Option<&'a str>,
    port: u16,
    src: OwnerRef<'a>,
    dst: OwnerRef<'a>,
}

struct DeviationKey {
    kind: DeviationKind,
    leg: LegKind,
    observed_at: ObservedAt,
    policy: Option<String>,
    port: u16,
    src: Option<Arc<Owner>>,
    dst: Option<Arc<Owner>>,
}

impl Key for DeviationKey {
    type Ref<'a> = DeviationRef<'a>;
    fn is(&self, key: &DeviationRef<'_>) -> bool {
        self.borrowed() == *key
    }
    fn borrowed(&self) -> DeviationRef<'_> {
        DeviationRef {
            kind: self.kind,
            leg: self.leg,
            observed_at: self.observed_at,
            policy: self.policy.as_deref(),
            port: self.port,
            src: self.src.as_deref(),
            dst: self.dst.as_deref(),
        }
    }
}

impl Key for UnknownReason {
    type Ref<'a> = UnknownReason;
    fn is(&self, key: &UnknownReason) -> bool {
        self == key
    }
    fn borrowed(&self) -> UnknownReason {
        *self
    }
}

/// The per-leg counters.
pub struct LegMetrics {
    connections: Bound<ConnectionKey>,
    deviations: Bound<DeviationKey>,
    dissect_errors: Bound<UnknownReason>,
}

impl LegMetrics {
    pub fn new(meter: &Meter, cardinality_limit: usize) -> Self {
        let overflowed = meter
            .u64_counter(attr::names::OVERFLOW)
            .with_unit("{measurement}")
            .with_description(
                "Measurements counted under otel.metric.overflow=true: the cardinality limit was reached.",
            )
            .build();
        let counter = |name: &'static str, description: &'static str| {
            meter.u64_counter(name).with_unit("{connection}").with_description(description).build()
        };
        let connections = counter(attr::names::CONNECTIONS, "Classified connection legs.");
        let deviations = counter(attr::names::DEVIATIONS, "Connection legs that differ from the policy.");
        let errors = counter(attr::names::DISSECT_ERRORS, "Connection legs left unknown, by reason.");
        Self {
            connections: Bound::new(connections, &overflowed, attr::names::CONNECTIONS, cardinality_limit),
            deviations: Bound::new(deviations, &overflowed, attr::names::DEVIATIONS, cardinality_limit),
            dissect_errors: Bound::new(errors, &overflowed, attr::names::DISSECT_ERRORS, cardinality_limit),
        }
    }

    /// Counts one finished leg.
    pub fn record(&mut self, r: &ConnectionRecord) {
        let tls = r.tls.as_ref();
        let ipv6 = r.server.ip.contains(':');
        let key = ConnectionRef {
            leg: r.leg,
            security: r.security,
            protocol: r.protocol,
            tls_version: tls.and_then(|t| t.version.as_deref()),
            client_cert: tls.and_then(|t| t.client_cert),
            status: r.verdict.status,
            expected: r.verdict.expected,
            policy: r.verdict.policy.as_deref(),
            observed_at: r.observed_at,
            ipv6,
            port: r.server.port,
            src: owner(&r.client),
            dst: owner(&r.server),
        };
        self.connections.add(key, || {
            let owned = ConnectionKey {
                leg: r.leg,
                security: r.security,
                protocol: r.protocol,
                tls_version: tls.and_then(|t| t.version.as_deref()).map(str::to_owned),
                client_cert: tls.and_then(|t| t.client_cert),
                status: r.verdict.status,
                expected: r.verdict.expected,
                policy: r.verdict.policy.as_deref().map(str::to_owned),
                observed_at: r.observed_at,
                ipv6,
                port: r.server.port,
                src: r.client.owner.clone(),
                dst: r.server.owner.clone(),
            };
            (owned, attr::connection(r))
        });
        if let Some(kind) = r.verdict.kind {
            let policy = r.verdict.policy.as_deref();
            let key = DeviationRef {
                kind,
                leg: r.leg,
                observed_at: r.observed_at,
                policy,
                port: r.server.port,
                src: owner(&r.client),
                dst: owner(&r.server),
            };
            self.deviations.add(key, || {
                let owned = DeviationKey {
                    kind,
                    leg: r.leg,
                    observed_at: r.observed_at,
                    policy: r.verdict.policy.as_deref().map(str::to_owned),
                    port: r.server.port,
                    src: r.client.owner.clone(),
                    dst: r.server.owner.clone(),
                };
                (owned, attr::deviation(r, kind))
            });
        }
        if let Some(reason) = r.reason {
            self.dissect_errors
                .add(reason, || (reason, vec![KeyValue::new(attr::ERROR_TYPE, attr::spelling(&reason))]));
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
