//! Sessions in a writer's seq: a writer must never sign a seq it signed before — not after
//! losing its log, not after a write that failed but may have reached the disk.
//!
//! An entry's seq is `session << INDEX_BITS | index`. Each time a log is opened it starts a
//! new session, numbered by the time ([`session_at`]: sixteenths of a second since 2020-01-01
//! UTC, 36 bits, good until the year 2156); entries count up from there. So a restarted
//! publisher continues *above* every seq of its earlier sessions, whatever it stored, and
//! their frames — still validly signed — can never be replayed ahead of live ones: they are
//! older by construction, and readers refuse a session older than the newest one the owner
//! vouched for (see the overlay's frame rules and the stream playout).
//!
//! Assumptions, stated: the writer's clock moves forward across restarts (the log never goes
//! below its stored heads, but a writer that lost its log and whose clock was set back starts
//! below the old session: readers that saw that one refuse it until they subscribe again), and
//! two opens of one log are at least 1/16 s apart (else the second continues above the first's
//! stored heads, within its session). A session longer than 2^28 entries runs on into the
//! next session numbers; seqs still only grow, and a later session starts above it as long as
//! it started later than 1/16 s per 2^28 entries of the old one.

/// Bits of a seq that count entries within their session.
pub const INDEX_BITS: u32 = 28;
/// 2020-01-01T00:00:00Z in Unix microseconds: sessions count from there.
const SESSION_EPOCH_UNIX_US: u64 = 1_577_836_800_000_000;
/// One session tick: 1/16 s.
const SESSION_TICK_US: u64 = 62_500;

/// The session a log started at `unix_us` has (clocks before 2020 give session 0).
pub fn session_at(unix_us: u64) -> u64 {
    unix_us.saturating_sub(SESSION_EPOCH_UNIX_US) / SESSION_TICK_US
}

/// The first seq of `session`.
pub fn first_seq(session: u64) -> u64 {
    session << INDEX_BITS
}

/// The session `seq` belongs to.
pub fn session_of(seq: u64) -> u64 {
    seq >> INDEX_BITS
}

/// `seq`'s position within its session (0 for a session's first entry).
pub fn index_of(seq: u64) -> u64 {
    seq & ((1 << INDEX_BITS) - 1)
}

/// How many entries a reader missed between `prev` and a later `next`: within a session, the
/// ones between; in a newer session, that session's entries before `next` (how much of the old
/// session's tail never arrived is unknown, and counting the distance would report 2^28 per
/// session). 0 when `next` is not after `prev`.
pub fn missed_between(prev: u64, next: u64) -> u64 {
    if next <= prev {
        0
    } else if session_of(next) == session_of(prev) {
        next - prev - 1
    } else {
        index_of(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_session_starts_above_every_seq_of_an_earlier_one() {
        let t = 1_796_000_000_000_000; // late 2026
        let old = first_seq(session_at(t));
        let new = first_seq(session_at(t + SESSION_TICK_US));
        assert!(new > old + (1 << INDEX_BITS) - 1);
        assert_eq!(session_of(old + 12_345), session_at(t));
        assert_eq!(index_of(old + 12_345), 12_345);
        assert_eq!(index_of(new), 0);
        // 36 bits of session last past the year 2156.
        let year_2156 = SESSION_EPOCH_UNIX_US + 136 * 365 * 86_400 * 1_000_000;
        assert!(session_at(year_2156) < 1 << (64 - INDEX_BITS));
        assert_eq!(session_at(0), 0);
    }

    #[test]
    fn missed_counts_within_a_session_and_from_a_new_sessions_start() {
        let s = first_seq(900);
        assert_eq!(missed_between(s + 3, s + 4), 0);
        assert_eq!(missed_between(s + 3, s + 10), 6);
        assert_eq!(missed_between(s + 10, s + 3), 0);
        assert_eq!(missed_between(s + 10, s + 10), 0);
        let later = first_seq(901);
        assert_eq!(missed_between(s + 7, later), 0);
        assert_eq!(missed_between(s + 7, later + 5), 5);
    }
}
