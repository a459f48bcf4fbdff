//! The bearer-token check: a tower layer around every service of a role
//! that answers UNAUTHENTICATED, without calling the service, for a write
//! method ([`WRITE_METHODS`]) whose request lacks `authorization: Bearer
//! <token>` with the configured token. Reads (feeds, retrieval, health,
//! reflection) pass untouched. Without a token the layer passes everything.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};

/// gRPC paths that change state: posts in, posts deleted.
pub const WRITE_METHODS: &[&str] = &["/foryou.v1.InNetworkPostsService/IngestEvents"];

/// A bearer token: visible ASCII, no spaces (what an HTTP header carries).
#[derive(Clone)]
pub struct BearerToken(Arc<str>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)") // never logged
    }
}

impl BearerToken {
    /// `None` unless `token` is non-empty visible ASCII without spaces.
    pub fn new(token: &str) -> Option<Self> {
        let ok = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(token.into()))
    }

    /// The `authorization` header value a client sends.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `header` is this token's `Bearer` value. The comparison
    /// takes the same time wherever the first difference lies.
    fn accepts(&self, header: &[u8]) -> bool {
        let Some(given) = header.strip_prefix(b"Bearer ") else {
            return false;
        };
        let want = self.0.as_bytes();
        given.len() == want.len()
            && given
                .iter()
                .zip(want)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Wraps services with the token check.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    token: Option<BearerToken>,
}

impl AuthLayer {
    /// Checks `token` on write methods; `None` checks nothing.
    pub fn new(token: Option<BearerToken>) -> Self {
        Self { token }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            token: self.token.clone(),
        }
    }
}

/// A service behind the token check.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    token: Option<BearerToken>,
}

impl<S> Auth<S> {
    /// Why `req` may not go through, if it may not.
    fn refusal<B>(&self, req: &http::Request<B>) -> Option<tonic::Status> {
        let token = self.token.as_ref()?;
        let path = req.uri().path();
        if !WRITE_METHODS.contains(&path) {
            return None;
        }
        let given = req.headers().get(http::header::AUTHORIZATION);
        if given.is_some_and(|v| token.accepts(v.as_bytes())) {
            return None;
        }
        metrics::counter!(UNAUTHENTICATED, "method" => path.to_owned()).increment(1);
        Some(tonic::Status::unauthenticated(format!(
            "{path} needs `authorization: Bearer <token>` with the server's --auth-token-file token"
        )))
    }
}

/// Counter with label `method`: write calls refused for a missing or wrong
/// token.
pub const UNAUTHENTICATED: &str = "foryou_auth_rejected_total";

impl<S, B, ResBody> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match self.refusal(&req) {
            Some(status) => Either::Left(ready(Ok(status.into_http()))),
            None => Either::Right(self.inner.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, auth: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder().uri(format!("http://x{path}"));
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn writes_need_the_exact_token_reads_never_do() {
        let auth = Auth {
            inner: (),
            token: BearerToken::new("s3cret"),
        };
        let ingest = WRITE_METHODS[0];
        let read = "/foryou.v1.ScoredPostsService/GetScoredPosts";
        assert!(auth.refusal(&request(read, None)).is_none());
        assert!(
            auth.refusal(&request(ingest, Some("Bearer s3cret")))
                .is_none()
        );
        for bad in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cretx"),
            Some("s3cret"),
        ] {
            let s = auth.refusal(&request(ingest, bad)).expect("refused");
            assert_eq!(s.code(), tonic::Code::Unauthenticated);
            assert!(s.message().contains("IngestEvents"), "{}", s.message());
        }
        let open = Auth {
            inner: (),
            token: None,
        };
        assert!(open.refusal(&request(ingest, None)).is_none());
    }

    #[test]
    fn tokens_are_visible_ascii_and_never_printed() {
        assert!(BearerToken::new("").is_none());
        assert!(BearerToken::new("two words").is_none());
        assert!(BearerToken::new("tab\there").is_none());
        let t = BearerToken::new("abc").expect("valid");
        assert_eq!(t.header_value(), "Bearer abc");
        assert!(!format!("{t:?}").contains("abc"));
    }
}
