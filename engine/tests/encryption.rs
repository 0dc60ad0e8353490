//! End-to-end encryption: documents only their receivers read (locally, replicated over real
//! QUIC, served by replicators that cannot read them), encrypted logs (compressed before
//! sealing), and encrypted streams whose group key rotates when the receiver set changes.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{peer, store};
use serde::{Deserialize, Serialize};
use starling_engine::documents::keys::IndexValue;
use starling_engine::documents::{
    Applied, DocumentError, Documents, DocumentsOptions, Filter, IndexSpec, IndexVisibility,
    Postcard, Query, ReplicaOptions, Role,
};
use starling_engine::log::{Draft, Log, LogConfig, LogId};
use starling_engine::program::{ProgramAddress, ProgramDefinition};
use starling_engine::{LiveStream, MediaFrame, Peer, StreamFrame, Subscription};
use starling_net::crypto::{CryptoError, Opener, Receivers};
use starling_net::entry::{Entry, EntryError, EntryFields, EntrySigner, FLAG_ENCRYPTED};
use starling_net::{KeyType, Keypair, PublicKey};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
    tag: i64,
}

fn note(text: &str, tag: i64) -> Note {
    Note {
        text: text.into(),
        tag,
    }
}

fn program() -> ProgramAddress {
    ProgramDefinition::new("documents/v1", "notes", Bytes::new())
        .unwrap()
        .address()
}

fn index() -> IndexSpec<Note> {
    IndexSpec::new().field("tag", |n: &Note| IndexValue::Int(n.tag))
}

fn notes(dir: &std::path::Path, key: &Keypair) -> Documents<Note> {
    Documents::open(
        program(),
        store(dir),
        key.clone(),
        Postcard,
        index(),
        DocumentsOptions::default(),
    )
    .unwrap()
}

fn entries(docs: &Documents<Note>, hashes: &[starling_net::entry::EntryHash]) -> Vec<Entry> {
    hashes
        .iter()
        .map(|h| docs.entry(h).unwrap().unwrap())
        .collect()
}

fn tagged(tag: i64) -> Query {
    Query {
        filter: Filter::Eq("tag".into(), IndexValue::Int(tag)),
        ..Query::default()
    }
}

#[test]
fn only_receivers_read_and_index_an_encrypted_document() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let keys: Vec<Keypair> = [KeyType::Ed25519, KeyType::Ed25519, KeyType::Secp256k1]
        .into_iter()
        .chain([KeyType::Ed25519])
        .map(Keypair::generate)
        .collect();
    let [writer, bob, carol, mallory] = [0, 1, 2, 3].map(|i| notes(dirs[i].path(), &keys[i]));
    let mut writer = writer;
    let for_bob = writer
        .put_encrypted("a", &note("for bob", 7), &[*keys[1].public()])
        .unwrap();
    let for_carol = writer
        .put_encrypted("b", &note("for carol", 7), &[*keys[2].public()])
        .unwrap();
    let plain = writer.put("c", &note("public", 7)).unwrap();
    let sealed = writer
        .put_encrypted_with("d", &note("sealed", 7), &[], IndexVisibility::Sealed)
        .unwrap();
    // The writer reads and indexes its own.
    assert_eq!(writer.get("a").unwrap(), Some(note("for bob", 7)));
    assert_eq!(writer.query(&tagged(7)).unwrap().len(), 4);
    assert_eq!(writer.unreadable().unwrap(), 0);
    let all = entries(&writer, &[for_bob, for_carol, plain, sealed]);
    assert!(all[0].is_encrypted() && !all[2].is_encrypted());
    assert!(matches!(all[0].payload(), Err(EntryError::Encrypted)));
    for (mut docs, readable) in [(bob, "a"), (carol, "b"), (mallory, "")] {
        // Everyone stores every validly signed entry, readable or not.
        for r in docs.apply_many_at(all.clone(), starling_net::entry::unix_time_us()) {
            assert_eq!(r.unwrap(), Applied::Current);
        }
        assert_eq!(docs.count().unwrap(), 4);
        for id in ["a", "b"] {
            if id == readable {
                assert_eq!(docs.get(id).unwrap().unwrap().tag, 7);
            } else {
                assert!(matches!(
                    docs.get(id),
                    Err(DocumentError::Unreadable {
                        why: CryptoError::NotAReceiver,
                        ..
                    })
                ));
            }
        }
        // Queries (index scan and full scan) answer what this key reads.
        let expect = 1 + usize::from(!readable.is_empty());
        assert_eq!(docs.query(&tagged(7)).unwrap().len(), expect);
        assert_eq!(docs.query(&Query::default()).unwrap().len(), expect);
        assert_eq!(docs.unreadable().unwrap(), 4 - expect as u64);
        // The index holds the published values of what this key cannot read; the sealed
        // document is indexed by the writer only.
        let indexed = || docs.ids_where("tag", &IndexValue::Int(7)).unwrap();
        let ids = ["a", "b", "c"].map(starling_engine::documents::DocId::from);
        assert_eq!(indexed(), ids);
        // Rebuilt from the log, the same.
        docs.rebuild_index().unwrap();
        assert_eq!(docs.query(&tagged(7)).unwrap().len(), expect);
        assert_eq!(indexed(), ids);
    }
}

#[test]
fn a_new_version_replaces_an_unreadable_one_in_the_index() {
    let (dw, dm) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (kw, km) = (
        Keypair::generate(KeyType::Ed25519),
        Keypair::generate(KeyType::Ed25519),
    );
    let mut writer = notes(dw.path(), &kw);
    let mut other = notes(dm.path(), &km);
    let h1 = writer.put_encrypted("x", &note("secret", 1), &[]).unwrap();
    let h2 = writer.put("x", &note("now public", 2)).unwrap();
    let h3 = writer
        .put_encrypted("x", &note("secret again", 3), &[])
        .unwrap();
    assert_eq!(writer.query(&tagged(3)).unwrap().len(), 1);
    let e = entries(&writer, &[h1, h2, h3]);
    for (i, entry) in e.into_iter().enumerate() {
        other.apply(entry).unwrap();
        let (public, secret) = (
            other.query(&tagged(2)).unwrap(),
            other.unreadable().unwrap(),
        );
        assert_eq!((public.len(), secret), [(0, 1), (1, 0), (0, 1)][i]);
    }
    assert!(other.query(&tagged(3)).unwrap().is_empty());
    assert!(other.query(&tagged(1)).unwrap().is_empty());
}

/// A writer that signs an envelope that does not open: every peer keeps the signed entry
/// (so replicas agree), a receiver gets a typed error naming why, nothing panics.
#[test]
fn a_signed_but_broken_envelope_is_kept_and_is_a_typed_error() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let kw = Keypair::generate(KeyType::Ed25519);
    let kr = Keypair::generate(KeyType::Ed25519);
    let writer = notes(dw.path(), &kw);
    let mut reader = notes(dr.path(), &kr);
    let to = Receivers::new(kw.public(), [*kr.public()]).unwrap();
    let good =
        starling_net::crypto::seal(&to, &postcard::to_allocvec(&note("x", 1)).unwrap()).unwrap();
    let mut signer = EntrySigner::new(kw.clone());
    let mut id_key = vec![1u8];
    starling_engine::documents::DocId::from("x").encode_key(&mut id_key);
    let mut sign = |payload: Bytes, seq: u64, raw_len: u32| {
        signer
            .sign_one(&EntryFields {
                meta: &id_key,
                group: starling_engine::documents::DocId::from("x").group(),
                raw_len,
                flags: FLAG_ENCRYPTED,
                ..EntryFields::new(
                    writer.log_id(),
                    seq,
                    starling_net::entry::unix_time_us(),
                    payload,
                )
            })
            .unwrap()
    };
    let truncated = sign(good.slice(..good.len() - 20), 1, 100);
    let mut flipped = good.to_vec();
    let at = flipped.len() - 5;
    flipped[at] ^= 1;
    let tampered = sign(Bytes::from(flipped), 2, 100);
    reader.apply(truncated).unwrap();
    assert!(matches!(
        reader.get("x"),
        Err(DocumentError::Unreadable {
            why: CryptoError::Truncated { .. },
            ..
        })
    ));
    reader.apply(tampered).unwrap();
    assert!(matches!(
        reader.get("x"),
        Err(DocumentError::Unreadable {
            why: CryptoError::Tampered,
            ..
        })
    ));
    assert_eq!(reader.count().unwrap(), 1);
    // An envelope that opens to another length than the entry signs: kept by the receiver
    // as by everyone, and a typed error to read.
    reader.apply(sign(good.clone(), 3, 100)).unwrap();
    assert!(matches!(
        reader.get("x"),
        Err(DocumentError::Entry(EntryError::PayloadLength { .. }))
    ));
    // Published values that do not parse, or that lie: a receiver indexes the document it
    // reads; a peer that cannot read indexes what parses of what was published, or nothing.
    let do_outsider = tempfile::tempdir().unwrap();
    let mut outsider = notes(do_outsider.path(), &Keypair::generate(KeyType::Ed25519));
    let plain = postcard::to_allocvec(&note("y", 1)).unwrap();
    let mut sealer = starling_net::crypto::Sealer::default();
    let garbage = sealer
        .seal_with_public(&to, &plain, true, &[0x09, 0x09])
        .unwrap();
    let lie = starling_engine::documents::keys::encode_published(&[(
        "tag".to_string(),
        IndexValue::Int(99),
    )]);
    let lying = sealer.seal_with_public(&to, &plain, true, &lie).unwrap();
    let raw_len = plain.len() as u32;
    for (seq, payload, published) in [(4, garbage, None), (5, lying, Some(99))] {
        let entry = sign(payload, seq, raw_len);
        let entry = Entry::decode(entry.header(), entry.stored_payload().clone()).unwrap();
        for docs in [&mut reader, &mut outsider] {
            assert_eq!(docs.apply(entry.clone()).unwrap(), Applied::Current);
        }
        assert_eq!(reader.get("x").unwrap(), Some(note("y", 1)));
        let ids =
            |docs: &Documents<Note>, tag| docs.ids_where("tag", &IndexValue::Int(tag)).unwrap();
        assert_eq!(ids(&reader, 1).len(), 1);
        assert_eq!(ids(&outsider, 1).len(), 0);
        assert_eq!(
            published.map_or(0, |t| ids(&outsider, t).len()),
            usize::from(published.is_some())
        );
    }
}

#[test]
fn an_encrypted_log_compresses_first_and_opens_for_receivers_only() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Keypair::generate(KeyType::Ed25519);
    let reader = Keypair::generate(KeyType::Secp256k1);
    let mut log = Log::open(
        store(dir.path()),
        LogId([3; 32]),
        writer.clone(),
        LogConfig::default(),
    )
    .unwrap();
    log.encrypt_to(Some(
        Receivers::new(writer.public(), [*reader.public()]).unwrap(),
    ));
    let text = Bytes::from("a compressible line of text. ".repeat(400));
    let noise: Bytes = (0..8192).map(|_| rand::random::<u8>()).collect();
    // Written into the log's buffer (room for the envelope in front): sealed where it lies.
    let mut in_place = log.payload_buf(noise.len());
    in_place.extend_from_slice(&noise);
    let at = in_place.payload().as_ptr();
    // ... and compressible text in one: compressed, then sealed from the compressed copy.
    let mut text_buf = log.payload_buf(text.len());
    text_buf.extend_from_slice(&text);
    let written = log
        .append_batch(vec![
            Draft::new(text.clone()),
            Draft::new(noise.clone()),
            Draft::new(in_place),
            Draft::new(text_buf),
        ])
        .unwrap();
    assert!(written[0].is_compressed() && written[0].is_encrypted());
    assert!(written[0].stored_payload().len() < text.len() / 4);
    assert!(!written[1].is_compressed() && written[1].is_encrypted());
    let stored = written[2].stored_payload();
    assert_eq!(stored[stored.len() - 16 - noise.len()..].as_ptr(), at);
    assert!(written[3].is_compressed());
    for key in [&writer, &reader] {
        let o = Opener::new(key);
        assert_eq!(written[0].open_payload(&o).unwrap(), text);
        assert_eq!(written[1].open_payload(&o).unwrap(), noise);
        assert_eq!(written[2].open_payload(&o).unwrap(), noise);
        assert_eq!(written[3].open_payload(&o).unwrap(), text);
    }
    let outsider = Opener::new(&Keypair::generate(KeyType::Ed25519));
    assert!(matches!(
        written[0].open_payload(&outsider),
        Err(EntryError::Crypto(CryptoError::NotAReceiver))
    ));
    // Read back from storage, the same.
    let back = log.get(&written[0].hash()).unwrap().unwrap();
    assert_eq!(back.open_payload(&Opener::new(&reader)).unwrap(), text);
}

/// Over QUIC: the writer pushes to two replicators, one a receiver and one not. Both store
/// it; the one that cannot read serves it by id to a reader that can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicators_that_cannot_read_store_and_serve_encrypted_documents() {
    let a = peer(&[]).await;
    let r1 = peer(&[&a]).await;
    let r2 = peer(&[&a]).await;
    let open = |p: &Peer, role| {
        p.open_documents(
            program(),
            Postcard,
            index(),
            DocumentsOptions::default(),
            ReplicaOptions {
                role,
                reconcile_every: Duration::from_millis(500),
                ..ReplicaOptions::default()
            },
        )
        .unwrap()
    };
    let writer = open(&a, Role::Observer);
    let (rep1, rep2) = (open(&r1, Role::Replicator), open(&r2, Role::Replicator));
    assert!(
        writer
            .wait_for_replicators(2, Duration::from_secs(10))
            .await
    );
    let reader_key: PublicKey = r1.public_key();
    writer
        .put_encrypted("doc", &note("for r1", 4), &[reader_key])
        .unwrap();
    writer.put("pub", &note("for all", 4)).unwrap();
    for r in [&rep1, &rep2] {
        for _ in 0..200 {
            if r.count().unwrap() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(r.count().unwrap(), 2);
    }
    assert_eq!(rep1.get("doc").unwrap(), Some(note("for r1", 4)));
    assert!(matches!(
        rep2.get("doc"),
        Err(DocumentError::Unreadable { .. })
    ));
    assert_eq!(rep2.with_documents(|d| d.unreadable().unwrap()), 1);
    // A reader that knows only r2, which cannot read the document: by id r2 serves it anyway
    // (verified and opened by the reader); a query is answered from the values r2 indexed,
    // with the documents the reader may open: never one encrypted to others only (r2 does
    // not show which of those match), and not one whose values were sealed.
    let o = peer(&[&r2]).await;
    let reader = open(&o, Role::Observer);
    assert!(
        reader
            .wait_for_replicators(1, Duration::from_secs(10))
            .await
    );
    assert_eq!(reader.replicators(), vec![r2.peer_id()]);
    writer
        .put_encrypted("doc2", &note("for o", 4), &[o.public_key()])
        .unwrap();
    writer
        .put_many_encrypted(
            [("doc3".into(), &note("sealed for o", 4))],
            &[o.public_key()],
            IndexVisibility::Sealed,
        )
        .unwrap();
    for _ in 0..200 {
        if rep2.count().unwrap() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = reader
        .get_remote("doc2", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got, Some(note("for o", 4)));
    assert!(matches!(
        reader.get_remote("doc", Duration::from_secs(5)).await,
        Err(DocumentError::Unreadable { .. })
    ));
    let remote = reader
        .query_remote(&tagged(4), Duration::from_secs(5))
        .await
        .unwrap();
    let texts: Vec<&str> = remote.iter().map(|(_, n)| n.text.as_str()).collect();
    assert_eq!(texts, ["for o", "for all"]);
    // A limit counts only what the reader may open.
    let first = Query {
        limit: Some(1),
        ..tagged(4)
    };
    let remote = reader
        .query_remote(&first, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(remote.len(), 1);
    let sealed = reader.get_remote("doc3", Duration::from_secs(5)).await;
    assert_eq!(sealed.unwrap(), Some(note("sealed for o", 4)));
}

fn frame(i: u64) -> MediaFrame {
    let data = Bytes::from(vec![(i % 251) as u8; 1500]);
    if i.is_multiple_of(10) {
        MediaFrame::key(data, i * 33_333)
    } else {
        MediaFrame::delta(data, i * 33_333)
    }
}

async fn frames_until(sub: &mut Subscription, last: u64) -> Vec<StreamFrame> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), sub.recv()).await {
            Ok(Some(f)) => {
                let done = starling_net::entry::session::index_of(f.seq) >= last;
                got.push(f);
                if done {
                    return got;
                }
            }
            _ => return got,
        }
    }
}

/// A stream encrypted to one subscriber: the other (a relay of nobody, in the same tree)
/// reads nothing; after the set changes, the removed receiver reads nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_stream_rotates_its_key_when_receivers_change() {
    let owner = peer(&[]).await;
    let alice = peer(&[&owner]).await;
    let bob = peer(&[&owner]).await;
    let mut publisher = match owner.open_stream("cam").unwrap() {
        LiveStream::Publisher(p) => *p,
        other => panic!("expected to own it: {other:?}"),
    };
    let address = publisher.address().to_string();
    let mut subs: Vec<Subscription> = [&alice, &bob]
        .iter()
        .map(|p| match p.open_stream(&address).unwrap() {
            LiveStream::Subscriber(s) => *s,
            other => panic!("expected a subscription: {other:?}"),
        })
        .collect();
    for s in &subs {
        assert!(s.wait_attached(Duration::from_secs(10)).await);
    }
    let only = |k: &Peer| Receivers::new(&owner.public_key(), [k.public_key()]).unwrap();

    publisher.encrypt_to(Some(only(&alice)));
    // Odd frames are written into the publisher's frame buffers (sealed where they lie):
    // incompressible, so no compressed copy is sealed instead.
    let mut sent = Vec::new();
    for i in 0..30 {
        if i % 2 == 1 {
            let noise: Vec<u8> = (0..1500).map(|_| rand::random::<u8>()).collect();
            let mut buf = publisher.frame_buf(noise.len());
            buf.extend_from_slice(&noise);
            publisher.push_buf(buf, false, i * 33_333).unwrap();
            sent.push(Bytes::from(noise));
        } else {
            let f = frame(i);
            sent.push(f.data.clone());
            publisher.push(f).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publisher.flush().unwrap();
    let a = frames_until(&mut subs[0], 29).await;
    assert_eq!(a.len(), 30, "alice reads every frame");
    let got: Vec<Bytes> = a.iter().map(|f| f.data.clone()).collect();
    assert_eq!(got, sent);
    assert!(frames_until(&mut subs[1], 29).await.is_empty());
    assert_eq!(subs[1].stats().unreadable, 30, "bob opens none");
    // Rotate: bob in, alice out.
    publisher.encrypt_to(Some(only(&bob)));
    for i in 30..60 {
        publisher.push(frame(i)).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publisher.flush().unwrap();
    let b = frames_until(&mut subs[1], 59).await;
    assert!(b.len() >= 29, "bob reads after the rotation: {}", b.len());
    assert!(frames_until(&mut subs[0], 59).await.is_empty());
    assert_eq!(
        subs[0].stats().unreadable,
        30,
        "alice opens nothing after it"
    );
}
