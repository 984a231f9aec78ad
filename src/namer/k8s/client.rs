//! The API server connection: kube's client, built for linkerd's set-up (a
//! `kubectl proxy` on `host:port`, plain HTTP, no credentials) or for
//! corelink's in-cluster extension (HTTPS to `KUBERNETES_SERVICE_HOST:PORT`,
//! the service-account CA, a bearer token read from its file).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use config::K8sApiConfig;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("in-cluster: {0} is not set (is corelink running in a pod?)")]
    MissingEnv(&'static str),
    #[error("invalid API server address {0:?}: {1}")]
    Url(String, String),
    #[error("cannot read the service-account token {path}: {source}")]
    Token { path: String, source: std::io::Error },
    #[error("cannot read the API server's CA {path}: {source}")]
    Ca { path: String, source: std::io::Error },
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Connecting to a local proxy or an API server should take far less.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The API server's base URL for `api`: `http://host:port`, or in-cluster
/// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
pub fn base_url(api: &K8sApiConfig) -> Result<String, ClientError> {
    let (scheme, host, port) = match api {
        K8sApiConfig::Proxy { host, port } => ("http", host.clone(), port.to_string()),
        K8sApiConfig::InCluster { .. } => {
            let host = std::env::var("KUBERNETES_SERVICE_HOST")
                .map_err(|_| ClientError::MissingEnv("KUBERNETES_SERVICE_HOST"))?;
            let port = std::env::var("KUBERNETES_SERVICE_PORT")
                .map_err(|_| ClientError::MissingEnv("KUBERNETES_SERVICE_PORT"))?;
            ("https", host, port)
        }
    };
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
    Ok(format!("{scheme}://{host}:{port}"))
}

/// Builds kube's client for `api`. In-cluster, the CA file is handed to
/// kube (which re-reads it about once a minute) and the token file is read
/// again before every request (they are rare: a list or a watch per
/// (re)connection), so a rotated token is used from the next request on.
pub fn build(api: &K8sApiConfig) -> Result<kube::Client, ClientError> {
    let url = base_url(api)?;
    let uri: http::Uri =
        url.parse().map_err(|e: http::uri::InvalidUri| ClientError::Url(url.clone(), e.to_string()))?;
    let mut config = kube::Config::new(uri);
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // Retries and backoff are the watch loop's (`watch.rs`), with its own
    // numbers and a log line for each restart.
    config.default_retry = false;
    match api {
        K8sApiConfig::Proxy { .. } => Ok(kube::client::ClientBuilder::try_from(config)?.build()),
        K8sApiConfig::InCluster { token_path, ca_cert_path } => {
            let pem =
                std::fs::read(ca_cert_path).map_err(|source| ClientError::Ca { path: ca_cert_path.clone(), source })?;
            let roots: Vec<Vec<u8>> = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
                .filter_map(|c: Result<rustls_pki_types::CertificateDer<'static>, _>| c.ok())
                .map(|c| c.to_vec())
                .collect();
            if roots.is_empty() {
                return Err(ClientError::Ca {
                    path: ca_cert_path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no PEM certificate in it"),
                });
            }
            config.root_cert = Some(roots);
            config.root_cert_file = Some(PathBuf::from(ca_cert_path));
            let token = TokenFile::new(token_path)?;
            let layer = tower::util::MapRequestLayer::new(move |mut req: http::Request<kube::client::Body>| {
                if let Some(value) = token.header() {
                    req.headers_mut().insert(http::header::AUTHORIZATION, value);
                }
                req
            });
            Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(&layer).build())
        }
    }
}

/// A bearer token file (a projected service-account token, which the kubelet
/// rewrites before it expires), read at every use; when a read fails the
/// last token read is used, and the failure logged once.
#[derive(Clone)]
struct TokenFile {
    path: String,
    last: Arc<Mutex<(Option<http::HeaderValue>, bool)>>,
}

impl TokenFile {
    fn new(path: &str) -> Result<TokenFile, ClientError> {
        let token = TokenFile { path: path.to_string(), last: Arc::new(Mutex::new((None, false))) };
        let value = token.read().map_err(|source| ClientError::Token { path: path.to_string(), source })?;
        if let Ok(mut last) = token.last.lock() {
            last.0 = Some(value);
        }
        Ok(token)
    }

    fn read(&self) -> std::io::Result<http::HeaderValue> {
        let text = std::fs::read_to_string(&self.path)?;
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", text.trim()))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn header(&self) -> Option<http::HeaderValue> {
        let read = self.read();
        let mut last = self.last.lock().ok()?;
        match read {
            Ok(value) => {
                if last.0.as_ref() != Some(&value) && last.0.is_some() {
                    tracing::info!(path = %self.path, "io.l5d.k8s: the service-account token changed; using the new one");
                }
                *last = (Some(value), false);
            }
            Err(e) => {
                if !last.1 {
                    tracing::warn!(path = %self.path, error = %e, "io.l5d.k8s: cannot read the service-account token; using the last one read");
                }
                last.1 = true;
            }
        }
        last.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let url = |host: &str| base_url(&K8sApiConfig::Proxy { host: host.into(), port: 8001 }).unwrap();
        assert_eq!(url("localhost"), "http://localhost:8001");
        assert_eq!(url("::1"), "http://[::1]:8001");
    }

    #[test]
    fn token_file_is_read_at_every_use_and_kept_when_unreadable() {
        let dir = std::env::temp_dir().join(format!("corelink-k8s-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "one\n").unwrap();
        let token = TokenFile::new(path.to_str().unwrap()).unwrap();
        assert_eq!(token.header().unwrap(), "Bearer one");
        std::fs::write(&path, "two").unwrap();
        assert_eq!(token.header().unwrap(), "Bearer two");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(token.header().unwrap(), "Bearer two");
        assert!(TokenFile::new(path.to_str().unwrap()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
