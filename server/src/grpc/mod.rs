//! gRPC services: one file per service, `convert.rs` for proto ↔ domain and
//! `status.rs`, the one place errors become a `tonic::Status`.

pub mod admission;
pub mod convert;
pub mod deadline;
pub mod in_network_posts;
pub mod limits;
pub mod phoenix;
pub mod post_ingest;
pub mod scored_posts;
pub mod status;
