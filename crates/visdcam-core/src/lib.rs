//! visdcam's pure core: configuration, object keys, segment names, unit names, backoff and the
//! other decisions the daemons make. No I/O happens here: callers pass in file contents, times
//! and measurements, and get back values. That keeps every rule unit-testable with data.

pub mod alerts;
pub mod backoff;
pub mod budget;
pub mod camvars;
pub mod cli;
pub mod clock;
pub mod config;
pub mod encoder;
pub mod envfile;
pub mod error;
pub mod footage;
pub mod keys;
pub mod live;
pub mod migrate;
pub mod monitor;
pub mod objectlock;
pub mod presets;
pub mod rate;
pub mod ratelimit;
pub mod recorder;
pub mod segment;
pub mod tcplan;
pub mod top;
pub mod units;
pub mod upload;
