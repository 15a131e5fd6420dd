//! The pods: a `node` namespace holding a bridge, and one namespace per pod with a veth into it
//! (`eth0` in the pod), on one IPv4 /24 and one IPv6 /64 of the private test ranges
//! (10.88.X.0/24, fd00:88:0:X::/64; X differs per topology so that concurrent topologies never
//! share an address the observer could confuse).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, bail};

use crate::netns::Netns;

/// IPv6 needs an MTU of at least 1280; below it the kernel removes IPv6 from the link.
pub const IPV6_MIN_MTU: u32 = 1280;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One pod: a namespace with `lo` and `eth0` up.
#[derive(Debug)]
pub struct Pod {
    name: String,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
    ns: Netns,
}

impl Pod {
    /// The logical name given to the builder (`a`, `pod-b`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace name.
    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    /// Its IPv6 address; fails when the topology has none (MTU below 1280).
    pub fn ipv6(&self) -> anyhow::Result<Ipv6Addr> {
        self.ipv6.with_context(|| format!("pod {} has no IPv6 address (MTU below {IPV6_MIN_MTU}?)", self.name))
    }

    /// Sets the MTU of the pod's `lo` with one segment per skb, so that loopback connections
    /// inside the pod are split like on a small-MTU wire (below 1280, `::1` disappears).
    pub fn split_loopback(&self, mtu: u32) -> anyhow::Result<()> {
        self.ns.ip(&["link", "set", "lo", "mtu", &mtu.to_string(), "gso_max_segs", "1"])
    }

    /// The pod's address of the given family.
    pub fn ip(&self, v6: bool) -> anyhow::Result<IpAddr> {
        Ok(if v6 { IpAddr::V6(self.ipv6()?) } else { IpAddr::V4(self.ipv4) })
    }
}

/// Pods behind one bridge. Dropping it deletes every namespace (and so every veth and the
/// bridge), killing what still runs inside.
#[derive(Debug)]
pub struct Topology {
    // Pods drop before the node namespace: their processes go first.
    pods: Vec<Pod>,
    node: Netns,
    mtu: u32,
    subnet: u8,
}

impl Topology {
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder { pods: Vec::new(), mtu: 1500, ipv6: true, one_segment_per_skb: None }
    }

    /// The pod of that name; panics (a test bug) when there is none.
    pub fn pod(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no pod named {name} in this topology"))
    }

    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The namespace holding the bridge.
    pub fn node(&self) -> &Netns {
        &self.node
    }

    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The third octet X of 10.88.X.0/24.
    pub fn subnet(&self) -> u8 {
        self.subnet
    }

    /// Names of every namespace of this topology.
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pods.iter().map(|p| p.ns().to_owned()).collect();
        names.push(self.node.name().to_owned());
        names
    }
}

/// Builds a [`Topology`].
#[derive(Debug, Clone)]
pub struct TopologyBuilder {
    pods: Vec<String>,
    mtu: u32,
    ipv6: bool,
    one_segment_per_skb: Option<bool>,
}

impl TopologyBuilder {
    /// Adds a pod; pod i gets host address 10 * (i + 1) (10.88.X.10, .20, ...).
    pub fn pod(mut self, name: &str) -> Self {
        self.pods.push(name.to_owned());
        self
    }

    /// MTU of every veth (default 1500). Below 1280 the pods have no IPv6. Below 1500 every
    /// skb also carries one segment (see [`TopologyBuilder::one_segment_per_skb`]).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }

    /// Whether pods get IPv6 addresses (default yes, when the MTU allows).
    pub fn ipv6(mut self, enabled: bool) -> Self {
        self.ipv6 = enabled;
        self
    }

    /// Limit GSO to one segment per skb (`gso_max_segs 1`) on every veth. Without it TCP hands
    /// the veth one GSO super-packet (a whole 1.7 KB ClientHello), which crosses the veth and
    /// the bridge unsplit, so a small MTU alone splits nothing that a cgroup_skb program or
    /// tcpdump sees. Default: on when the MTU is below 1500.
    pub fn one_segment_per_skb(mut self, yes: bool) -> Self {
        self.one_segment_per_skb = Some(yes);
        self
    }

    pub fn build(self) -> anyhow::Result<Topology> {
        if self.pods.is_empty() || self.pods.len() > 24 {
            bail!("a topology has 1 to 24 pods, not {}", self.pods.len());
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let subnet = u8::try_from(1 + (std::process::id().wrapping_mul(31).wrapping_add(n * 7)) % 250)
            .context("subnet out of range")?;
        let mtu = self.mtu.to_string();
        let node = Netns::new("node")?;
        node.ip(&["link", "add", "br0", "mtu", &mtu, "type", "bridge"])?;
        node.ip(&["link", "set", "br0", "up"])?;
        let with_v6 = self.ipv6 && self.mtu >= IPV6_MIN_MTU;
        let split = self.one_segment_per_skb.unwrap_or(self.mtu < 1500);
        let mut topo = Topology { pods: Vec::new(), node, mtu: self.mtu, subnet };
        for (i, name) in self.pods.iter().enumerate() {
            let host = u8::try_from(10 * (i + 1)).context("too many pods")?;
            let ns = Netns::new(name)?;
            let veth = format!("veth{i}");
            topo.node.ip(&[
                "link",
                "add",
                &veth,
                "mtu",
                &mtu,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "mtu",
                &mtu,
                "netns",
                ns.name(),
            ])?;
            topo.node.ip(&["link", "set", &veth, "master", "br0", "up"])?;
            if split {
                topo.node.ip(&["link", "set", &veth, "gso_max_segs", "1"])?;
                ns.ip(&["link", "set", "eth0", "gso_max_segs", "1"])?;
            }
            let ipv4 = Ipv4Addr::new(10, 88, subnet, host);
            ns.ip(&["addr", "add", &format!("{ipv4}/24"), "dev", "eth0"])?;
            let ipv6 = if with_v6 {
                let addr = Ipv6Addr::new(0xfd00, 0x88, 0, u16::from(subnet), 0, 0, 0, u16::from(host));
                ns.ip(&["addr", "add", &format!("{addr}/64"), "dev", "eth0", "nodad"])?;
                Some(addr)
            } else {
                None
            };
            ns.ip(&["link", "set", "eth0", "up"])?;
            topo.pods.push(Pod { name: name.clone(), ipv4, ipv6, ns });
        }
        Ok(topo)
    }
}
