//! A real S3 server (SeaweedFS) on a free loopback port.
