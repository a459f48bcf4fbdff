//! One module per top-level command.

pub mod bench;
pub mod bench_batch;
pub mod bench_hostile;
pub mod bench_load;
pub mod feed;
pub mod phoenix;
pub mod plot;
pub mod plot_png;
pub mod serve;
pub mod thunder;
pub mod world;
