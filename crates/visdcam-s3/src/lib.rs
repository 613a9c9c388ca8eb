//! visdcam's one S3 client, shared by the uploader, `visdcam doctor` and `visdcam footage`:
//! SigV4-presigned requests (rusty-s3) over blocking ureq, the aws-cli credential files
//! ([`creds`]), DSCP-marked TCP connections ([`net`]), and what each answer means
//! (`visdcam_core::upload::classify_error_for`, pure and unit-tested in the core).
//!
//! Every network wait is bounded ([`Timeouts`]): connect, and each read and write.

pub mod creds;
pub mod net;
mod store;

pub use creds::{CredError, Loaded, Locations};
pub use store::{
    check_config, prepare, Access, DuplicateCheck, Got, Head, Listed, Prepared, Store, StoreConfig,
    StoreError, Stored, Timeouts, DEFAULT_REGION, LIST_PAGE,
};
pub use visdcam_core::upload::{Failure, Op};
