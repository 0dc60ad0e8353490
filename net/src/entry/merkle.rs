//! The Merkle tree a batch signature covers: RFC 9162's shape (left subtree the largest power of
//! two below the size), leaves the entry hashes, nodes `BLAKE3(0x01 ‖ left ‖ right)`.
//!
//! A leaf is BLAKE3 of an entry's signed bytes, which start with the version byte 2 and are longer
//! than 65 bytes, so no leaf input is ever a node input. The signed message also names the batch
//! size, so a proof's shape is fixed by (index, size).

/// A 32-byte tree hash.
pub type Node = [u8; 32];

/// `BLAKE3(0x01 ‖ left ‖ right)`.
pub fn node(left: &Node, right: &Node) -> Node {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root over `leaves` (one leaf: the leaf itself). `leaves` must not be empty.
pub fn root(leaves: &[Node]) -> Node {
    match leaves.len() {
        0 => [0; 32],
        1 => leaves[0],
        n => {
            let k = split(n);
            node(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index`, leaf-side sibling first.
pub fn proof(leaves: &[Node], index: usize) -> Vec<Node> {
    let mut out = Vec::new();
    prove(leaves, index, &mut out);
    out
}

fn prove(leaves: &[Node], index: usize, out: &mut Vec<Node>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        prove(&leaves[..k], index, out);
        out.push(root(&leaves[k..]));
    } else {
        prove(&leaves[k..], index - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// Every leaf's proof at once, each level hashed once (O(n log n) copies, O(n) hashes).
pub fn proofs(leaves: &[Node]) -> (Node, Vec<Vec<Node>>) {
    let mut out = vec![Vec::new(); leaves.len()];
    let r = prove_all(leaves, &mut out);
    (r, out)
}

fn prove_all(leaves: &[Node], out: &mut [Vec<Node>]) -> Node {
    match leaves.len() {
        0 => [0; 32],
        1 => leaves[0],
        n => {
            let k = split(n);
            let (lo, hi) = out.split_at_mut(k);
            let left = prove_all(&leaves[..k], lo);
            let right = prove_all(&leaves[k..], hi);
            for p in lo.iter_mut() {
                p.push(right);
            }
            for p in hi.iter_mut() {
                p.push(left);
            }
            node(&left, &right)
        }
    }
}

/// How many hashes the proof of `index` in a tree of `size` has (0 if out of range).
pub fn proof_len(index: usize, size: usize) -> usize {
    if index >= size {
        return 0;
    }
    let (mut lo, mut n, mut len) = (index, size, 0);
    while n > 1 {
        let k = split(n);
        if lo < k {
            n = k;
        } else {
            lo -= k;
            n -= k;
        }
        len += 1;
    }
    len
}

/// The root a proof leads to from `leaf` at `index` of `size`, or `None` if the proof has the
/// wrong length for that position (RFC 9162 §2.1.3.2).
pub fn root_from_proof(leaf: &Node, index: usize, size: usize, proof: &[Node]) -> Option<Node> {
    if index >= size {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize, salt: u8) -> Vec<Node> {
        (0..n)
            .map(|i| *blake3::hash(&[salt, i as u8, (i >> 8) as u8]).as_bytes())
            .collect()
    }

    #[test]
    fn every_proof_of_every_small_tree_leads_to_its_root() {
        for n in 1..=70 {
            let l = leaves(n, 0);
            let (r, all) = proofs(&l);
            assert_eq!(r, root(&l), "n={n}");
            for i in 0..n {
                assert_eq!(all[i], proof(&l, i), "n={n} i={i}");
                assert_eq!(all[i].len(), proof_len(i, n), "n={n} i={i}");
                assert_eq!(
                    root_from_proof(&l[i], i, n, &all[i]),
                    Some(r),
                    "n={n} i={i}"
                );
            }
        }
    }

    #[test]
    fn a_lone_leaf_is_its_own_root() {
        let l = leaves(1, 3);
        assert_eq!(root(&l), l[0]);
        assert_eq!(root_from_proof(&l[0], 0, 1, &[]), Some(l[0]));
        assert_eq!(root_from_proof(&l[0], 1, 1, &[]), None);
    }

    proptest! {
        #[test]
        fn tampered_proofs_do_not_reach_the_root(
            n in 2usize..300,
            i in any::<prop::sample::Index>(),
            j in any::<prop::sample::Index>(),
            bit in 0usize..256,
            other in any::<prop::sample::Index>(),
        ) {
            let l = leaves(n, 1);
            let i = i.index(n);
            let (r, all) = proofs(&l);
            let p = &all[i];
            // A flipped bit in one proof hash.
            let mut bad = p.clone();
            let at = j.index(bad.len());
            bad[at][bit / 8] ^= 1 << (bit % 8);
            prop_assert_ne!(root_from_proof(&l[i], i, n, &bad), Some(r));
            // The proof of another position, or another leaf, or another size.
            let o = other.index(n);
            if o != i {
                prop_assert_ne!(root_from_proof(&l[o], i, n, p), Some(r));
                prop_assert_ne!(root_from_proof(&l[i], o, n, p), Some(r));
            }
            // (The same proof under another size may reach the same root — a tree of 3 and of 4
            // share the path of leaf 0 — which is why the signed message names the size.)
            // A truncated or extended proof.
            prop_assert_eq!(root_from_proof(&l[i], i, n, &p[..p.len() - 1]), None);
            let mut long = p.clone();
            long.push([0; 32]);
            prop_assert_eq!(root_from_proof(&l[i], i, n, &long), None);
        }
    }
}
