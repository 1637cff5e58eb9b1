//! Who may call `pod-server`, and what they may do: its flags, in
//! kube-apiserver's names and file formats, read and checked at start-up.

use std::path::PathBuf;

use anyhow::Context;
use pod_service::contract::Token;
use pod_service::server::ServerConfig;
use pod_service::server::access::{Policy, TokenUsers};
use tonic::transport::Certificate;

/// The access flags.
#[derive(clap::Args)]
pub struct AccessArgs {
    /// Require the token in this file on every PodService call (or set
    /// POD_SERVICE_TOKEN to the token): its holder may do everything.
    /// Health checks stay open.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Accept the tokens of these users: a CSV of
    /// token,user,uid[,"group1,group2"] a line, as kube-apiserver's
    /// --token-auth-file.
    #[arg(long, value_name = "FILE", env = "POD_SERVER_TOKEN_AUTH_FILE")]
    token_auth_file: Option<PathBuf>,
    /// Ask TLS clients for a certificate and accept those signed by this CA
    /// (PEM): the user is the subject's CN, the groups its O values. One
    /// from another CA, or expired, fails the handshake. Needs --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "POD_SERVER_CLIENT_CA_FILE"
    )]
    client_ca_file: Option<PathBuf>,
    /// What each user may do: Kubernetes ABAC policies, one JSON object a
    /// line (see the README, "Who may do what"). Without it, every
    /// authenticated caller may do everything.
    #[arg(
        long,
        value_name = "FILE",
        env = "POD_SERVER_AUTHORIZATION_POLICY_FILE"
    )]
    authorization_policy_file: Option<PathBuf>,
}

impl AccessArgs {
    /// Reads the files into `config`; an error names the file and line.
    pub fn configure(&self, config: &mut ServerConfig) -> anyhow::Result<()> {
        config.token = Token::configured(self.token_file.as_deref()).map_err(anyhow::Error::msg)?;
        if let Some(path) = &self.token_auth_file {
            config.token_users = Some(TokenUsers::from_file(path).map_err(anyhow::Error::msg)?);
        }
        if let Some(path) = &self.client_ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --client-ca-file {}", path.display()))?;
            anyhow::ensure!(
                String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----"),
                "--client-ca-file {} holds no certificate (expected PEM: -----BEGIN \
                 CERTIFICATE-----)",
                path.display()
            );
            config.client_ca = Some(Certificate::from_pem(pem));
        }
        if let Some(path) = &self.authorization_policy_file {
            config.policy = Some(Policy::from_file(path).map_err(anyhow::Error::msg)?);
        }
        Ok(())
    }

    /// Whether callers must prove who they are.
    pub fn authenticates(config: &ServerConfig) -> bool {
        config.token.is_some() || config.token_users.is_some() || config.client_ca.is_some()
    }
}
