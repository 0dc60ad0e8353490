//! # starling-benches
//!
//! Criterion benchmarks of Starling's hot paths live in `benches/`; run them with
//! `cargo bench -p starling-benches`. Whole-system comparisons against baselines (raw quinn,
//! raw fjall) are `starling-loadtest` scenarios.
