//! Encrypted payloads come from any writer: parsing an envelope and trying to open it must
//! never panic or allocate beyond what the input holds, whatever the bytes, for a reader
//! of either key type, with or without content keys learnt before.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use starling_net::crypto::{Envelope, Opener, Receivers, seal};
use starling_net::{KeyType, Keypair};

struct Readers {
    ed: Opener,
    ed_key: starling_net::PublicKey,
    secp: Opener,
}

fn readers() -> &'static Readers {
    static R: OnceLock<Readers> = OnceLock::new();
    R.get_or_init(|| {
        let ed = Keypair::from_secret_bytes(KeyType::Ed25519, &[7; 32]).expect("key");
        let secp = Keypair::from_secret_bytes(KeyType::Secp256k1, &[9; 32]).expect("key");
        let readers = Readers {
            ed: Opener::new(&ed),
            ed_key: *ed.public(),
            secp: Opener::new(&secp),
        };
        // A known key, so keyed envelopes naming it reach the decryption.
        let to = Receivers::new(ed.public(), [*secp.public()]).expect("two receivers");
        let env = seal(&to, b"seed").expect("seal");
        readers.ed.open(&env).expect("opens");
        readers.secp.open(&env).expect("opens");
        readers
    })
}

fuzz_target!(|data: &[u8]| {
    let r = readers();
    if let Ok(env) = Envelope::parse(data) {
        let _ = env.receivers().count();
        let _ = env.plaintext_len();
        let _ = r.ed.can_open(&env);
        // Listed as bytes means its reader finds its wrapped key (a key listed under a
        // non-canonical encoding decodes, but is listed for no one: nobody opens it).
        for key in env.receivers().filter_map(Result::ok) {
            let _ = env.lists(&key);
        }
        if env.lists(&r.ed_key) {
            assert!(r.ed.can_open(&env));
        }
    }
    assert!(r.ed.open(data).is_err() || Envelope::parse(data).is_ok());
    let _ = r.secp.open(data);
});
