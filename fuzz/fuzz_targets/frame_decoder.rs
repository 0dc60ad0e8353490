//! The frame decoder and frame parser must never panic or buffer past the frame limit, whatever
//! the bytes and however they are chunked.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_net::entry::EntryVerifier;
use starling_net::wire::{Frame, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).max(1);
    let max = 4096;
    let mut decoder = FrameDecoder::new(max);
    let mut verifier = EntryVerifier::new(16);
    for chunk in rest.chunks(cut) {
        decoder.push(Bytes::copy_from_slice(chunk));
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Ok(Frame::Entry(e)) = Frame::decode(frame) {
                        let _ = verifier.verify(&e);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() <= max + 5 + cut);
    }
    let _ = decoder.finish();
});
