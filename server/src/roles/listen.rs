//! What every role's gRPC server needs: a bound listener (port 0 picks a
//! free port; the bound address is returned) and the reflection service.

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

/// gRPC reflection over every foryou proto and grpc.health.v1.
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    RoleError,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(foryou_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(RoleError::from)
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
