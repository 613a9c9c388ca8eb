//! Test rigs shared by every integration test: a real S3 server, child processes that die with
//! the test, and a real systemd in a container.

pub mod container;
pub mod process;
pub mod proxy;
pub mod s3;
