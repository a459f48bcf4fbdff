//! [`ClientError`]: a failed call to an external service.

/// A failed call to an external service, with the service's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service}: {message}")]
pub struct ClientError {
    /// Which service (e.g. "thunder", "tes").
    pub service: &'static str,
    /// What went wrong.
    pub message: String,
}

impl ClientError {
    /// An error of `service`.
    pub fn new(service: &'static str, message: impl Into<String>) -> Self {
        Self {
            service,
            message: message.into(),
        }
    }
}

/// A lazily connecting channel to `addr` with connect and call timeouts: a
/// remote service that is down fails each call, not the start-up.
pub fn lazy_channel(
    service: &'static str,
    addr: &str,
    timeout: std::time::Duration,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<tonic::transport::Channel, ClientError> {
    let bad = |e: tonic::transport::Error| {
        ClientError::new(service, format!("bad address {addr:?}: {e}"))
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(addr.to_owned())
        .map_err(bad)?
        .connect_timeout(timeout)
        .timeout(timeout);
    if addr.starts_with("https://") {
        let Some(tls) = tls else {
            return Err(ClientError::new(
                service,
                format!("{addr} is https: give the CA to trust with --tls-ca"),
            ));
        };
        endpoint = endpoint.tls_config(tls.clone()).map_err(bad)?;
    }
    Ok(endpoint.connect_lazy())
}

/// A failed call's status as a [`ClientError`].
pub fn from_status(service: &'static str, s: tonic::Status) -> ClientError {
    ClientError::new(service, format!("{:?}: {}", s.code(), s.message()))
}
