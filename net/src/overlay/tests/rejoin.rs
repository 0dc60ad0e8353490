//! A node re-attaching with its subtree: it passes joiners on to its children (not back to the
//! root), never takes in the node it is asking itself, and a loop that re-attaching subtrees
//! close is left.

use super::swap::{T0, accept, attached, join, received, redirect_to, relay, sends};
use super::*;

/// Node 1 (under the root 0, child 2) told by its parent to move to 7.
fn moving_relay() -> Overlay<u32, P, Check> {
    let mut n = relay();
    let away = redirect_to(7, 0);
    let mut out = Vec::new();
    n.handle(T0 + 10, received(0, away), &mut out);
    assert_eq!(n.parent(&T), None, "joining 7");
    n
}

#[test]
fn a_re_attaching_relay_passes_joiners_to_its_children() {
    let mut n = moving_relay();
    let mut out = Vec::new();
    n.handle(T0 + 20, received(5, join()), &mut out);
    assert_eq!(n.children(&T), &[2], "not into a subtree in flux");
    assert!(
        matches!(&sends(&out)[..], [(5, Message::Redirect { candidates, .. })]
            if candidates.iter().map(|c| c.peer).collect::<Vec<_>>() == [2]),
        "on to its child, not back to the root: {out:?}"
    );
}

#[test]
fn a_re_attaching_relay_sends_the_node_it_asks_to_the_root() {
    let mut n = moving_relay();
    let mut out = Vec::new();
    n.handle(T0 + 20, received(7, join()), &mut out);
    assert_eq!(n.children(&T), &[2]);
    assert!(
        matches!(&sends(&out)[..], [(7, Message::Redirect { candidates, .. })] if candidates[0].peer == 0),
        "{out:?}"
    );
}

#[test]
fn a_node_that_never_attached_sends_joiners_to_the_root() {
    let mut n = Overlay::new(4, config(4), Check, 4);
    let mut out = Vec::new();
    n.handle(
        T0,
        Event::Command(Command::Subscribe { topic: T, root: 0 }),
        &mut out,
    );
    out.clear();
    n.handle(T0 + 10, received(5, join()), &mut out);
    assert!(n.children(&T).is_empty());
    assert!(
        matches!(&sends(&out)[..], [(5, Message::Redirect { candidates, .. })] if candidates[0].peer == 0),
        "{out:?}"
    );
}

#[test]
fn a_parent_whose_path_runs_through_us_is_left_for_the_root() {
    // 2 under 1; then 1 says its path is 0 → 3 → 2 → 1: a loop through us.
    let mut n = attached(2, 2, vec![0, 1], 0);
    let mut out = Vec::new();
    n.handle(
        T0 + 10,
        received(1, accept(vec![0, 3, 2, 1], 0, false)),
        &mut out,
    );
    assert_eq!(n.parent(&T), None, "left");
    let sent = sends(&out);
    assert!(sent.contains(&(1, &Message::Leave { topic: T })), "{out:?}");
    assert!(
        sent.iter()
            .any(|(to, m)| *to == 0 && matches!(m, Message::Join { .. })),
        "asks the root: {out:?}"
    );
    // The root's accept ends the loop.
    out.clear();
    n.handle(T0 + 20, received(0, accept(vec![0], 0, false)), &mut out);
    assert_eq!(n.parent(&T), Some(0));
}
