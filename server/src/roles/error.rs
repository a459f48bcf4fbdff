//! [`RoleError`]: why a role (`serve`, `thunder`, `phoenix serve`) could
//! not start or stopped serving. Every variant keeps its cause; the message
//! names the file, address or flag at fault.

use std::net::SocketAddr;

/// A role that could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        cause: std::io::Error,
    },
    /// The event file is unreadable or corrupt.
    #[error(transparent)]
    Events(#[from] crate::thunder::event_file::EventFileError),
    /// The world file is unreadable or invalid.
    #[error(transparent)]
    World(#[from] crate::world::WorldFileError),
    /// A flag describing the generated world is out of range (the message
    /// names the flag).
    #[error("--{0}")]
    WorldSpec(String),
    /// Flags that do not go together (the message names them).
    #[error("--{0}")]
    Flags(String),
    /// The params file is unreadable or invalid.
    #[error(transparent)]
    Params(#[from] crate::pipeline::home_mixer::ParamsError),
    /// A model directory cannot be made or loaded.
    #[error(transparent)]
    Model(#[from] crate::phoenix::models::ModelError),
    /// The engine failed while setting up (e.g. encoding the corpus).
    #[error(transparent)]
    Engine(#[from] foryou_engine::EngineError),
    /// A released-artifact file (e.g. `--corpus`) is unreadable or invalid.
    #[error(transparent)]
    Artifact(#[from] foryou_engine::artifacts::ArtifactError),
    /// A remote service's address is unusable.
    #[error(transparent)]
    Client(#[from] crate::clients::ClientError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// Kafka could not start or stop.
    #[cfg(feature = "kafka")]
    #[error(transparent)]
    Kafka(#[from] crate::thunder::kafka::KafkaIngestError),
    /// Kafka was asked for in a binary without the feature.
    #[error("--kafka-brokers needs a binary built with `--features kafka`")]
    KafkaNotBuilt,
    /// A TLS or token file is unusable (the message names the flag).
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    /// A worker thread (a batcher's) could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Building the reflection service failed.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A blocking set-up task panicked or was cancelled.
    #[error("set-up task: {0}")]
    Worker(#[from] tokio::task::JoinError),
}
