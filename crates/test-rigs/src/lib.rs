//! Test rigs shared by every integration test: a real S3 server, child processes that die with
//! the test, a real systemd in a container, a real headless Chromium, and ffprobe reading media.

pub mod chromium;
pub mod container;
pub mod media;
pub mod process;
pub mod proxy;
pub mod s3;
