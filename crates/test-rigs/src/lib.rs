//! Test rigs shared by every integration test: a real S3 server, child processes that die with
//! the test, a real systemd in a container, and a real headless Chromium.

pub mod chromium;
pub mod container;
pub mod process;
pub mod proxy;
pub mod s3;
