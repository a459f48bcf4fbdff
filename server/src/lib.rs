//! foryou-server: Thunder (the in-network post store), the gRPC services and
//! the process plumbing behind the `foryou` binary.

pub mod allocator;
pub mod clients;
pub mod clock;
pub mod config;
pub mod fuzz;
pub mod grpc;
pub mod phoenix;
pub mod pipeline;
pub mod roles;
pub mod security;
pub mod telemetry;
pub mod thunder;
pub mod world;
