//! How `pod-server` connects to NATS: TLS and credentials from the
//! configuration, and one line saying why a connection was refused.

use async_nats::{ConnectError, ConnectErrorKind, ConnectOptions};

use super::config::{NatsAuth, NatsConfig};
use crate::store::tls::{self, BackendTls, TlsFiles};

/// `pod-server`'s flags of the NATS TLS files, for the messages.
pub const NATS_TLS_FLAGS: [&str; 3] = ["--nats-ca", "--nats-cert", "--nats-key"];

/// How long connecting to one server may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The connection's options: TLS required whenever TLS files are given
/// or a URL says `tls://` (so that credentials never go in plaintext to
/// a server that dropped TLS), and the credentials.
pub(super) fn options(config: &NatsConfig) -> ConnectOptions {
    let mut options = ConnectOptions::new()
        .name("pod-server")
        .connection_timeout(CONNECT_TIMEOUT);
    if let Some(tls) = &config.tls {
        options = options
            .tls_client_config(tls.rustls_config())
            .require_tls(true);
    } else if config.urls.iter().any(|url| url.starts_with("tls://")) {
        options = options.require_tls(true);
    }
    match &config.auth {
        NatsAuth::None => options,
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
    }
}

/// Why connecting failed, in one line with what to do.
pub(super) fn refused(config: &NatsConfig, err: &ConnectError) -> String {
    let urls = config.urls.join(",");
    let why = match err.kind() {
        ConnectErrorKind::AuthorizationViolation => match &config.auth {
            NatsAuth::None => "NATS requires credentials: give --nats-user (with a password), \
                 or a client certificate if the server maps it to a user"
                .to_owned(),
            NatsAuth::UserPassword { user, .. } => format!(
                "NATS refused user {user:?} with that password (--nats-user, \
                 --nats-password-file or POD_SERVER_NATS_PASSWORD)"
            ),
        },
        _ => match std::error::Error::source(err).and_then(tls::handshake_error) {
            Some(tls_err) => {
                // Without TLS files: explained as for the system's CAs.
                let default;
                let tls = match &config.tls {
                    Some(tls) => Some(tls),
                    None => {
                        default = BackendTls::load(TlsFiles {
                            ca: None,
                            cert: None,
                            key: None,
                            flags: NATS_TLS_FLAGS,
                        });
                        default.as_ref().ok()
                    }
                };
                match tls {
                    Some(tls) => {
                        format!(
                            "the TLS handshake failed: {}",
                            tls.explain(&tls_err, "NATS")
                        )
                    }
                    None => format!("the TLS handshake failed: {tls_err}"),
                }
            }
            None => err.to_string(),
        },
    };
    format!("cannot connect to NATS at {urls}: {why}")
}
