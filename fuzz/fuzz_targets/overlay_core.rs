//! The overlay's sans-IO core, fed arbitrary event sequences from a handful of peers (every
//! message kind, any field values, ticks, measurements, commands, time jumps), must never
//! panic; its tables stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_net::overlay::{
    Candidate, Command, Event, Message, Overlay, OverlayConfig, Payload, Topic, Verifier,
};

#[derive(Clone, Debug, PartialEq)]
struct Blob {
    len: usize,
    valid: bool,
}

impl Payload for Blob {
    fn wire_len(&self) -> usize {
        self.len
    }
}

/// Signatures are modelled by a flag: what matters here is that the core survives both.
struct Flag;

impl Verifier<u32, Blob> for Flag {
    fn verify_frame(&mut self, _: &Topic, _: &u32, _: u64, b: &Blob) -> bool {
        b.valid
    }
    fn verify_direct(&mut self, _: &u32, _: &u32, _: u64, b: &Blob) -> bool {
        b.valid
    }
}

/// Reads fields from the fuzzer's bytes; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        *b
    }
    fn u64(&mut self) -> u64 {
        // A byte picks the shape: small, extreme, or eight raw bytes.
        match self.u8() % 4 {
            0 => u64::from(self.u8()),
            1 => u64::MAX - u64::from(self.u8()),
            2 => u64::from(self.u8()) * 10_000,
            _ => (0..8).fold(0, |v, _| v << 8 | u64::from(self.u8())),
        }
    }
    fn peer(&mut self) -> u32 {
        u32::from(self.u8() % 6)
    }
    fn topic(&mut self) -> Topic {
        Topic([self.u8() % 3; 32])
    }
    fn blob(&mut self) -> Blob {
        Blob {
            len: usize::from(self.u8()) * 40,
            valid: self.u8() % 4 != 0,
        }
    }
    fn message(&mut self) -> Message<u32, Blob> {
        match self.u8() % 11 {
            0 => Message::Join {
                topic: self.topic(),
                root: self.peer(),
                rtt_us: self.u64(),
            },
            1 => Message::Accept {
                topic: self.topic(),
                path: (0..self.u8() % 5).map(|_| self.peer()).collect(),
                next_seq: self.u64(),
                rate: self.u64(),
                delay_us: self.u64(),
                adoption: self.u8() % 2 == 0,
            },
            2 => Message::Redirect {
                topic: self.topic(),
                candidates: (0..self.u8() % 4)
                    .map(|_| Candidate {
                        peer: self.peer(),
                        delay_us: self.u64(),
                    })
                    .collect(),
                next_seq: self.u64(),
            },
            3 => Message::Leave {
                topic: self.topic(),
            },
            4 => Message::Report {
                topic: self.topic(),
                descendants: self.u64() as u32,
                root_rtt_us: self.u64(),
            },
            5 => Message::Handover {
                topic: self.topic(),
                to: self.peer(),
            },
            6 => Message::Frame {
                topic: self.topic(),
                seq: self.u64(),
                payload: self.blob(),
            },
            7 => Message::Repair {
                topic: self.topic(),
                from: self.u64(),
                to: self.u64(),
            },
            8 => Message::Probe { nonce: self.u64() },
            9 => Message::ProbeAck { nonce: self.u64() },
            _ => Message::Direct {
                origin: self.peer(),
                dest: self.peer(),
                id: self.u64(),
                hops_left: self.u8(),
                cost: self.u64(),
                payload: self.blob(),
            },
        }
    }
    fn event(&mut self) -> Event<u32, Blob> {
        match self.u8() % 10 {
            0..=4 => Event::Received {
                from: self.peer(),
                message: self.message(),
            },
            5 => Event::Tick,
            6 => Event::LinkMeasured {
                peer: self.peer(),
                rtt_us: (self.u8() % 2 == 0).then(|| self.u64()),
                queued_bytes: self.u64(),
                delivery_rate: self.u64() as f64,
                lost: self.u64(),
            },
            7 => match self.u8() % 3 {
                0 => Event::LinkUp(self.peer()),
                1 => Event::LinkNetwork {
                    peer: self.peer(),
                    network: u64::from(self.u8() % 3),
                },
                _ => Event::LinkDown(self.peer()),
            },
            8 => Event::Command(Command::Subscribe {
                topic: self.topic(),
                root: self.peer(),
            }),
            _ => Event::Command(Command::Publish {
                topic: self.topic(),
                seq: self.u64(),
                payload: self.blob(),
            }),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let me = input.peer();
    let config = OverlayConfig {
        max_children: 3,
        ..OverlayConfig::default()
    };
    let mut node = Overlay::new(me, config, Flag, u64::from(me));
    let mut now = 1_000_000u64;
    let mut out = Vec::new();
    while !input.0.is_empty() {
        now = now.saturating_add(u64::from(input.u8()) * 5_000);
        let event = input.event();
        node.handle(now, event, &mut out);
        out.clear();
    }
    for t in 0..3u8 {
        assert!(node.children(&Topic([t; 32])).len() <= 6);
    }
});
