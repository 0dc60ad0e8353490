//! `repl-sim`: sharded replication in virtual time — thousands of replicators running the
//! engine's placement core (`starling_engine::shard`: placements, duties, readiness,
//! prunable) over a million documents, with churn; deterministic from `--seed`. The same run
//! plays a naive baseline with the rules taken away (a newcomer counts at once, a leaver just
//! goes, anything not held by the target placement is dropped unconfirmed) to show what the
//! rules buy.
//!
//! Model: time moves in ticks of 100 ms. Every replicator knows the same membership (news of
//! a join, leave or ready is instant; a crash is noticed `--dead-after` later). Churn is
//! replacement: each event one replicator leaves (or crashes, `--crash`) and another joins,
//! taking the second half of the widest share (`Ring::join_ranges`). A replicator works when
//! its duties change, a partner gained entries, or it has something left to do: it pulls what
//! its partners hold in the spans they share and it lacks (as reconciliation would; sends land
//! next tick), limited by its bandwidth; a newcomer compares each span it must fetch with a
//! settled holder's and is ready when all match; what it holds outside the spans it keeps (a
//! leaver: everything) it pushes to the target holders and deletes once all of them hold it.
//! Documents are identified by their ring point.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use starling_engine::shard::{
    Announcement, Duty, Point, Range, Readiness, Ring, Span, Views, keeping_duties,
};
use starling_net::overlay::SplitMix64;

use crate::util::peak_rss_mb;

/// Arguments of `repl-sim`.
#[derive(Debug, Args)]
pub(crate) struct ReplSimArgs {
    /// Replicators at the start (and on average).
    #[arg(long, default_value_t = 1000)]
    replicators: usize,
    /// Documents written at the start.
    #[arg(long, default_value_t = 1_000_000)]
    docs: usize,
    /// Replicas per document (the store's `min`).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Share of replicators that leave (and as many that join) per minute.
    #[arg(long, default_value_t = 0.05)]
    churn: f64,
    /// Ranges each replicator declares (several average its share over several stretches).
    #[arg(long, default_value_t = 1)]
    ranges_per_node: usize,
    /// Share of the leavers that crash instead of leaving (their data is gone at once).
    #[arg(long, default_value_t = 0.0)]
    crash: f64,
    /// Virtual minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Seconds until a crashed replicator is noticed.
    #[arg(long, default_value_t = 3.0)]
    dead_after: f64,
    /// Each replicator's bandwidth for moving documents, MB/s.
    #[arg(long, default_value_t = 100.0)]
    node_mb_s: f64,
    /// Bytes per document.
    #[arg(long, default_value_t = 1024)]
    doc_bytes: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const TICK_S: f64 = 0.1;

/// Which rules a run follows.
#[derive(Clone, Copy, Debug)]
struct Rules {
    /// A newcomer's range counts once it holds its data (else at once).
    wait_ready: bool,
    /// A leaver stays until what it holds is confirmed elsewhere (else it goes at once).
    hand_off: bool,
    /// Entries outside the kept spans are pushed and deleted once every target holder holds
    /// them (else dropped at once).
    confirm_prune: bool,
}

const OURS: Rules = Rules {
    wait_ready: true,
    hand_off: true,
    confirm_prune: true,
};
const NAIVE: Rules = Rules {
    wait_ready: false,
    hand_off: false,
    confirm_prune: false,
};

#[derive(Debug, Serialize)]
struct Figures {
    lost: u64,
    under_replicated_p99_pct: f64,
    under_replicated_max_pct: f64,
    under_replicated_final: u64,
    balance_max_over_mean: f64,
    stored_over_ideal: f64,
    rebalance_mb: f64,
    joins: u64,
    leaves: u64,
    crashes: u64,
    replicators_end: usize,
    wall_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    replicators: usize,
    docs: usize,
    replicas: usize,
    churn_per_min: f64,
    crash_share: f64,
    minutes: f64,
    seed: u64,
    lost: u64,
    under_replicated_p99_pct: f64,
    balance_max_over_mean: f64,
    stored_over_ideal: f64,
    rebalance_mb: f64,
    wall_s: f64,
    peak_rss_mb: f64,
    ours: Figures,
    naive: Figures,
    naive_lost: u64,
    naive_under_replicated_p99_pct: f64,
}

pub(crate) fn run(args: ReplSimArgs) -> Result<()> {
    anyhow::ensure!(args.replicators >= 1, "--replicators must be at least 1");
    anyhow::ensure!(args.replicas >= 1, "--replicas must be at least 1");
    println!(
        "repl-sim: {} replicators, {} docs × {} replicas, churn {}/min ({} crash), {} min",
        args.replicators, args.docs, args.replicas, args.churn, args.crash, args.minutes
    );
    let ours = World::new(&args, OURS).run();
    print_figures("ours", &ours);
    let naive = World::new(&args, NAIVE).run();
    print_figures("naive", &naive);
    let report = Report {
        scenario: "repl-sim",
        replicators: args.replicators,
        docs: args.docs,
        replicas: args.replicas,
        churn_per_min: args.churn,
        crash_share: args.crash,
        minutes: args.minutes,
        seed: args.seed,
        lost: ours.lost,
        under_replicated_p99_pct: ours.under_replicated_p99_pct,
        balance_max_over_mean: ours.balance_max_over_mean,
        stored_over_ideal: ours.stored_over_ideal,
        rebalance_mb: ours.rebalance_mb,
        wall_s: ours.wall_s,
        peak_rss_mb: peak_rss_mb(),
        naive_lost: naive.lost,
        naive_under_replicated_p99_pct: naive.under_replicated_p99_pct,
        ours,
        naive,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn print_figures(name: &str, f: &Figures) {
    println!(
        "{name:>6}: lost {} · under-replicated p99 {:.4} % (max {:.3} %, at the end {}) · \
         balance max/mean {:.3} · stored/ideal {:.3} · moved {:.0} MB · joins {} leaves {} \
         crashes {} · {} replicators at the end · {:.1} s",
        f.lost,
        f.under_replicated_p99_pct,
        f.under_replicated_max_pct,
        f.under_replicated_final,
        f.balance_max_over_mean,
        f.stored_over_ideal,
        f.rebalance_mb,
        f.joins,
        f.leaves,
        f.crashes,
        f.replicators_end,
        f.wall_s
    );
}

/// One simulated replicator.
#[derive(Debug, Default)]
struct Node {
    /// Alive (a crashed or departed node is not).
    alive: bool,
    /// Announced no ranges; goes once it holds nothing.
    leaving: bool,
    announced: Announcement,
    readiness: Readiness,
    held: BTreeSet<Point>,
    /// Pulled or pushed to it, landing at the next tick.
    arriving: BTreeSet<Point>,
    /// Where it keeps entries (its [`Duty`]s that are not prune).
    duties: Vec<Duty<u32>>,
    /// Something to do: its duties changed, a partner gained entries, it is joining, or it
    /// holds what it must hand off. (Reconciliation between partners that hold the same
    /// costs one fingerprint each way: the simulator skips it.)
    dirty: bool,
}

struct World {
    rules: Rules,
    replicas: usize,
    doc_bytes: u64,
    churn_per_tick: f64,
    crash: f64,
    ranges_per_node: usize,
    ticks: u64,
    dead_after: f64,
    budget_per_tick: usize,
    rng: SplitMix64,
    now: f64,
    nodes: Vec<Node>,
    /// Crashed nodes still in the membership, with when they will be noticed.
    unnoticed: Vec<(u32, f64)>,
    /// Documents' points, sorted (a document is its point).
    points: Vec<Point>,
    /// Live holders of each document.
    copies: Vec<u8>,
    under: u64,
    lost: u64,
    moved_bytes: u64,
    views: Arc<Views<u32>>,
    views_stale: bool,
    samples: Vec<u64>,
    joins: u64,
    leaves: u64,
    crashes: u64,
}

impl World {
    fn new(args: &ReplSimArgs, rules: Rules) -> World {
        let mut rng = SplitMix64::new(args.seed);
        let mut points: Vec<Point> = (0..args.docs).map(|_| rng.next_u64()).collect();
        points.sort_unstable();
        points.dedup();
        let mut w = World {
            rules,
            replicas: args.replicas,
            doc_bytes: args.doc_bytes,
            churn_per_tick: args.churn * args.replicators as f64 * TICK_S / 60.0,
            crash: args.crash,
            ranges_per_node: args.ranges_per_node.clamp(1, 16),
            ticks: (args.minutes * 60.0 / TICK_S).round() as u64,
            dead_after: args.dead_after,
            budget_per_tick: ((args.node_mb_s * 1e6 * TICK_S) / args.doc_bytes as f64).max(1.0)
                as usize,
            rng,
            now: 0.0,
            nodes: Vec::new(),
            unnoticed: Vec::new(),
            copies: vec![0; points.len()],
            points,
            under: 0,
            lost: 0,
            moved_bytes: 0,
            views: Arc::new(Views::of(std::iter::empty(), 1)),
            views_stale: true,
            samples: Vec::new(),
            joins: 0,
            leaves: 0,
            crashes: 0,
        };
        // The starting replicators are laid out evenly (as an operator starting a cluster
        // would give them ranges) and ready: the documents are written to their holders.
        let (n, v) = (args.replicators as u64, w.ranges_per_node as u64);
        let width = u64::MAX / (n * v);
        for i in 0..n {
            let ranges = (0..v)
                .map(|j| Range {
                    offset: (j * n + i) * width,
                    width,
                })
                .collect();
            w.nodes.push(Node {
                alive: true,
                announced: Announcement {
                    ranges,
                    ready: true,
                    leaving: false,
                },
                ..Node::default()
            });
        }
        w.refresh_views();
        w.under = w.points.len() as u64;
        w.lost = w.points.len() as u64;
        for i in 0..w.points.len() {
            let p = w.points[i];
            for h in w.views.target.holders(p).to_vec() {
                w.nodes[h as usize].held.insert(p);
                w.add_copy(i);
            }
        }
        w
    }

    fn target_ring(&self) -> Ring<u32> {
        Ring::new(
            self.members()
                .filter(|(_, a)| !a.leaving)
                .flat_map(|(id, a)| a.ranges.iter().map(move |r| (id, *r)).collect::<Vec<_>>()),
        )
    }

    /// Nodes in the membership: alive, or crashed and not noticed yet.
    fn members(&self) -> impl Iterator<Item = (u32, &Announcement)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| {
            let unnoticed = self.unnoticed.iter().any(|(c, _)| *c == i as u32);
            (n.alive || unnoticed).then_some((i as u32, &n.announced))
        })
    }

    fn refresh_views(&mut self) {
        if !self.views_stale {
            return;
        }
        self.views_stale = false;
        let ids: Vec<(u32, Announcement)> = self.members().map(|(i, a)| (i, a.clone())).collect();
        self.views = Arc::new(Views::of(ids.iter().map(|(i, a)| (i, a)), self.replicas));
        let mut all = keeping_duties(&self.views);
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let duties = all.remove(&(i as u32)).unwrap_or_default();
            if node.duties != duties {
                node.duties = duties;
                node.dirty = true;
            }
        }
    }

    fn index(&self, p: Point) -> usize {
        self.points.partition_point(|x| *x < p)
    }

    fn add_copy(&mut self, i: usize) {
        let r = self.replicas as u8;
        self.copies[i] += 1;
        if self.copies[i] == 1 {
            self.lost -= 1;
        }
        if self.copies[i] == r {
            self.under -= 1;
        }
    }

    fn drop_copy(&mut self, i: usize) {
        let r = self.replicas as u8;
        if self.copies[i] == r {
            self.under += 1;
        }
        self.copies[i] -= 1;
        if self.copies[i] == 0 {
            self.lost += 1;
        }
    }

    fn run(mut self) -> Figures {
        let wall = Instant::now();
        for _ in 0..self.ticks {
            self.now += TICK_S;
            self.churn();
            self.notice_crashes();
            self.refresh_views();
            self.work();
            self.refresh_views();
            self.samples.push(self.under);
        }
        self.figures(wall.elapsed().as_secs_f64())
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Replacements due this tick: each one replicator leaving (or crashing) and another
    /// joining.
    fn churn(&mut self) {
        let whole = self.churn_per_tick.floor();
        let frac = self.churn_per_tick - whole;
        let due = whole as usize + usize::from(self.chance(frac));
        for _ in 0..due {
            self.leave_one();
            self.join_one();
        }
    }

    fn join_one(&mut self) {
        self.refresh_views();
        let ranges = self.target_ring().join_ranges(self.ranges_per_node);
        self.nodes.push(Node {
            alive: true,
            announced: Announcement {
                ranges,
                ready: !self.rules.wait_ready,
                leaving: false,
            },
            dirty: true,
            ..Node::default()
        });
        self.joins += 1;
        self.views_stale = true;
    }

    fn leave_one(&mut self) {
        let candidates: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| {
                let n = &self.nodes[i as usize];
                n.alive && !n.leaving && n.announced.ready
            })
            .collect();
        if candidates.len() <= self.replicas {
            return;
        }
        let id = candidates[(self.rng.next_u64() % candidates.len() as u64) as usize];
        if self.chance(self.crash) && self.crash > 0.0 {
            self.crashes += 1;
            self.kill(id);
            self.unnoticed.push((id, self.now + self.dead_after));
        } else {
            self.leaves += 1;
            if self.rules.hand_off {
                let n = &mut self.nodes[id as usize];
                n.leaving = true;
                n.announced.leaving = true;
                n.dirty = true;
            } else {
                self.kill(id);
            }
            self.views_stale = true;
        }
    }

    /// The node is gone with its data.
    fn kill(&mut self, id: u32) {
        let held = std::mem::take(&mut self.nodes[id as usize].held);
        self.nodes[id as usize].alive = false;
        for p in held {
            let i = self.index(p);
            self.drop_copy(i);
        }
    }

    fn notice_crashes(&mut self) {
        let now = self.now;
        let before = self.unnoticed.len();
        self.unnoticed.retain(|(_, at)| *at > now);
        if self.unnoticed.len() != before {
            self.views_stale = true;
        }
    }

    fn work(&mut self) {
        self.land();
        for id in 0..self.nodes.len() as u32 {
            let n = &self.nodes[id as usize];
            if !n.alive || !n.dirty {
                continue;
            }
            let mut budget = self.budget_per_tick;
            let mut busy = self.pull(id, &mut budget);
            let n = &self.nodes[id as usize];
            if !busy && n.arriving.is_empty() && !n.announced.ready {
                self.check_ready(id);
            }
            busy |= self.prune(id, &mut budget);
            let n = &mut self.nodes[id as usize];
            n.dirty = busy || !n.arriving.is_empty() || !n.announced.ready;
            if n.leaving && n.held.is_empty() {
                n.alive = false;
                self.views_stale = true;
            }
        }
    }

    /// What was sent last tick lands; the partners of a node that gained entries look again.
    fn land(&mut self) {
        let mut gained = Vec::new();
        for id in 0..self.nodes.len() {
            let arriving = std::mem::take(&mut self.nodes[id].arriving);
            if arriving.is_empty() || !self.nodes[id].alive {
                continue;
            }
            gained.push(id);
            for p in arriving {
                if self.nodes[id].held.insert(p) {
                    let i = self.index(p);
                    self.add_copy(i);
                }
            }
        }
        for id in gained {
            let partners: Vec<u32> = self.nodes[id]
                .duties
                .iter()
                .flat_map(|d| d.target.iter().chain(&d.settled).copied())
                .collect();
            for p in partners {
                self.nodes[p as usize].dirty = true;
            }
        }
    }

    /// Pulls what the partners of each kept span hold and this node lacks; whether the budget
    /// ran out first.
    fn pull(&mut self, id: u32, budget: &mut usize) -> bool {
        let mut wanted: Vec<Point> = Vec::new();
        let node = &self.nodes[id as usize];
        for duty in &node.duties {
            for &p in duty.target.iter().chain(&duty.settled) {
                let partner = &self.nodes[p as usize];
                if p == id || !partner.alive {
                    continue;
                }
                for &x in range(&partner.held, duty.span) {
                    if !node.held.contains(&x) && !node.arriving.contains(&x) {
                        wanted.push(x);
                    }
                }
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let short = wanted.len() > *budget;
        wanted.truncate(*budget);
        *budget -= wanted.len();
        self.moved_bytes += wanted.len() as u64 * self.doc_bytes;
        self.nodes[id as usize].arriving.extend(wanted);
        short
    }

    /// A newcomer compares each pending span with a live settled holder's; ready when none
    /// is left.
    fn check_ready(&mut self, id: u32) {
        let node = &self.nodes[id as usize];
        let pending = node.readiness.pending(&node.duties, &id);
        let mut matched = Vec::new();
        for (span, settled) in &pending {
            let same = settled.iter().any(|&s| {
                let other = &self.nodes[s as usize];
                other.alive && range(&other.held, *span).eq(range(&node.held, *span))
            });
            if same {
                matched.push(*span);
            }
        }
        let all = matched.len() == pending.len();
        let node = &mut self.nodes[id as usize];
        for span in matched {
            node.readiness.matched(span);
        }
        if all {
            node.announced.ready = true;
            self.views_stale = true;
        }
    }

    /// Deals with what the node holds outside the spans it keeps; whether some is left.
    fn prune(&mut self, id: u32, budget: &mut usize) -> bool {
        let node = &self.nodes[id as usize];
        // A leaver keeps nothing: all it holds goes once confirmed at the target holders.
        let kept: Vec<Span> = if node.leaving {
            Vec::new()
        } else {
            node.duties.iter().map(|d| d.span).collect()
        };
        let foreign: Vec<Point> = node
            .held
            .iter()
            .copied()
            .filter(|p| !in_spans(&kept, *p))
            .collect();
        if foreign.is_empty() {
            return false;
        }
        let mut left = false;
        for p in foreign {
            let holders = self.views.target.holders(p).to_vec();
            let i = self.index(p);
            if self.rules.confirm_prune {
                // Push to target holders that lack it, then delete once all hold it.
                let mut all_hold = !holders.is_empty();
                for h in holders {
                    let other = &self.nodes[h as usize];
                    if !other.alive {
                        all_hold = false;
                        continue;
                    }
                    if !other.held.contains(&p) {
                        all_hold = false;
                        if *budget > 0 && !other.arriving.contains(&p) {
                            *budget -= 1;
                            self.nodes[h as usize].arriving.insert(p);
                            self.moved_bytes += self.doc_bytes;
                        }
                    }
                }
                if !all_hold {
                    left = true;
                    continue;
                }
            }
            self.nodes[id as usize].held.remove(&p);
            self.drop_copy(i);
        }
        left
    }

    fn figures(&self, wall_s: f64) -> Figures {
        let docs = self.points.len() as f64;
        let mut samples = self.samples.clone();
        samples.sort_unstable();
        let p99 = samples
            .get((samples.len() as f64 * 0.99) as usize)
            .or(samples.last())
            .copied()
            .unwrap_or(0);
        let live: Vec<usize> = self
            .nodes
            .iter()
            .filter(|n| n.alive && !n.leaving)
            .map(|n| n.held.len())
            .collect();
        let stored: usize = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.held.len())
            .sum();
        let mean = live.iter().sum::<usize>() as f64 / live.len().max(1) as f64;
        let max = live.iter().copied().max().unwrap_or(0) as f64;
        Figures {
            lost: self.lost,
            under_replicated_p99_pct: p99 as f64 * 100.0 / docs,
            under_replicated_max_pct: samples.last().copied().unwrap_or(0) as f64 * 100.0 / docs,
            under_replicated_final: self.under,
            balance_max_over_mean: if mean > 0.0 { max / mean } else { 0.0 },
            stored_over_ideal: stored as f64 / (docs * self.replicas as f64),
            rebalance_mb: self.moved_bytes as f64 / 1e6,
            joins: self.joins,
            leaves: self.leaves,
            crashes: self.crashes,
            replicators_end: live.len(),
            wall_s,
        }
    }
}

/// The points of `set` inside `span`.
fn range(set: &BTreeSet<Point>, span: Span) -> std::collections::btree_set::Range<'_, Point> {
    match span.end {
        Some(end) => set.range(span.start..end),
        None => set.range(span.start..),
    }
}

/// Whether `p` is inside one of `spans` (in ring order).
fn in_spans(spans: &[Span], p: Point) -> bool {
    let i = spans.partition_point(|s| s.start <= p);
    i > 0 && spans[i - 1].contains(p)
}
