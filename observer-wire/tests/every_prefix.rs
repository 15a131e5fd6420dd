//! The every-prefix property over the captured handshakes: offered the bytes of a leg one byte
//! at a time, in the order the capture delivered them, the classifier answers `NeedMore` until
//! the bytes decide, and from then on always the same answer, which is the answer for the whole
//! leg. Also: the live sampler's 4 KiB budget per direction does not change the answer.

use std::path::{Path, PathBuf};

use observer_common::SAMPLE_BUDGET;
use observer_wire::{
    classify::{Input, Progress, Security, StreamEnd, classify},
    legs::{Direction, Reassembly},
    pcap::{LegPieces, leg_pieces},
};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    files
}

fn input<'a>(client: &'a Reassembly, server: &'a Reassembly, end: StreamEnd) -> Input<'a> {
    Input {
        client: client.bytes(),
        server: server.bytes(),
        client_end: end,
        server_end: end,
        client_gap: client.has_gap(),
        server_gap: server.has_gap(),
    }
}

fn whole(leg: &LegPieces) -> (Reassembly, Reassembly) {
    let (mut client, mut server) = (Reassembly::default(), Reassembly::default());
    for p in &leg.pieces {
        match p.direction {
            Direction::ClientToServer => client.insert(p.offset, &p.bytes),
            Direction::ServerToClient => server.insert(p.offset, &p.bytes),
        }
    }
    (client, server)
}

#[test]
fn answers_never_change_once_given_and_match_the_whole_leg() {
    let mut legs = 0;
    for file in fixtures() {
        for leg in leg_pieces(&file).expect("fixture reads") {
            let (c, s) = whole(&leg);
            let Progress::Done(answer) = classify(&input(&c, &s, StreamEnd::Closed)) else {
                panic!("{}: a closed leg must decide", file.display());
            };
            let (mut client, mut server) = (Reassembly::default(), Reassembly::default());
            let mut decided = None;
            for p in &leg.pieces {
                for n in 1..=p.bytes.len() {
                    match p.direction {
                        Direction::ClientToServer => client.insert(p.offset, &p.bytes[..n]),
                        Direction::ServerToClient => server.insert(p.offset, &p.bytes[..n]),
                    }
                    match (classify(&input(&client, &server, StreamEnd::Open)), &decided) {
                        (Progress::NeedMore, None) => {}
                        (Progress::NeedMore, Some(_)) => {
                            panic!("{}: leg {} undecided again after a decision", file.display(), leg.leg)
                        }
                        (Progress::Done(c), None) => {
                            assert_eq!(c, answer, "{}: leg {} decided differently early", file.display(), leg.leg);
                            decided = Some(c);
                        }
                        (Progress::Done(c), Some(d)) => {
                            assert_eq!(&c, d, "{}: leg {} changed its answer", file.display(), leg.leg)
                        }
                    }
                }
            }
            legs += 1;
        }
    }
    assert!(legs >= 20, "only {legs} legs in the fixtures");
}

#[test]
fn the_live_sampling_budget_does_not_change_tls_answers() {
    let budget = SAMPLE_BUDGET as usize;
    for file in fixtures() {
        for leg in leg_pieces(&file).expect("fixture reads") {
            let (c, s) = whole(&leg);
            let Progress::Done(answer) = classify(&input(&c, &s, StreamEnd::Closed)) else {
                panic!("a closed leg must decide");
            };
            if answer.security != Security::Mtls && answer.security != Security::Tls {
                continue;
            }
            let end = |r: &Reassembly| {
                if r.bytes().len() > budget { StreamEnd::BudgetSpent } else { StreamEnd::Closed }
            };
            let sampled = Input {
                client: &c.bytes()[..c.bytes().len().min(budget)],
                server: &s.bytes()[..s.bytes().len().min(budget)],
                client_end: end(&c),
                server_end: end(&s),
                client_gap: false,
                server_gap: false,
            };
            assert_eq!(classify(&sampled), Progress::Done(answer), "{}: leg {}", file.display(), leg.leg);
        }
    }
}

/// Writes the fixtures' legs as seeds for the fuzz targets (`fuzz/corpus/<target>/`):
/// `OBSERVER_FUZZ_SEEDS=fuzz/corpus cargo test -p observer --test every_prefix -- --ignored`.
#[test]
#[ignore = "writes fuzz seeds when asked"]
fn write_fuzz_seeds() {
    let root = PathBuf::from(std::env::var("OBSERVER_FUZZ_SEEDS").expect("OBSERVER_FUZZ_SEEDS=dir"));
    let (dissect, pipeline) = (root.join("dissect"), root.join("pipeline"));
    std::fs::create_dir_all(&dissect).expect("seed dir");
    std::fs::create_dir_all(&pipeline).expect("seed dir");
    for file in fixtures() {
        let stem = file.file_name().expect("name").to_string_lossy().into_owned();
        for leg in leg_pieces(&file).expect("fixture reads") {
            let (c, s) = whole(&leg);
            let (client, server) = (&c.bytes()[..c.bytes().len().min(0xffff)], s.bytes());
            let mut seed = vec![(client.len() >> 8) as u8, client.len() as u8, 0];
            seed.extend(client);
            seed.extend(server);
            std::fs::write(dissect.join(format!("{stem}-{}", leg.leg)), seed).expect("write seed");
            // Pipeline seeds: the pieces as [flags, offset hi, offset lo, len, bytes] segments.
            let mut seed = Vec::new();
            for p in &leg.pieces {
                for (i, chunk) in p.bytes.chunks(255).enumerate() {
                    let offset = p.offset as usize + i * 255;
                    if offset > 0xffff {
                        break;
                    }
                    let flags = u8::from(p.direction == Direction::ServerToClient);
                    seed.extend([flags, (offset >> 8) as u8, offset as u8, chunk.len() as u8]);
                    seed.extend(chunk);
                }
            }
            std::fs::write(pipeline.join(format!("{stem}-{}", leg.leg)), seed).expect("write seed");
        }
    }
}
