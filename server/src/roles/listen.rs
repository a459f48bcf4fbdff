//! What every role's gRPC server needs: a bound listener (port 0 picks a
//! free port; the bound address is returned), the reflection service and
//! the server builder with the role's TLS and token check
//! (`crate::security`).

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::error::RoleError;

/// Binds `addr` and returns the listener with its actual address.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), RoleError> {
    let err = |cause| RoleError::Bind { addr, cause };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// gRPC reflection over every foryou proto and grpc.health.v1, listing
/// only `services` (the ones the role serves), health and reflection.
pub fn reflection(
    services: &[&str],
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    RoleError,
> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(foryou_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection");
    for s in services {
        b = b.with_service_name(*s);
    }
    b.build_v1().map_err(RoleError::from)
}

/// The accepted connections of `listener` with Nagle's algorithm off.
/// gRPC writes a response as several small frames; with Nagle on, the last
/// one waits for the client's delayed ACK (measured: +45 ms on every
/// GetScoredPosts over loopback). tonic's `tcp_nodelay` only covers the
/// listeners it binds itself, not an incoming stream.
pub fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Concurrent HTTP/2 streams one connection may open.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1024;
/// Streams reset by the client before the server accepted them, before h2
/// closes the connection (its default is 20).
pub const MAX_PENDING_RESETS: usize = 4096;
/// HTTP/2 ping interval on idle connections, and how long a ping may go
/// unanswered before the connection is closed.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// See [`KEEPALIVE_INTERVAL`].
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A server builder for `security`: TLS when configured, the token check
/// of write methods, and the HTTP/2 limits above.
pub fn server(
    security: &crate::security::ServerSecurity,
) -> Result<
    tonic::transport::Server<
        tower::layer::util::Stack<crate::security::AuthLayer, tower::layer::util::Identity>,
    >,
    RoleError,
> {
    Ok(security
        .server_builder()?
        // Streams per connection: a client multiplexing more waits for
        // one to end instead of the server holding unbounded work.
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        // Under overload callers cancel calls (their deadlines pass) and
        // each cancel is an RST_STREAM; h2's rapid-reset guard (default
        // 20 pending) would answer with a GOAWAY that fails every call of
        // the connection. Admission control sheds the load instead.
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(security.auth_layer()?))
}
