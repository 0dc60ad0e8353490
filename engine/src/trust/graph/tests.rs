use starling_net::{KeyType, Keypair};

use super::*;

fn key() -> PublicKey {
    *Keypair::generate(KeyType::Ed25519).public()
}

fn delegate(subject: &PublicKey, may_delegate: bool) -> Statement {
    Statement::Delegate {
        subject: subject.encode_protobuf(),
        scopes: Vec::new(),
        expires_us: None,
        may_delegate,
    }
}

fn revoke(subject: &PublicKey) -> Statement {
    Statement::Revoke {
        subject: subject.encode_protobuf(),
    }
}

fn at(t: u64) -> Stamp {
    (t, 0, [t as u8; 32])
}

fn trusted(g: &TrustGraph, k: &PublicKey, t: u64) -> bool {
    g.verdict(k, t, None, true).is_trusted()
}

#[test]
fn a_chain_of_delegations_is_followed_and_shown() {
    let (root, a, b, c) = (key(), key(), key(), key());
    let mut g = TrustGraph::new(root);
    g.insert(root, at(10), delegate(&a, true));
    g.insert(a, at(20), delegate(&b, true));
    g.insert(b, at(30), delegate(&c, false));
    assert_eq!(
        g.verdict(&c, 40, None, true),
        Verdict::Trusted {
            chain: vec![a, b, c]
        }
    );
    assert!(trusted(&g, &root, 0), "the root always is");
    assert!(!trusted(&g, &c, 25), "not before its delegation");
    assert!(!trusted(&g, &b, 15));
    // c may not delegate: its delegate is not trusted.
    let d = key();
    g.insert(c, at(50), delegate(&d, false));
    assert!(!trusted(&g, &d, 60));
    assert_eq!(g.verdict(&d, 60, None, false), Verdict::CatchingUp);
}

#[test]
fn delegations_expire() {
    let (root, a) = (key(), key());
    let mut g = TrustGraph::new(root);
    g.insert(
        root,
        at(10),
        Statement::Delegate {
            subject: a.encode_protobuf(),
            scopes: Vec::new(),
            expires_us: Some(100),
            may_delegate: false,
        },
    );
    assert!(trusted(&g, &a, 99));
    assert!(!trusted(&g, &a, 100));
}

#[test]
fn scopes_narrow_what_a_chain_is_good_for() {
    let (root, a, b) = (key(), key(), key());
    let mut g = TrustGraph::new(root);
    let scoped = |s: &PublicKey, scopes: &[&str]| Statement::Delegate {
        subject: s.encode_protobuf(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires_us: None,
        may_delegate: true,
    };
    g.insert(root, at(1), scoped(&a, &["write"]));
    g.insert(a, at(2), scoped(&b, &[]));
    assert!(g.verdict(&b, 5, Some("write"), true).is_trusted());
    assert!(!g.verdict(&b, 5, Some("admin"), true).is_trusted());
    assert!(g.verdict(&a, 5, None, true).is_trusted());
}

/// Revocation takes effect from its clock on: before it the key is trusted, after it not;
/// the chain below it falls with it; a later delegation restores it.
#[test]
fn revocations_take_effect_from_their_clock() {
    let (root, a, b) = (key(), key(), key());
    let mut g = TrustGraph::new(root);
    g.insert(root, at(10), delegate(&a, true));
    g.insert(a, at(20), delegate(&b, false));
    g.insert(root, at(50), revoke(&a));
    assert!(trusted(&g, &a, 49) && trusted(&g, &b, 49));
    assert!(!trusted(&g, &a, 50) && !trusted(&g, &b, 50));
    // A delegation a signs after its revocation never counts, whatever clock it claims —
    // later than the revocation it is cut; earlier, it still falls at 50.
    let c = key();
    g.insert(a, at(60), delegate(&c, false));
    assert!(!trusted(&g, &c, 70));
    g.insert(root, at(80), delegate(&a, true));
    assert!(trusted(&g, &a, 80));
    assert!(
        trusted(&g, &b, 80),
        "a's old delegation counts again with a"
    );
}

/// An intermediate issuer's revocation removes its own delegation only; another issuer's
/// delegation keeps the key trusted. The root's removes it from every issuer.
#[test]
fn an_issuer_revokes_its_own_delegation_the_root_revokes_all() {
    let (root, a, b, k) = (key(), key(), key(), key());
    let mut g = TrustGraph::new(root);
    g.insert(root, at(1), delegate(&a, true));
    g.insert(root, at(1), delegate(&b, true));
    g.insert(a, at(2), delegate(&k, false));
    g.insert(b, at(3), delegate(&k, false));
    g.insert(a, at(10), revoke(&k));
    assert!(trusted(&g, &k, 11), "still through b");
    g.insert(root, at(20), revoke(&k));
    assert!(!trusted(&g, &k, 21));
    assert!(trusted(&g, &k, 15));
}

#[test]
fn a_forged_delegation_from_an_untrusted_key_counts_for_nothing() {
    let (root, mallory, m2) = (key(), key(), key());
    let mut g = TrustGraph::new(root);
    // Mallory vouches for itself and a friend: no chain from the root.
    g.insert(mallory, at(1), delegate(&mallory, true));
    g.insert(mallory, at(2), delegate(&m2, true));
    assert!(!trusted(&g, &mallory, 10) && !trusted(&g, &m2, 10));
}

#[test]
fn cycles_terminate_and_count_for_nothing() {
    let (root, a, b, c) = (key(), key(), key(), key());
    let mut g = TrustGraph::new(root);
    // A cycle with no way in from the root.
    g.insert(a, at(1), delegate(&b, true));
    g.insert(b, at(2), delegate(&c, true));
    g.insert(c, at(3), delegate(&a, true));
    assert!(!trusted(&g, &a, 10) && !trusted(&g, &c, 10));
    // Rooted, a cycle is harmless (and statements made before their issuer was trusted
    // still count for nothing).
    let (x, y) = (key(), key());
    g.insert(root, at(4), delegate(&x, true));
    g.insert(x, at(5), delegate(&y, true));
    g.insert(y, at(6), delegate(&x, true));
    assert!(trusted(&g, &y, 10));
    assert_eq!(
        g.verdict(&x, 10, None, true),
        Verdict::Trusted { chain: vec![x] }
    );
    g.insert(root, at(7), delegate(&a, true));
    assert!(trusted(&g, &a, 10));
    assert!(!trusted(&g, &b, 10), "a vouched for b before a was trusted");
}

#[test]
fn chains_longer_than_the_limit_are_not_followed() {
    let root = key();
    let mut g = TrustGraph::new(root);
    let mut prev = root;
    let keys: Vec<PublicKey> = (0..MAX_DEPTH + 2).map(|_| key()).collect();
    for (i, k) in keys.iter().enumerate() {
        g.insert(prev, at(i as u64 + 1), delegate(k, true));
        prev = *k;
    }
    assert!(trusted(&g, &keys[MAX_DEPTH - 2], 1000));
    assert!(!trusted(&g, &keys[MAX_DEPTH + 1], 1000));
}

/// The same statements in any order give the same verdicts (every peer decides the same).
#[test]
fn insertion_order_does_not_change_verdicts() {
    let (root, a, w) = (key(), key(), key());
    let statements = vec![
        (root, at(10), delegate(&a, true)),
        (a, at(20), delegate(&w, false)),
        (root, at(35), revoke(&a)),
        (root, at(35), revoke(&a)),
    ];
    let mut forward = TrustGraph::new(root);
    let mut backward = TrustGraph::new(root);
    for (i, s, st) in statements.iter().cloned() {
        forward.insert(i, s, st);
    }
    for (i, s, st) in statements.into_iter().rev() {
        backward.insert(i, s, st);
    }
    assert_eq!(forward.len(), 3);
    for t in [5, 15, 25, 34, 35, 40] {
        assert_eq!(
            forward.verdict(&w, t, None, true),
            backward.verdict(&w, t, None, true),
            "at {t}"
        );
    }
    // A write w signed at 34 stands; one at 36, concurrent with the revocation, falls.
    assert!(trusted(&forward, &w, 34) && !trusted(&forward, &w, 36));
}

#[test]
fn only_new_delegations_grow_a_graph() {
    let (root, a, b) = (key(), key(), key());
    let mut old = TrustGraph::new(root);
    old.insert(root, at(1), delegate(&a, true));
    let same = old.clone();
    assert!(same.only_grows_from(&old));
    // A new delegation (a new issuer about a subject, or a new subject) only adds trust.
    let mut grown = old.clone();
    grown.insert(root, at(2), delegate(&b, false));
    grown.insert(a, at(3), delegate(&b, false));
    assert!(grown.only_grows_from(&old));
    assert!(!old.only_grows_from(&grown), "a statement gone");
    // A revocation, or a delegation replacing one from the same issuer, may narrow it.
    let mut revoked = grown.clone();
    revoked.insert(a, at(4), revoke(&b));
    assert!(!revoked.only_grows_from(&grown));
    let mut replaced = grown.clone();
    replaced.insert(root, at(5), delegate(&a, false));
    assert!(!replaced.only_grows_from(&grown));
    assert!(
        !grown.only_grows_from(&TrustGraph::new(key())),
        "another root"
    );
}
