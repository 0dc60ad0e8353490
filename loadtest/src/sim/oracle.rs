//! Reference trees for the same world, built with full knowledge: where every node is and how
//! long every uplink takes. The overlay has to discover all of that by probing. Printed beside
//! the simulated tree (like the other load tests print a raw baseline), they separate what the
//! model imposes — every relay hop pays the minimum link latency and a turn on the relay's
//! uplink — from what the overlay's placement loses.

use super::model::VERIFY_US;
use super::world::World;

/// Above this many members the O(n²) construction takes longer than the simulation itself.
pub(crate) const MAX_MEMBERS: usize = 20_000;

/// Greedy minimum-delay tree with at most `max_children` per node: members are placed in the
/// given order, each under the node (root or already placed member) that delivers to it first,
/// counting its turn on that node's uplink (frames of `frame_bytes`, plus the world's
/// verification delay per send). Returns each member's stretch (delivery latency ÷ direct
/// latency, ×100) and depth.
///
/// Placed nearest-first this is the classic heuristic for minimum-delay degree-bounded trees
/// (the exact problem is NP-hard) — the bar for any placement. Placed in arrival order it is
/// what full knowledge could do without moving anyone already placed.
pub(crate) fn reference_tree(
    w: &World,
    root: u32,
    order: &[u32],
    max_children: usize,
    frame_bytes: u64,
) -> (Vec<u64>, Vec<u64>) {
    let send_us = |node: u32| {
        VERIFY_US + (frame_bytes as f64 * 1e6 / w.hosts[node as usize].upload_bps) as u64
    };
    // Placed nodes with a free slot: (node, arrival µs, children so far, depth).
    let mut open: Vec<(u32, u64, usize, u64)> = vec![(root, 0, 0, 0)];
    let (mut stretch_x100, mut depths) = (Vec::new(), Vec::new());
    for &m in order {
        let best = open
            .iter()
            .enumerate()
            .map(|(i, (p, at, used, _))| {
                (i, at + (*used as u64 + 1) * send_us(*p) + w.latency(*p, m))
            })
            .min_by_key(|(_, arrival)| *arrival);
        let Some((i, arrival)) = best else {
            break;
        };
        let depth = open[i].3 + 1;
        open[i].2 += 1;
        if open[i].2 >= max_children {
            open.swap_remove(i);
        }
        open.push((m, arrival, 0, depth));
        stretch_x100.push(arrival * 100 / w.latency(root, m).max(1));
        depths.push(depth);
    }
    (stretch_x100, depths)
}

/// The value at quantile `q` of unsorted samples (0 when there are none).
pub(crate) fn quantile(mut samples: Vec<u64>, q: f64) -> u64 {
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * q).ceil() as usize).max(1);
    samples.get(rank - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use starling_net::overlay::OverlayConfig;

    use super::*;

    #[test]
    fn quantiles_pick_the_rank() {
        assert_eq!(quantile(vec![], 0.95), 0);
        assert_eq!(quantile(vec![5], 0.95), 5);
        assert_eq!(quantile((1..=100).rev().collect(), 0.95), 95);
    }

    /// Nearest-first beats farthest-first, every member is placed within the fan-out's depth,
    /// and no path beats the direct link (the world obeys the triangle inequality).
    #[test]
    fn the_reference_tree_respects_the_bound_and_the_order_matters() {
        let config = OverlayConfig::default();
        let w = World::new(201, &config, 3, 5.0, 100.0, 12.5e6, 0.0);
        let members: Vec<u32> = (1..201).collect();
        let mut nearest = members.clone();
        nearest.sort_by_key(|m| w.latency(0, *m));
        let mut farthest = nearest.clone();
        farthest.reverse();
        let (good, depth) = reference_tree(&w, 0, &nearest, 4, 16_384);
        let (bad, _) = reference_tree(&w, 0, &farthest, 4, 16_384);
        assert_eq!(good.len(), 200);
        assert!(depth.iter().all(|d| (1..=10).contains(d)), "{depth:?}");
        assert!(quantile(good.clone(), 0.95) < quantile(bad, 0.95));
        assert!(
            good.iter().all(|s| *s >= 100),
            "nothing beats the direct link"
        );
    }
}
