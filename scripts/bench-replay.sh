#!/usr/bin/env bash
# Compares `observer replay` with `tshark -r FILE -Y tls.handshake` on the same generated capture
# of thousands of connections (docs/ARCHITECTURE.md, "Budgets": replay must be faster), as medians and a ratio in one run.
#
#   scripts/bench-replay.sh [CONNECTIONS=5000] [RUNS=5]
#
# The capture is generated from the real fixtures (observer-wire/tests/fixtures/*.pcap, Ethernet ones):
# each connection is a copy of a fixture connection with its own client address and port, so
# every handshake is a real one. Prints one line per tool (median and min..max wall time) and
# `ratio tshark/observer`. Set OBSERVER=path to time a prebuilt binary instead of building one,
# and BASELINE=path to time a second observer binary in the same interleaved runs (before/after).
# Callable from `cargo xtask bench`; needs python3 and tshark.
set -euo pipefail

CONNECTIONS=${1:-5000}
RUNS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/observer-bench-replay.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

command -v tshark >/dev/null || { echo "bench-replay: tshark is not installed" >&2; exit 1; }
if [[ -z ${OBSERVER:-} ]]; then
    (cd "$ROOT" && AYA_BUILD_SKIP=1 cargo build --release --quiet -p observer)
    OBSERVER=$ROOT/target/release/observer
fi

python3 - "$WORK/bench.pcap" "$CONNECTIONS" "$ROOT"/observer-wire/tests/fixtures/*.pcap <<'PY'
import struct, sys
out_path, count, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
conns = []  # per fixture file: its frames (Ethernet + IPv4 only)
for path in sorted(files):
    data = open(path, 'rb').read()
    magic, _, _, _, _, _, link = struct.unpack('<IHHiIII', data[:24])
    if magic != 0xa1b2c3d4 or link != 1:
        continue
    frames, at = [], 24
    while at + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack('<IIII', data[at:at + 16])
        frame = data[at + 16:at + 16 + incl]
        at += 16 + incl
        if len(frame) >= 34 and frame[12:14] == b'\x08\x00':
            frames.append(bytearray(frame))
    if frames:
        conns.append(frames)
out = [struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1)]
t = 1_800_000_000 * 1_000_000
for i in range(count):
    frames = conns[i % len(conns)]
    # Every connection of the copy gets the copy's own client address: the clients are the
    # sources of the SYNs (the fixtures' clients and servers share 127.0.0.1, so match ports too).
    new_ip = bytes([127, 1 + (i >> 16) % 254, (i >> 8) & 0xff, i & 0xff])
    clients = set()
    for frame in frames:
        ihl = (frame[14] & 0x0f) * 4
        tcp = 14 + ihl
        if len(frame) > tcp + 13 and frame[tcp + 13] & 0x12 == 0x02:  # SYN without ACK
            clients.add((bytes(frame[26:30]), bytes(frame[tcp:tcp + 2])))
    for frame in frames:
        f = bytearray(frame)
        tcp = 14 + (f[14] & 0x0f) * 4
        if (bytes(f[26:30]), bytes(f[tcp:tcp + 2])) in clients:
            f[26:30] = new_ip
        elif (bytes(f[30:34]), bytes(f[tcp + 2:tcp + 4])) in clients:
            f[30:34] = new_ip
        t += 50
        out.append(struct.pack('<IIII', t // 1_000_000, t % 1_000_000, len(f), len(f)) + bytes(f))
open(out_path, 'wb').write(b''.join(out))
print(f"generated {count} fixture copies, {sum(len(b) for b in out) >> 10} KiB", file=sys.stderr)
PY

python3 - "$OBSERVER" "$WORK/bench.pcap" "$RUNS" "${BASELINE:-}" <<'PY'
import statistics, subprocess, sys, time
observer, pcap, runs, baseline = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
commands = {
    'observer replay': [observer, 'replay', pcap, '--output', 'json'],
    'tshark -Y tls.handshake': ['tshark', '-r', pcap, '-Y', 'tls.handshake'],
}
if baseline:
    commands['baseline observer replay'] = [baseline, 'replay', pcap, '--output', 'json']
times = {name: [] for name in commands}
lines = {}
for _ in range(runs):
    for name, cmd in commands.items():  # interleaved, so both see the same machine load
        start = time.perf_counter()
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - start)
        lines[name] = result.stdout.count(b'\n')
for name, ts in times.items():
    print(f"{name:<26} median {statistics.median(ts) * 1000:8.1f} ms  "
          f"(min {min(ts) * 1000:.1f} .. max {max(ts) * 1000:.1f} ms, {runs} runs, {lines[name]} lines)")
ratio = statistics.median(times['tshark -Y tls.handshake']) / statistics.median(times['observer replay'])
print(f"ratio tshark/observer      {ratio:.1f}x (> 1: observer replay is faster)")
if baseline:
    ratio = statistics.median(times['tshark -Y tls.handshake']) / statistics.median(times['baseline observer replay'])
    print(f"ratio tshark/baseline      {ratio:.1f}x")
PY
