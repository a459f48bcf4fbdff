//! Transport security of every role (issue 18): TLS on the listener (mTLS
//! when a client CA is given), TLS to remote services, and a bearer token
//! required for the write methods (`IngestEvents`). rustls through tonic's
//! `tls-ring` feature; we only read the PEM files and wire them in.
//!
//! - [`ServerSecurity`] (`--tls-cert`, `--tls-key`, `--tls-client-ca`,
//!   `--auth-token-file`): what a role's listener enforces.
//! - [`ClientSecurity`] (`--tls-ca`, `--tls-client-cert`,
//!   `--tls-client-key`, `--auth-token-file`): what our clients present to
//!   an `https://` address.
//! - `auth`: the tower layer that checks the token on write methods.

pub mod auth;

use std::path::{Path, PathBuf};

use clap::Args;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

pub use auth::{AuthLayer, BearerToken, WRITE_METHODS};

/// A security file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The file could not be read.
    #[error("{flag} {path}: {cause}")]
    Read {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file's content is unusable.
    #[error("{flag} {path}: {why}")]
    Invalid {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// TLS could not be configured from the files.
    #[error("tls: {0}")]
    Tls(String),
}

/// Reads `path` (named by `flag`) as PEM text holding `marker`.
fn read_pem(flag: &'static str, path: &Path, marker: &str) -> Result<Vec<u8>, SecurityError> {
    let bytes = std::fs::read(path).map_err(|cause| SecurityError::Read {
        flag,
        path: path.to_owned(),
        cause,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN ") || !text.contains(marker) {
        return Err(SecurityError::Invalid {
            flag,
            path: path.to_owned(),
            why: format!("expected PEM text holding {marker}"),
        });
    }
    Ok(bytes)
}

/// Reads a bearer token file: its trimmed content, non-empty.
fn read_token(path: &Path) -> Result<BearerToken, SecurityError> {
    let flag = "--auth-token-file";
    let text = std::fs::read_to_string(path).map_err(|cause| SecurityError::Read {
        flag,
        path: path.to_owned(),
        cause,
    })?;
    BearerToken::new(text.trim()).ok_or_else(|| SecurityError::Invalid {
        flag,
        path: path.to_owned(),
        why: "expected a token of visible ASCII characters (no spaces), got none".into(),
    })
}

/// The listener's security flags, shared by every role.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerSecurity {
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "FORYOU_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "FORYOU_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "FORYOU_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Require `authorization: Bearer <token>` (the file's trimmed content)
    /// on write methods (IngestEvents); UNAUTHENTICATED otherwise. Reads
    /// need no token.
    #[arg(long, env = "FORYOU_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
}

impl ServerSecurity {
    /// The listener's TLS config, `None` without `--tls-cert`.
    pub fn tls(&self) -> Result<Option<ServerTlsConfig>, SecurityError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let identity = Identity::from_pem(
            read_pem("--tls-cert", cert, "CERTIFICATE")?,
            read_pem("--tls-key", key, "PRIVATE KEY")?,
        );
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.tls_client_ca {
            let ca = read_pem("--tls-client-ca", ca, "CERTIFICATE")?;
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        Ok(Some(tls))
    }

    /// The token write methods require, `None` without the flag.
    pub fn token(&self) -> Result<Option<BearerToken>, SecurityError> {
        self.auth_token_file.as_deref().map(read_token).transpose()
    }

    /// A server builder with TLS set when configured; add
    /// [`Self::auth_layer`] with `.layer(..)`.
    pub fn server_builder(&self) -> Result<tonic::transport::Server, SecurityError> {
        let builder = tonic::transport::Server::builder();
        match self.tls()? {
            Some(tls) => builder
                .tls_config(tls)
                .map_err(|e| SecurityError::Tls(e.to_string())),
            None => Ok(builder),
        }
    }

    /// The token check of write methods (a no-op without a token).
    pub fn auth_layer(&self) -> Result<AuthLayer, SecurityError> {
        Ok(AuthLayer::new(self.token()?))
    }
}

/// What our gRPC clients present to remote services.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientSecurity {
    /// Trust this CA (PEM) for `https://` remote addresses (default: none
    /// is trusted, so an `https://` address needs it).
    #[arg(long = "tls-ca", env = "FORYOU_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM) to `https://` remotes (mTLS);
    /// needs --tls-client-key.
    #[arg(long, env = "FORYOU_TLS_CLIENT_CERT", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "FORYOU_TLS_CLIENT_KEY", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
}

impl ClientSecurity {
    /// The TLS config for `https://` addresses, `None` without --tls-ca.
    pub fn tls(&self) -> Result<Option<ClientTlsConfig>, SecurityError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem(
            "--tls-ca",
            ca,
            "CERTIFICATE",
        )?));
        if let (Some(cert), Some(key)) = (&self.tls_client_cert, &self.tls_client_key) {
            tls = tls.identity(Identity::from_pem(
                read_pem("--tls-client-cert", cert, "CERTIFICATE")?,
                read_pem("--tls-client-key", key, "PRIVATE KEY")?,
            ));
        }
        Ok(Some(tls))
    }
}

/// Reads the token file of a client command (`thunder replay`), if any.
pub fn client_token(path: Option<&Path>) -> Result<Option<BearerToken>, SecurityError> {
    path.map(read_token).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_name_the_flag_and_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_pem = dir.path().join("cert.pem");
        std::fs::write(&not_pem, "hello").expect("write");
        let s = ServerSecurity {
            tls_cert: Some(not_pem.clone()),
            tls_key: Some(dir.path().join("missing.key")),
            ..ServerSecurity::default()
        };
        let e = s.tls().expect_err("not PEM").to_string();
        assert!(
            e.starts_with("--tls-cert ") && e.contains("cert.pem"),
            "{e}"
        );
        let empty = dir.path().join("token");
        std::fs::write(&empty, "  \n").expect("write");
        let s = ServerSecurity {
            auth_token_file: Some(empty),
            ..ServerSecurity::default()
        };
        let e = s.token().expect_err("empty token").to_string();
        assert!(e.starts_with("--auth-token-file "), "{e}");
        let missing = ServerSecurity {
            auth_token_file: Some(dir.path().join("nope")),
            ..ServerSecurity::default()
        };
        assert!(matches!(missing.token(), Err(SecurityError::Read { .. })));
        assert!(ServerSecurity::default().tls().expect("none").is_none());
    }
}
