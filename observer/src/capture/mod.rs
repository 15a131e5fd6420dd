//! The live source: eBPF programs at the cgroup v2 root, their ring buffer, and the translation of
//! socket events into leg events for the tracker.
